"""Two-dimensional loss surfaces on which optimizers are watched at work (chapter 6).

Three landscapes cover the situations that matter for first-order methods:

- :func:`quadratic_surface`: an ill-conditioned bowl (a long, narrow valley with
  straight walls), where gradient descent zig-zags;
- :func:`rosenbrock`: a curved, flat-bottomed valley with steep walls, the
  classic test of Rosenbrock (1960);
- :func:`saddle`: ``x^2/2 - y^2/2 + y^4/4``, a saddle point at the origin
  between two minima at ``(0, +-1)``, where a small gradient hides a way down.

Each is a :class:`Surface` with a vectorized ``value`` and a ``grad`` suitable
for :func:`dl_course.optim.optimize`; :func:`draw_contours` draws one quickly
(the grid is computed once per surface), which keeps slider updates cheap.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dl_course._checks import as_float_array, check_int, check_real
from dl_course.quadratic import make_quadratic


@dataclass(frozen=True)
class Surface:
    """A loss on the plane, with a view box, a suggested start and its minima.

    Attributes
    ----------
    name : str
    value : callable
        ``value(points)`` for points of shape ``(..., 2)``; returns shape ``(...)``.
    grad : callable
        ``grad(x)`` for one point of shape ``(2,)``; returns shape ``(2,)``.
    xlim, ylim : tuple of float
        The box in which the surface is drawn.
    start : tuple of float
        A starting point that shows the surface's difficulty.
    minima : tuple of (float, float)
        The minimizers.
    hessian : callable
        ``hessian(x)`` for one point of shape ``(2,)``; returns the (2, 2)
        matrix of second derivatives (Newton's method needs it).
    """

    name: str
    value: Callable[[np.ndarray], np.ndarray]
    grad: Callable[[np.ndarray], np.ndarray]
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    start: tuple[float, float]
    minima: tuple[tuple[float, float], ...]
    hessian: Callable[[np.ndarray], np.ndarray]


def quadratic_surface(kappa: float = 25.0, angle: float = math.pi / 6) -> Surface:
    """``1/2 x^T H x`` with eigenvalues ``1`` and ``kappa``, axes rotated by ``angle``.

    The condition number is ``kappa``; the minimum is the origin.
    """
    kappa = check_real(kappa, "kappa", low=1.0)
    q = make_quadratic([1.0, kappa], angle=check_real(angle, "angle"))
    return Surface(
        name=f"quadratic, condition number {kappa:g}",
        value=q.value,
        grad=q.grad,
        xlim=(-3.2, 3.2),
        ylim=(-2.4, 2.4),
        start=(-2.8, -0.4),
        minima=((0.0, 0.0),),
        hessian=lambda point: q.H.copy(),
    )


def rosenbrock(a: float = 1.0, b: float = 100.0) -> Surface:
    """``(a - x)^2 + b (y - x^2)^2``, minimum ``(a, a^2)`` at the bottom of a curved valley."""
    a = check_real(a, "a")
    b = check_real(b, "b", low=0.0, low_open=True)

    def value(points):
        p = np.asarray(points, dtype=np.float64)
        x, y = p[..., 0], p[..., 1]
        return (a - x) ** 2 + b * (y - x**2) ** 2

    def grad(point):
        x, y = np.asarray(point, dtype=np.float64)
        return np.array([-2 * (a - x) - 4 * b * x * (y - x**2), 2 * b * (y - x**2)])

    def hessian(point):
        x, y = np.asarray(point, dtype=np.float64)
        return np.array([[2 - 4 * b * (y - x**2) + 8 * b * x**2, -4 * b * x], [-4 * b * x, 2 * b]])

    return Surface(
        name="Rosenbrock valley",
        value=value,
        grad=grad,
        xlim=(-2.0, 2.0),
        ylim=(-1.0, 3.0),
        start=(-1.2, 1.0),
        minima=((a, a * a),),
        hessian=hessian,
    )


def saddle() -> Surface:
    """``x^2/2 - y^2/2 + y^4/4``: a saddle at the origin, minima ``(0, +-1)`` of value -1/4."""

    def value(points):
        p = np.asarray(points, dtype=np.float64)
        x, y = p[..., 0], p[..., 1]
        return x**2 / 2 - y**2 / 2 + y**4 / 4

    def grad(point):
        x, y = np.asarray(point, dtype=np.float64)
        return np.array([x, y**3 - y])

    return Surface(
        name="saddle",
        value=value,
        grad=grad,
        xlim=(-2.0, 2.0),
        ylim=(-1.6, 1.6),
        start=(-1.8, 1e-3),
        minima=((0.0, 1.0), (0.0, -1.0)),
        hessian=lambda point: np.array([[1.0, 0.0], [0.0, 3 * float(point[1]) ** 2 - 1.0]]),
    )


_GRIDS: dict = {}


def _contour_lines(surface: Surface, n: int) -> list[np.ndarray]:
    """The contour lines of ``surface`` on an ``n`` x ``n`` grid, computed once and cached.

    Levels crowd near the minimum: they are quantiles of the heights on the
    grid, spaced quadratically. Returned as a list of (k, 2) polylines.
    """
    key = (surface, n)
    if key not in _GRIDS:
        import contourpy

        gx, gy = np.meshgrid(np.linspace(*surface.xlim, n), np.linspace(*surface.ylim, n))
        z = surface.value(np.stack([gx, gy], axis=-1))
        z = z - z.min()
        levels = np.unique(np.quantile(z, np.linspace(0.03, 0.97, 16) ** 2))
        generator = contourpy.contour_generator(gx, gy, z)
        _GRIDS[key] = [line for level in levels for line in generator.lines(level)]
    return _GRIDS[key]


def draw_contours(ax, surface: Surface, *, n: int = 160, **kwargs) -> None:
    """Draw the contour lines of ``surface`` over its box, and mark its minima.

    The lines are computed once per surface and grid size ``n`` and then
    reused, so redrawing in a slider costs only the drawing (one
    ``LineCollection``). Keyword arguments style the lines (``colors``,
    ``linewidths``, ``alpha``).
    """
    from matplotlib.collections import LineCollection

    if not isinstance(surface, Surface):
        raise TypeError(f"surface must be a Surface, got {type(surface).__name__}")
    n = check_int(n, "n", low=10)
    style = {"colors": "#a0a0a0", "linewidths": 0.7} | kwargs
    ax.add_collection(LineCollection(_contour_lines(surface, n), **style), autolim=False)
    minima = np.array(surface.minima)
    ax.plot(*minima.T, "*", color="black", ms=9, zorder=4, label="minimum")
    ax.set(xlim=surface.xlim, ylim=surface.ylim, xlabel="$x_1$", ylabel="$x_2$")


def clip_path(path, surface: Surface, *, margin: float = 0.5) -> np.ndarray:
    """The iterates of ``path`` up to the first one that leaves the (enlarged) box.

    A diverging run would stretch a plot's limits to astronomic values; the
    part inside the box is what a figure can show.
    """
    path = as_float_array(path, "path", ndim=2)
    (x0, x1), (y0, y1) = surface.xlim, surface.ylim
    mx, my = margin * (x1 - x0), margin * (y1 - y0)
    inside = (
        (path[:, 0] >= x0 - mx)
        & (path[:, 0] <= x1 + mx)
        & (path[:, 1] >= y0 - my)
        & (path[:, 1] <= y1 + my)
    )
    out = np.flatnonzero(~inside)
    return path if out.size == 0 else path[: out[0] + 1]
