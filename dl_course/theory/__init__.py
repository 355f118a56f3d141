"""Theory modules: small, exact or Monte-Carlo versions of the results the later chapters prove.

Each submodule is named after its topic and imported on its own, e.g.
``from dl_course.theory import signal_propagation`` (chapter 9). Importing this
package loads nothing else.
"""
