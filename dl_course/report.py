"""Numbers from the experiments into the prose, through myst-nb's glue.

A sentence such as "the worst run used 26 % of its bound" must not be typed by
hand: after the next change to the experiment it would drift from the output.
Instead the code cell that computes the number glues it (the same output as
``myst_nb.glue(name, value, display=False)``, without its import cost)::

    from dl_course.report import glue
    glue(worst_ratio=float(np.max(updates / bounds)), n_sets=len(updates))

and the markdown refers to it with a format spec:
``the worst run used {glue:text}`worst_ratio:.0%` of its bound``.
The strict book build fails on a key that no cell glued, and
``tools/prose.py`` (run by the tests) fails on a measured number typed into the prose.

Used by every chapter from chapter 1 on.
"""

from __future__ import annotations

import math
import numbers
import re

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _plain(name: str, value):
    """``value`` as a plain Python int, float or str, so that format specs apply to it."""
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:  # NumPy or torch scalar
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real | str):
        raise TypeError(
            f"glue value {name!r} must be a real number or a string, got {type(value).__name__}"
        )
    if isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"glue value {name!r} is {value}: an experiment produced no number")
    return value


def glue(**values) -> None:
    """Store each keyword's value under its name for ``{glue:text}`` roles in the markdown.

    Parameters
    ----------
    **values
        ``name=value`` pairs. A value is a real number (Python, NumPy or a
        one-element torch tensor; stored as a plain ``int`` or ``float``, so a
        format spec such as ``:.3f`` or ``:.0%`` applies) or a string. NaN and
        infinity are refused: a sentence cannot report a number that does not exist.

    Nothing is displayed; in the built book each ``{glue:text}`name:fmt``` role
    is replaced by the formatted value.

    Examples
    --------
    >>> glue(test_accuracy=0.9644, n_dead=28)  # doctest: +SKIP
    """
    if not values:
        raise ValueError("glue needs at least one name=value pair")
    plain = {}
    for name, value in values.items():
        if not _NAME.match(name):
            raise ValueError(f"glue name {name!r} must be a Python identifier")
        plain[name] = _plain(name, value)
    from IPython.display import display

    for name, value in plain.items():
        data, metadata = _glue_output(name, value)
        display(data, metadata=metadata, raw=True)


#: The MIME prefix under which myst-nb finds glued values (``myst_nb.ext.glue.GLUE_PREFIX``).
GLUE_PREFIX = "application/papermill.record/"


def _glue_output(name: str, value) -> tuple[dict, dict]:
    """The display data and metadata that ``myst_nb.glue(name, value, display=False)`` emits.

    Written out here because importing myst-nb's glue costs seconds (it loads
    nbformat and its validators) in every chapter; the tests check that both agree.
    """
    return {GLUE_PREFIX + "text/plain": repr(value)}, {
        "scrapbook": {"name": name, "mime_prefix": GLUE_PREFIX}
    }
