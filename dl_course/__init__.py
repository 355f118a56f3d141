"""dl_course: the library behind the executable deep-learning textbook.

Import the module a chapter teaches, e.g. ``from dl_course import perceptron``.
Importing :mod:`dl_course` itself is cheap: it loads no torch, matplotlib or
scikit-learn; each submodule imports what it needs.
"""

__version__ = "0.1.0"
