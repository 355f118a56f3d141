"""One figure style for the whole book, and small drawing helpers.

Every chapter makes its figures with :func:`subplots`, so sizes, fonts, colours
and grids agree from page to page. This module knows nothing about deep
learning: it draws points, lines and curves.
"""

from __future__ import annotations

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from matplotlib import cbook
from matplotlib import ticker as mticker
from matplotlib.collections import PathCollection
from matplotlib.lines import Line2D

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
PANEL_SIZE = (4.8, 3.6)
#: Widest default figure, in inches: the width of the book's text column at 100 dpi.
MAX_WIDTH = 7.6

STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "figure.facecolor": "white",
    "figure.constrained_layout.use": True,
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.titley": 1.0,  # a fixed title position: auto-placement costs ~25 ms per axes per draw
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
    :data:`PANEL_SIZE` per panel, at most :data:`MAX_WIDTH` wide. Extra keyword arguments go to
    :func:`matplotlib.pyplot.subplots` (``sharex``, ``squeeze``, ...).
    """
    nrows = check_int(nrows, "nrows", low=1)
    ncols = check_int(ncols, "ncols", low=1)
    apply_style()
    if width is None:
        width = min(PANEL_SIZE[0] * ncols, MAX_WIDTH)
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
    defaults = {"s": 28, "edgecolors": "white", "linewidths": 0.5, "zorder": 3}
    style = cbook.normalize_kwargs(defaults, PathCollection)
    style |= cbook.normalize_kwargs(kwargs, PathCollection)
    negative = y <= 0
    ax.scatter(*X[negative].T, marker="s", color=CLASS_COLORS["negative"], label=names[0], **style)
    ax.scatter(*X[~negative].T, marker="o", color=CLASS_COLORS["positive"], label=names[1], **style)


def _line_ends(w: np.ndarray, b: float, xlim, ylim) -> np.ndarray:
    """End points (2, 2) of the line ``w . x + b = 0`` across the given limits."""
    if abs(w[1]) >= abs(w[0]):
        xs = np.array(xlim)
        return np.column_stack([xs, -(w[0] * xs + b) / w[1]])
    ys = np.array(ylim)
    return np.column_stack([-(w[1] * ys + b) / w[0], ys])


def draw_hyperplanes(ax, W, B, **kwargs) -> None:
    """Draw many lines ``W[k] . x + B[k] = 0`` at once (one LineCollection, fast to render).

    Rows of ``W`` that are zero define no line and are skipped. Keyword
    arguments style the collection (``color``, ``linewidth``, ``alpha``, ...).
    """
    from matplotlib.collections import LineCollection

    W = as_float_array(W, "W", ndim=2)
    B = as_float_array(B, "B", ndim=1)
    if W.shape[1] != 2 or B.shape[0] != W.shape[0]:
        raise ValueError(f"W must have shape (k, 2) and B shape (k,), got {W.shape} and {B.shape}")
    xlim, ylim = ax.get_xlim(), ax.get_ylim()
    keep = ~np.all(np.isclose(W, 0.0), axis=1)
    segments = [_line_ends(w, b, xlim, ylim) for w, b in zip(W[keep], B[keep], strict=True)]
    ax.add_collection(LineCollection(segments, **kwargs), autolim=False)


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
    style = {"color": PALETTE["black"], "linewidth": 1.6} | cbook.normalize_kwargs(kwargs, Line2D)
    ax.plot(*_line_ends(w, b, xlim, ylim).T, **style)
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


def plain_log_ticks(ax, axis: str = "both") -> None:
    """Label logarithmic axes with plain numbers (0.01, 100) instead of powers of ten.

    Plain labels are easier to read over a few decades. Minor ticks are dropped:
    together with the plain labels this makes the axes several times faster to
    draw, which matters for interactive figures.
    """
    if axis not in ("x", "y", "both"):
        raise ValueError(f"axis must be 'x', 'y' or 'both', got {axis!r}")
    plain = mticker.FuncFormatter(lambda value, _: f"{value:g}")
    for name in ("x", "y") if axis == "both" else (axis,):
        target = getattr(ax, f"{name}axis")
        target.set_major_formatter(plain)
        target.set_minor_locator(mticker.NullLocator())


def tile_images(images, shape: tuple[int, int], *, rows: int = 1, gap: int = 1) -> np.ndarray:
    """Tile flattened images (n, h * w) into one array, row by row, with NaN gaps between them."""
    images = as_float_array(images, "images", ndim=2)
    height, width = (check_int(s, "shape", low=1) for s in shape)
    if images.shape[1] != height * width:
        raise ValueError(
            f"images must have {height * width} columns for shape {shape}, got {images.shape[1]}"
        )
    rows = check_int(rows, "rows", low=1)
    gap = check_int(gap, "gap", low=0)
    cols = -(-len(images) // rows)
    out = np.full((rows * (height + gap) - gap, cols * (width + gap) - gap), np.nan)
    for k, tile in enumerate(images.reshape(-1, height, width)):
        top, left = (k // cols) * (height + gap), (k % cols) * (width + gap)
        out[top : top + height, left : left + width] = tile
    return out


def image_grid(
    ax,
    images,
    shape: tuple[int, int],
    *,
    rows: int = 1,
    gap: int = 1,
    cmap: str = "RdBu_r",
    symmetric: bool = True,
    labels=None,
) -> None:
    """Draw flattened images (n, h * w) as a grid of tiles in one ``imshow`` (fast in sliders).

    With ``symmetric=True`` (for weights) the colour scale runs from ``-m`` to
    ``m``, ``m`` the largest magnitude, on a diverging map; otherwise from 0 to
    the maximum (for pixel intensities). ``labels`` are written above the tiles.
    """
    images = as_float_array(images, "images", ndim=2)
    grid = tile_images(images, shape, rows=rows, gap=gap)
    top = float(np.abs(images).max()) or 1.0
    colors = mpl.colormaps[cmap].with_extremes(bad="white")
    ax.imshow(grid, cmap=colors, vmin=-top if symmetric else 0.0, vmax=top, interpolation="nearest")
    ax.set_axis_off()
    height, width = shape
    cols = -(-len(images) // rows)
    for k, text in enumerate([] if labels is None else labels):
        row, col = divmod(k, cols)
        x = col * (width + gap) + (width - 1) / 2
        ax.text(x, row * (height + gap) - 0.7, str(text), ha="center", fontsize=8)


def _check_parents(parents) -> list[tuple[int, ...]]:
    """``parents`` as a list of int tuples, each index below its node's (topological order)."""
    if isinstance(parents, str) or not hasattr(parents, "__len__") or len(parents) == 0:
        raise ValueError("parents must be a non-empty list with one sequence of indices per node")
    checked = []
    for k, row in enumerate(parents):
        if isinstance(row, str) or not hasattr(row, "__iter__"):
            raise TypeError(f"parents[{k}] must be a sequence of node indices, got {row!r}")
        row = tuple(row)
        if not all(isinstance(p, int | np.integer) and 0 <= p < k for p in row):
            raise ValueError(
                f"parents[{k}] must hold indices of earlier nodes (0 to {k - 1}: nodes in "
                f"topological order), got {row}"
            )
        checked.append(tuple(int(p) for p in row))
    return checked


def graph_layout(parents) -> np.ndarray:
    """Positions ``(n, 2)`` that draw a directed acyclic graph from left to right.

    ``parents[k]`` lists the nodes with an arrow into node ``k``; every index
    is smaller than ``k``, so the nodes come in topological order. Each node is
    placed as far right as its children allow: nodes without children in the
    last column, every other node one column left of its leftmost child. The
    nodes of a column are stacked top to bottom in their given order, centred
    on ``y = 0``, one unit apart. Column ``c`` is at ``x = c``.
    """
    parents = _check_parents(parents)
    n = len(parents)
    steps = [0] * n  # the longest path from a node to a node without children
    for k in reversed(range(n)):
        for p in parents[k]:
            steps[p] = max(steps[p], steps[k] + 1)
    last = max(steps)
    columns: dict[int, list[int]] = {}
    for k in range(n):
        columns.setdefault(last - steps[k], []).append(k)
    where = np.empty((n, 2))
    for column, members in columns.items():
        for row, k in enumerate(members):
            where[k] = (column, (len(members) - 1) / 2 - row)
    return where


def draw_graph(ax, parents, labels, *, notes=None, colors=None, fontsize: float = 10) -> np.ndarray:
    """Draw a directed acyclic graph: one labelled box per node, arrows from parents to children.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw; its axis lines are switched off.
    parents : sequence of sequences of int
        ``parents[k]`` are the nodes with an arrow into node ``k``, all ``< k``
        (topological order); a repeated parent draws one arrow.
    labels : sequence of str
        The text in each node's box.
    notes : sequence of str, optional
        Small text under each box, e.g. the values attached to the node.
    colors : sequence of str, optional
        Box colours (names of :data:`PALETTE` or any matplotlib colour). By
        default nodes without parents are blue, nodes without children orange,
        the others grey.
    fontsize : float
        Size of the labels; notes are drawn at 0.7 times that.

    Returns
    -------
    ndarray
        The node positions ``(n, 2)`` of :func:`graph_layout`. Used in chapter 5
        to draw computational graphs.
    """
    where = graph_layout(parents)
    parents = _check_parents(parents)
    n = len(parents)
    texts = {"labels": labels, "notes": notes, "colors": colors}
    for name, value in texts.items():
        if value is not None and (isinstance(value, str) or len(value) != n):
            raise ValueError(f"{name} must have one entry per node ({n}), got {value!r}")
    if colors is None:
        has_children = {p for row in parents for p in row}
        colors = [
            "blue" if not parents[k] else "grey" if k in has_children else "orange"
            for k in range(n)
        ]
    arrow = {"arrowstyle": "->", "color": "grey", "shrinkA": 17, "shrinkB": 17, "lw": 1}
    for k, row in enumerate(parents):
        for p in sorted(set(row)):
            ax.annotate("", xy=where[k], xytext=where[p], arrowprops=arrow)
    for k, (x, y) in enumerate(where):
        color = PALETTE.get(colors[k], colors[k])
        box = {"boxstyle": "round", "fc": color, "alpha": 0.25, "ec": color}
        ax.text(x, y, str(labels[k]), ha="center", va="center", bbox=box, fontsize=fontsize)
        if notes is not None:
            ax.text(x, y - 0.3, str(notes[k]), ha="center", va="top", fontsize=0.7 * fontsize)
    below = 0.9 if notes is not None else 0.5
    ax.set(xlim=(-0.6, where[:, 0].max() + 0.6))
    ax.set(ylim=(where[:, 1].min() - below, where[:, 1].max() + 0.3))
    ax.axis("off")
    return where
