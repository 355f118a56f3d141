"""Hyperparameter search: grid against random search at the same budget (chapter 7).

:func:`grid_points` and :func:`random_points` place a budget of trials in a box
of hyperparameters (log-scaled axes for rates and decays). When only one of the
hyperparameters matters, a grid of ``k`` values per axis tries only ``k``
distinct values of it, while random search tries as many as it has trials.
:func:`hit_probability` gives the chance that at least one trial lands within
``delta / 2`` of the optimum of the important axis, and
:func:`simulate_hit_rate` measures it by simulation.

The simulation's geometry: on the important axis, rescaled to the circle
[0, 1) (so that no edge effects blur the closed forms), the optimum is uniform;
a grid tries the cell centres ``(i + 1/2) / k`` (so every trial has its own
value), random search draws its values uniformly.

NumPy only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dl_course._checks import check_int, check_real, check_seed

STRATEGIES = ("grid", "random")


def _check_bounds(bounds, log) -> tuple[np.ndarray, np.ndarray]:
    """``bounds`` as (d, 2) lows and highs, and ``log`` as d booleans."""
    try:
        array = np.asarray(bounds, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"bounds must be a sequence of (low, high) pairs, got {bounds!r}") from None
    if array.ndim != 2 or array.shape[1] != 2 or len(array) == 0:
        raise ValueError(f"bounds must be a sequence of (low, high) pairs, got shape {array.shape}")
    if not np.all(np.isfinite(array)) or np.any(array[:, 0] >= array[:, 1]):
        raise ValueError(
            f"every pair of bounds must be finite with low < high, got {array.tolist()}"
        )
    flags = np.broadcast_to(np.asarray(log, dtype=bool), len(array))
    if np.any(array[flags, 0] <= 0):
        raise ValueError("log-scaled axes need bounds > 0")
    return array, flags


def _scale(unit: np.ndarray, bounds: np.ndarray, log: np.ndarray) -> np.ndarray:
    """Map points of the unit cube into ``bounds`` (geometrically on log axes)."""
    low, high = bounds[:, 0], bounds[:, 1]
    linear = low + unit * (high - low)
    geometric = np.exp(np.log(np.where(log, low, 1.0)) * (1 - unit)) * np.exp(
        np.log(np.where(log, high, 1.0)) * unit
    )
    return np.where(log, geometric, linear)


def grid_points(
    bounds: Sequence, per_axis: int, *, log: bool | Sequence[bool] = True
) -> np.ndarray:
    """A grid of ``per_axis`` values on every axis of ``bounds``: ``per_axis ** d`` points.

    The values are the centres of ``per_axis`` equal cells of each axis (on a
    log scale where ``log`` is true), so the grid keeps away from the edges as
    random search does. Rows vary the last axis fastest. Chapter 7.
    """
    bounds, flags = _check_bounds(bounds, log)
    per_axis = check_int(per_axis, "per_axis", low=1)
    centres = (np.arange(per_axis) + 0.5) / per_axis
    unit = np.stack(np.meshgrid(*[centres] * len(bounds), indexing="ij"), axis=-1)
    return _scale(unit.reshape(-1, len(bounds)), bounds, flags)


def random_points(
    bounds: Sequence, n: int, *, log: bool | Sequence[bool] = True, seed: int = 0
) -> np.ndarray:
    """``n`` points drawn uniformly from ``bounds`` (log-uniformly where ``log``). Chapter 7."""
    bounds, flags = _check_bounds(bounds, log)
    n = check_int(n, "n", low=1)
    unit = np.random.default_rng(check_seed(seed)).uniform(size=(n, len(bounds)))
    return _scale(unit, bounds, flags)


def hit_probability(strategy: str, n_trials: int, delta: float, dims: int = 2) -> float:
    """Chance that some trial lies within ``delta / 2`` of the optimum of the one axis that matters.

    ``random``: each trial hits with probability ``delta``, independently, so
    ``1 - (1 - delta) ** n_trials``. ``grid``: ``n_trials`` must be a perfect
    ``dims``-th power ``k ** dims``; the ``k`` distinct values, ``1 / k`` apart,
    cover ``min(1, k delta)`` of the circle. Chapter 7.
    """
    strategy = _check_strategy(strategy)
    n_trials = check_int(n_trials, "n_trials", low=1)
    delta = check_real(delta, "delta", low=0.0, high=1.0)
    dims = check_int(dims, "dims", low=1)
    if strategy == "random":
        return 1.0 - (1.0 - delta) ** n_trials
    return min(1.0, _per_axis(n_trials, dims) * delta)


def simulate_hit_rate(
    strategy: str,
    n_trials: int,
    delta: float,
    dims: int = 2,
    *,
    searches: int = 10_000,
    seed: int = 0,
) -> float:
    """Fraction of ``searches`` simulated searches with a trial within ``delta / 2`` of the optimum.

    Each search draws a new optimum (uniform on the circle) for the one axis
    that matters; random search draws ``n_trials`` new points in ``dims``
    dimensions, the grid is the fixed ``k ** dims`` grid of
    :func:`grid_points` on the unit cube. Only the first coordinate of each
    trial matters. Vectorized over searches. Chapter 7.
    """
    strategy = _check_strategy(strategy)
    n_trials = check_int(n_trials, "n_trials", low=1)
    delta = check_real(delta, "delta", low=0.0, high=1.0)
    dims = check_int(dims, "dims", low=1)
    searches = check_int(searches, "searches", low=1)
    rng = np.random.default_rng(check_seed(seed))
    optimum = rng.uniform(size=(searches, 1))
    if strategy == "grid":
        unit_box = [(0.0, 1.0)] * dims
        trials = grid_points(unit_box, _per_axis(n_trials, dims), log=False)[None, :, 0]
    else:
        trials = rng.uniform(size=(searches, n_trials, dims))[:, :, 0]
    gap = np.abs(trials - optimum)
    distance = np.minimum(gap, 1.0 - gap)  # on the circle
    return float(np.mean(np.any(distance <= delta / 2, axis=1)))


def _check_strategy(strategy) -> str:
    if not isinstance(strategy, str) or strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {list(STRATEGIES)}, got {strategy!r}")
    return strategy


def _per_axis(n_trials: int, dims: int) -> int:
    k = round(n_trials ** (1 / dims))
    if k**dims != n_trials:
        raise ValueError(
            f"a grid needs n_trials = k ** dims for a whole k; got n_trials = {n_trials} "
            f"with dims = {dims}"
        )
    return k


def distinct_values(points, axis: int = 0) -> int:
    """How many different values of hyperparameter ``axis`` the trials ``points`` try."""
    points = np.asarray(points, dtype=float)
    if points.ndim != 2:
        raise ValueError(f"points must be 2-D (trials, hyperparameters), got shape {points.shape}")
    axis = check_int(axis, "axis", low=0, high=points.shape[1] - 1)
    return len(np.unique(points[:, axis]))
