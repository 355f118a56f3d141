"""One figure style for the whole book, and small drawing helpers.

Every chapter makes its figures with :func:`subplots`, so sizes, fonts, colours
and grids agree from page to page. This module knows nothing about deep
learning: it draws points, lines and curves.
"""

from __future__ import annotations

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

from dl_course._checks import as_float_array, check_int, check_real

#: Okabe-Ito colours, distinguishable with the common forms of colour blindness.
PALETTE = {
    "blue": "#0072B2",
    "orange": "#E69F00",
    "green": "#009E73",
    "red": "#D55E00",
    "sky": "#56B4E9",
    "purple": "#CC79A7",
    "yellow": "#F0E442",
    "black": "#000000",
    "grey": "#7F7F7F",
}

#: Colours for the two classes of a binary problem: negative (-1 or 0) and positive (+1 or 1).
CLASS_COLORS = {"negative": PALETTE["red"], "positive": PALETTE["blue"]}

#: Width and height of one panel, in inches.
PANEL_SIZE = (4.6, 3.6)

STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "figure.facecolor": "white",
    "figure.constrained_layout.use": True,
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "legend.framealpha": 0.9,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": mpl.cycler(
        color=[PALETTE[c] for c in ("blue", "orange", "green", "red", "purple", "sky", "black")]
    ),
    "lines.linewidth": 1.8,
    "lines.markersize": 5,
    "image.cmap": "viridis",
}


def apply_style() -> None:
    """Set the book's matplotlib style (idempotent; :func:`subplots` calls it)."""
    mpl.rcParams.update(STYLE)


def subplots(
    nrows: int = 1,
    ncols: int = 1,
    *,
    width: float | None = None,
    height: float | None = None,
    **kwargs,
):
    """Create a figure in the book's style; returns ``(fig, axes)`` like :func:`plt.subplots`.

    ``width`` and ``height`` are in inches and default to one
    :data:`PANEL_SIZE` per panel. Extra keyword arguments go to
    :func:`matplotlib.pyplot.subplots` (``sharex``, ``squeeze``, ...).
    """
    nrows = check_int(nrows, "nrows", low=1)
    ncols = check_int(ncols, "ncols", low=1)
    apply_style()
    if width is None:
        width = PANEL_SIZE[0] * ncols
    if height is None:
        height = PANEL_SIZE[1] * nrows
    width = check_real(width, "width", low=0.0, low_open=True)
    height = check_real(height, "height", low=0.0, low_open=True)
    return plt.subplots(nrows, ncols, figsize=(width, height), **kwargs)


def class_color(label) -> str:
    """Return the colour of a binary class label (<= 0 is negative, > 0 positive)."""
    return CLASS_COLORS["positive" if label > 0 else "negative"]


def scatter_classes(ax, X, y, *, names: tuple[str, str] = ("y = -1", "y = +1"), **kwargs):
    """Scatter 2-D points ``X`` coloured and shaped by binary labels ``y``.

    Labels <= 0 are drawn as red squares, labels > 0 as blue circles; ``names``
    label the two classes in the legend.
    """
    X = as_float_array(X, "X", ndim=2)
    if X.shape[1] != 2:
        raise ValueError(f"X must have 2 columns to be drawn in the plane, got {X.shape[1]}")
    y = np.asarray(y)
    if y.shape != (X.shape[0],):
        raise ValueError(f"y must have shape ({X.shape[0]},), got {y.shape}")
    style = {"s": 28, "edgecolors": "white", "linewidths": 0.5, "zorder": 3} | kwargs
    negative = y <= 0
    ax.scatter(*X[negative].T, marker="s", color=CLASS_COLORS["negative"], label=names[0], **style)
    ax.scatter(*X[~negative].T, marker="o", color=CLASS_COLORS["positive"], label=names[1], **style)


def draw_hyperplane(ax, w, b: float = 0.0, *, shade: bool = False, **kwargs) -> None:
    """Draw the line ``w[0] * x1 + w[1] * x2 + b = 0`` across the current axis limits.

    With ``shade=True`` the two half-planes are tinted with the class colours
    (``w . x + b >= 0`` positive). A zero ``w`` draws nothing: it defines no line.
    """
    w = as_float_array(w, "w", ndim=1)
    if w.shape != (2,):
        raise ValueError(f"w must have length 2 to define a line in the plane, got {w.shape[0]}")
    b = check_real(b, "b")
    xlim, ylim = ax.get_xlim(), ax.get_ylim()
    if shade:
        gx, gy = np.meshgrid(np.linspace(*xlim, 200), np.linspace(*ylim, 200))
        positive = (w[0] * gx + w[1] * gy + b) >= 0
        colors = mpl.colors.ListedColormap([CLASS_COLORS["negative"], CLASS_COLORS["positive"]])
        ax.imshow(
            positive,
            extent=(*xlim, *ylim),
            origin="lower",
            cmap=colors,
            alpha=0.12,
            aspect="auto",
            zorder=0,
            vmin=0,
            vmax=1,
            interpolation="nearest",
        )
    if np.allclose(w, 0.0):
        return
    style = {"color": PALETTE["black"], "linewidth": 1.6} | kwargs
    if abs(w[1]) >= abs(w[0]):
        xs = np.array(xlim)
        ax.plot(xs, -(w[0] * xs + b) / w[1], **style)
    else:
        ys = np.array(ylim)
        ax.plot(-(w[1] * ys + b) / w[0], ys, **style)
    ax.set_xlim(xlim)
    ax.set_ylim(ylim)


def square_limits(ax, X, *, pad: float = 0.15) -> None:
    """Set equal, padded axis limits around the 2-D points ``X`` (same scale on both axes)."""
    X = as_float_array(X, "X", ndim=2)
    low, high = X.min(axis=0), X.max(axis=0)
    center, half = (low + high) / 2, (high - low).max() / 2 * (1 + pad) + 1e-9
    ax.set_xlim(center[0] - half, center[0] + half)
    ax.set_ylim(center[1] - half, center[1] + half)
    ax.set_aspect("equal")
