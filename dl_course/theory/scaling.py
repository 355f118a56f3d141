"""Scaling laws: fitting ``L(n) = A n^-alpha + B`` and a teacher-student with known exponents.

Chapter 19 measures how test loss falls with the training-set size ``n`` and the
model size ``k``, on learners whose every fit is exact linear algebra:

- :func:`fit_power_law` fits ``A n^-alpha + B`` by *profiling*: for each exponent the
  best ``A`` and ``B`` are a weighted linear least-squares problem, so only a 1-D
  search over ``alpha`` is left (a log-spaced grid, then golden-section refinement).
  No starting point is needed. :func:`fit_power_laws` fits many curves at once and
  :func:`bootstrap_power_law` resamples seeds to give intervals on the three numbers
  and on extrapolated losses;
- the *truncated least-squares learner*: ordinary least squares on the first ``k``
  of a sequence of orthonormal features. Its test loss given the fitted
  coefficients is exact (:func:`ols_risk_curves`), and for independent Gaussian
  features its expectation has the closed form of :func:`truncated_ols_risk`;
- two task families (:class:`GaussianModes`, with target power ``j^-beta`` in
  mode ``j``, and :class:`BasisTask`, the function ``e^t`` on ``[0, 1]`` read in a
  Fourier or a cosine basis), and :func:`compute_frontier` for the
  compute-optimal envelope of loss against ``C = 6 k n``.

NumPy and SciPy only. Taught in chapter 19.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dl_course._checks import as_float_array, check_bool, check_int, check_real, check_seed
from dl_course._threads import limited_threads

#: Default upper end of the exponent search of :func:`fit_power_law`.
ALPHA_MAX = 5.0
#: Lower end of the exponent search (``alpha = 0`` makes ``A`` and ``B`` indistinguishable).
ALPHA_MIN = 1e-3
#: Points of the log-spaced exponent grid searched before the golden-section refinement.
GRID_SIZE = 200
#: Seeds simulated together by :func:`ols_risk_curves` (bounds the memory of the example pools).
SEED_CHUNK = 16
#: Golden-section iterations: the bracket shrinks by ``0.618**60``, about ``3e-13``.
GOLDEN_STEPS = 60


# -- the power law and its fit ---------------------------------------------------------------


def power_law(n, A: float, alpha: float, B: float) -> np.ndarray:
    """``A * n**-alpha + B`` at every entry of ``n`` (all > 0). Chapter 19."""
    n = as_float_array(n, "n")
    if np.any(n <= 0):
        raise ValueError("n must be > 0 (sizes of training sets or models)")
    A = check_real(A, "A")
    alpha = check_real(alpha, "alpha")
    B = check_real(B, "B")
    return A * n**-alpha + B


def _check_sizes(n, m_min: int = 4) -> np.ndarray:
    n = as_float_array(n, "n", ndim=1)
    if n.size < m_min:
        raise ValueError(f"n must hold at least {m_min} points to fit 3 parameters, got {n.size}")
    if np.any(n <= 0):
        raise ValueError(f"n must be > 0 (sizes), got {n[n <= 0][0]:g}")
    if np.unique(n).size < 3:
        raise ValueError("n must hold at least 3 distinct sizes to fit A, alpha and B")
    return n


def _check_losses(losses, name: str, m: int, ndim: int) -> np.ndarray:
    losses = as_float_array(losses, name, ndim=ndim)
    if losses.shape[-1] != m:
        raise ValueError(
            f"{name} must have one entry per size in n ({m}) along its last axis, "
            f"got shape {losses.shape}"
        )
    if np.any(losses <= 0):
        raise ValueError(f"{name} must be > 0 (a loss), got {losses[losses <= 0][0]:g}")
    return losses


def _profile(alpha: np.ndarray, ratio: np.ndarray, Y: np.ndarray, W: np.ndarray, floor: bool):
    """Best (A, B) and weighted squared error for each exponent.

    ``alpha`` has shape (k, G), ``ratio`` = n / min(n) shape (m,), ``Y`` and ``W``
    shape (k, m). Returns ``sse, A, B`` of shape (k, G); ``A`` is in units of
    ``min(n)**-alpha`` (the caller rescales).
    """
    x = ratio ** -alpha[..., None]  # (k, G, m), in (0, 1]
    w, y = W[:, None, :], Y[:, None, :]
    sw, sx, sy = w.sum(-1), (w * x).sum(-1), (w * y).sum(-1)
    sxx, sxy = (w * x * x).sum(-1), (w * x * y).sum(-1)
    det = sw * sxx - sx * sx
    with np.errstate(divide="ignore", invalid="ignore"):
        A = (sw * sxy - sx * sy) / det
        B = (sxx * sy - sx * sxy) / det
        if floor:  # B >= 0: the constrained optimum then lies on B = 0
            below = B < 0
            A = np.where(below, sxy / sxx, A)
            B = np.where(below, 0.0, B)
    sse = (w * (y - A[..., None] * x - B[..., None]) ** 2).sum(-1)
    sse = np.where(np.isfinite(sse) & (det > 0), sse, np.inf)
    return sse, A, B


def _fit_batch(n: np.ndarray, Y: np.ndarray, W: np.ndarray, alpha_max: float, floor: bool):
    """(k, 3) array of (A, alpha, B): grid search over alpha, then golden-section refinement."""
    ratio = n / n.min()
    grid = np.geomspace(ALPHA_MIN, alpha_max, GRID_SIZE)
    k = Y.shape[0]
    sse, _, _ = _profile(np.broadcast_to(grid, (k, GRID_SIZE)), ratio, Y, W, floor)
    best = np.argmin(sse, axis=1)
    lo = grid[np.maximum(best - 1, 0)]
    hi = grid[np.minimum(best + 1, GRID_SIZE - 1)]
    golden = (math.sqrt(5) - 1) / 2

    def err(a):
        return _profile(a[:, None], ratio, Y, W, floor)[0][:, 0]

    c, d = hi - golden * (hi - lo), lo + golden * (hi - lo)
    fc, fd = err(c), err(d)
    for _ in range(GOLDEN_STEPS):
        left = fc <= fd  # the minimum lies in [lo, d]
        hi, lo = np.where(left, d, hi), np.where(left, lo, c)
        c_new, d_new = hi - golden * (hi - lo), lo + golden * (hi - lo)
        fc, fd = np.where(left, err(c_new), fd), np.where(left, fc, err(d_new))
        c, d = c_new, d_new
    alpha = (lo + hi) / 2
    sse_a, A, B = (v[:, 0] for v in _profile(alpha[:, None], ratio, Y, W, floor))
    grid_sse = sse[np.arange(k), best]
    use_grid = grid_sse < sse_a  # refinement never makes the fit worse
    alpha = np.where(use_grid, grid[best], alpha)
    _, A_g, B_g = (v[:, 0] for v in _profile(grid[best][:, None], ratio, Y, W, floor))
    A, B = np.where(use_grid, A_g, A), np.where(use_grid, B_g, B)
    return np.stack([A * n.min() ** alpha, alpha, B], axis=1)


def _weights(sigma, shape: tuple, name: str = "sigma") -> np.ndarray:
    if sigma is None:
        return np.ones(shape)
    sigma = as_float_array(sigma, name)
    if np.any(sigma <= 0):
        raise ValueError(f"{name} must be > 0 (standard deviations of the losses)")
    try:
        return np.broadcast_to(1.0 / sigma**2, shape)
    except ValueError:
        raise ValueError(
            f"{name} must have the shape of the losses {shape}, got {sigma.shape}"
        ) from None


def fit_power_laws(
    n, losses, *, sigma=None, alpha_max: float = ALPHA_MAX, nonnegative_floor: bool = True
) -> np.ndarray:
    """Fit ``A n^-alpha + B`` to every row of ``losses`` at once; returns (rows, 3).

    The batched form of :func:`fit_power_law` (same arguments; ``losses`` of shape
    (rows, len(n)); ``sigma`` broadcastable to it). Row ``r`` of the result is
    ``(A, alpha, B)`` for ``losses[r]``. Chapter 19.
    """
    n = _check_sizes(n)
    losses = _check_losses(losses, "losses", n.size, ndim=2)
    alpha_max = check_real(alpha_max, "alpha_max", low=10 * ALPHA_MIN)
    floor = check_bool(nonnegative_floor, "nonnegative_floor")
    W = _weights(sigma, losses.shape)
    return _fit_batch(n, losses, W, alpha_max, floor)


def fit_power_law(
    n, loss, *, sigma=None, alpha_max: float = ALPHA_MAX, nonnegative_floor: bool = True
) -> tuple[float, float, float]:
    """Least-squares fit of ``loss = A n^-alpha + B``; returns ``(A, alpha, B)``.

    For a fixed exponent the model is linear in ``A`` and ``B``, so their best values
    are a 2 x 2 weighted least-squares solve. What is left is the 1-D *profile*
    ``alpha -> min_{A, B} sum_i ((loss_i - A n_i^-alpha - B) / sigma_i)^2``, searched on
    a log-spaced grid over ``[1e-3, alpha_max]`` and refined by golden-section search
    around the best grid point. No starting point is needed, so the fit cannot be
    trapped by a bad one (as :func:`scipy.optimize.curve_fit` can).

    Parameters
    ----------
    n : array_like (m,)
        Training-set (or model) sizes, > 0, at least 4 points and 3 distinct values
        (repeats, such as several seeds at one size, are allowed).
    loss : array_like (m,)
        The measured losses, > 0 and finite.
    sigma : array_like (m,), optional
        Standard deviations of the losses: residuals are divided by them, as in
        ``curve_fit``. ``sigma=loss`` fits relative errors, so that every decade of
        ``n`` counts alike. Default: all equal.
    alpha_max : float
        Upper end of the exponent search (default 5). A fit that ends there has
        not found an interior optimum.
    nonnegative_floor : bool
        Constrain ``B >= 0`` (default): a loss cannot fall below zero.

    Returns
    -------
    (A, alpha, B) : tuple of float

    Examples
    --------
    >>> n = np.array([10, 20, 40, 80, 160, 320])
    >>> A, alpha, B = fit_power_law(n, 3.0 * n**-0.5 + 0.2)
    >>> round(alpha, 6), round(B, 6)
    (0.5, 0.2)

    Taught in chapter 19.
    """
    n = _check_sizes(n)
    loss = _check_losses(loss, "loss", n.size, ndim=1)
    if n.shape != loss.shape:
        raise ValueError(f"loss must have the shape of n {n.shape}, got {loss.shape}")
    A, alpha, B = fit_power_laws(
        n,
        loss[None],
        sigma=None if sigma is None else as_float_array(sigma, "sigma", ndim=1)[None],
        alpha_max=alpha_max,
        nonnegative_floor=nonnegative_floor,
    )[0]
    return float(A), float(alpha), float(B)


@dataclass(frozen=True)
class PowerLawBootstrap:
    """Bootstrap distribution of a power-law fit (see :func:`bootstrap_power_law`).

    Attributes
    ----------
    n : ndarray (m,)
        The sizes that were fitted.
    curve : ndarray (m,)
        The curve fitted on all seeds (their mean, or its minimum over model sizes).
    fit : tuple (A, alpha, B)
        The fit of ``curve``.
    samples : ndarray (n_boot, 3)
        ``(A, alpha, B)`` fitted on each resample of the seeds.
    level : float
        Coverage of the percentile intervals.

    Chapter 19.
    """

    n: np.ndarray
    curve: np.ndarray
    fit: tuple
    samples: np.ndarray
    level: float

    def interval(self, name: str = "alpha") -> tuple[float, float]:
        """Percentile interval of ``"A"``, ``"alpha"`` or ``"B"`` over the resamples."""
        names = ("A", "alpha", "B")
        if name not in names:
            raise ValueError(f"name must be one of {names}, got {name!r}")
        values = self.samples[:, names.index(name)]
        tail = (1 - self.level) / 2
        low, high = np.quantile(values, [tail, 1 - tail])
        return float(low), float(high)

    def predict(self, n) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The fitted loss at ``n`` and its percentile band: ``(center, low, high)``."""
        n = as_float_array(n, "n")
        if np.any(n <= 0):
            raise ValueError("n must be > 0")
        A, alpha, B = (self.samples[:, i, None] for i in range(3))
        curves = A * n.ravel() ** -alpha + B
        tail = (1 - self.level) / 2
        low, high = np.quantile(curves, [tail, 1 - tail], axis=0)
        center = power_law(n, *self.fit)
        return center, low.reshape(n.shape), high.reshape(n.shape)


def bootstrap_power_law(
    n,
    losses,
    *,
    n_boot: int = 1000,
    level: float = 0.9,
    relative: bool = True,
    seed: int = 0,
    alpha_max: float = ALPHA_MAX,
) -> PowerLawBootstrap:
    """Fit ``A n^-alpha + B`` to the seed-mean loss, with intervals from resampling seeds.

    Parameters
    ----------
    n : array_like (m,)
        Sizes, as in :func:`fit_power_law`.
    losses : array_like (seeds, m) or (seeds, m, sizes)
        One loss curve per seed (at least 2 seeds). With a third axis (one column per
        model size), the curve fitted is the *best model size at each n*: the
        minimum over that axis of the seed mean (the optimal loss ``L*(n)``);
        ``NaN`` marks a size that was not trained at some ``n`` (a size that is ``NaN``
        for any seed is left out at that ``n``).
    n_boot : int
        Number of resamples (the seeds drawn with replacement), default 1000.
    level : float
        Coverage of the percentile intervals, in (0, 1); default 0.9.
    relative : bool
        Weight residuals by ``1 / curve`` (fit relative errors; default) or equally.
    seed : int
        Seed of the resampling.
    alpha_max : float
        Upper end of the exponent search.

    Returns
    -------
    PowerLawBootstrap

    Taught in chapter 19.
    """
    n = _check_sizes(n)
    losses = np.asarray(losses, dtype=np.float64)
    if losses.ndim not in (2, 3):
        raise ValueError(f"losses must be 2-D or 3-D (seeds, sizes[, models]), got {losses.shape}")
    if losses.shape[1] != n.size:
        raise ValueError(
            f"losses must have one column per size in n ({n.size}), got {losses.shape}"
        )
    if losses.shape[0] < 2:
        raise ValueError("losses must hold at least 2 seeds to resample")
    if np.any(np.isinf(losses)) or np.any(losses <= 0):
        raise ValueError("losses must be finite and > 0 (NaN marks an untrained model)")
    n_boot = check_int(n_boot, "n_boot", low=2)
    level = check_real(level, "level", low=0.0, high=1.0, low_open=True, high_open=True)
    relative = check_bool(relative, "relative")
    rng = np.random.default_rng(check_seed(seed))
    seeds = losses.shape[0]
    picks = rng.integers(0, seeds, size=(n_boot, seeds))
    counts = np.zeros((n_boot + 1, seeds))  # row 0: every seed once (the fit itself)
    counts[0] = 1.0
    np.add.at(counts, (np.arange(n_boot)[:, None] + 1, picks), 1.0)
    untrained = np.isnan(losses).any(axis=0)  # NaN for any seed: not trained at that n
    flat = np.where(np.isnan(losses), 0.0, losses).reshape(seeds, -1)
    with limited_threads(0.0):
        means = (counts @ flat / seeds).reshape((n_boot + 1,) + losses.shape[1:])
    means = np.where(untrained, np.nan, means)
    every = means if losses.ndim == 2 else _nanmin(means, axis=-1)
    if not np.all(np.isfinite(every)):
        raise ValueError("losses leave some size n without any trained model (all NaN)")
    sigma = every if relative else None
    fits = fit_power_laws(n, every, sigma=sigma, alpha_max=alpha_max)
    return PowerLawBootstrap(n, every[0], tuple(float(v) for v in fits[0]), fits[1:], level)


def _nanmin(values: np.ndarray, axis: int) -> np.ndarray:
    filled = np.where(np.isnan(values), np.inf, values)
    out = filled.min(axis=axis)
    return np.where(np.isinf(out), np.nan, out)


# -- the truncated least-squares learner ------------------------------------------------------


def power_law_tail(k, beta: float) -> np.ndarray:
    """``T_k = sum_{j > k} j^-beta`` (the Hurwitz zeta ``zeta(beta, k + 1)``), for ``beta > 1``.

    The loss that a model of the first ``k`` modes cannot remove when mode ``j``
    carries power ``j^-beta`` (:class:`GaussianModes`). Chapter 19.
    """
    from scipy.special import zeta

    beta = check_real(beta, "beta", low=1.0, low_open=True)
    k = as_float_array(k, "k")
    if np.any(k < 0):
        raise ValueError("k must be >= 0 (a number of modes)")
    return zeta(beta, k + 1.0)


def truncated_ols_risk(k, n, *, beta: float, noise: float) -> np.ndarray:
    """Expected test loss of least squares on the first ``k`` of independent Gaussian modes.

    For the task of :class:`GaussianModes` (mode ``j`` standard normal with
    coefficient ``j^(-beta/2)``, label noise of standard deviation ``noise``),
    ordinary least squares on ``k`` modes from ``n > k + 1`` examples has expected
    test mean squared error (against noisy test labels)

    ``(noise^2 + T_k) (n - 1) / (n - k - 1)``,   ``T_k = sum_{j > k} j^-beta``.

    ``k`` and ``n`` broadcast against each other; ``n`` may be fractional. Chapter 19.
    """
    noise = check_real(noise, "noise", low=0.0)
    k = as_float_array(k, "k")
    n = as_float_array(n, "n")
    if np.any(k < 1) or np.any(k != np.round(k)):
        raise ValueError("k must hold whole numbers >= 1 (numbers of modes)")
    if np.any(n <= k + 1):
        raise ValueError("n must exceed k + 1 for the expected risk to be finite")
    return (noise**2 + power_law_tail(k, beta)) * (n - 1) / (n - k - 1)


@dataclass(frozen=True)
class GaussianModes:
    """Teacher-student task with independent standard normal modes ``z_j``.

    The target is ``y = sum_j j^(-beta/2) z_j + noise * xi``: mode ``j`` carries
    power ``j^-beta``. A model of size ``k`` sees the first ``k`` modes; everything
    beyond the ``max_size`` modes that are sampled is folded into one Gaussian term of
    variance ``T_max_size`` (exact in distribution). Chapter 19.
    """

    beta: float = 2.5
    noise: float = 0.5

    def __post_init__(self):
        check_real(self.beta, "beta", low=1.0, low_open=True)
        check_real(self.noise, "noise", low=0.0)

    def coefficients(self, max_size: int) -> np.ndarray:
        """The first ``max_size`` coefficients ``j^(-beta/2)``."""
        j = np.arange(1, check_int(max_size, "max_size", low=1) + 1)
        return j ** (-self.beta / 2)

    def tails(self, max_size: int) -> np.ndarray:
        """``T_k`` for ``k = 0, ..., max_size``: the power a size-``k`` model leaves out."""
        return power_law_tail(np.arange(check_int(max_size, "max_size", low=1) + 1), self.beta)

    def sample(self, n: int, max_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """``(F, y)``: ``n`` examples of the first ``max_size`` modes and their labels."""
        rng = np.random.default_rng(check_seed(seed))
        F = rng.standard_normal((check_int(n, "n", low=1), max_size))
        rest = math.sqrt(self.tails(max_size)[-1]) * rng.standard_normal(n)
        y = F @ self.coefficients(max_size) + rest + self.noise * rng.standard_normal(n)
        return F, y


#: Bases of :class:`BasisTask`.
BASES = ("fourier", "cosine", "legendre")


@dataclass(frozen=True)
class BasisTask:
    """Regression of ``f(t) = e^t`` with ``t`` uniform on ``[0, 1]``, read in an orthonormal basis.

    ``basis="fourier"``: ``1, sqrt2 cos(2 pi t), sqrt2 sin(2 pi t), sqrt2 cos(4 pi t), ...``;
    the periodic extension of ``e^t`` jumps at ``t = 1``, so the coefficients fall
    like ``1 / j`` and the power in mode ``j`` like ``j^-2``.
    ``basis="cosine"``: ``1, sqrt2 cos(pi t), sqrt2 cos(2 pi t), ...``; the even
    extension is continuous with a kink, so the power falls like ``j^-4``.
    ``basis="legendre"``: the orthonormal Legendre polynomials ``sqrt(2j+1) P_j(2t - 1)``;
    ``e^t`` is analytic, so the power falls faster than any power of ``j``.
    Both bases are orthonormal under the uniform distribution, so the test loss of
    coefficients ``a_hat`` on the first ``k`` functions is exactly
    ``noise^2 + |a_hat - a_{1:k}|^2 + T_k``. Chapter 19.
    """

    basis: str = "fourier"
    noise: float = 0.5

    def __post_init__(self):
        if self.basis not in BASES:
            raise ValueError(f"basis must be one of {BASES}, got {self.basis!r}")
        check_real(self.noise, "noise", low=0.0)

    def _frequencies(self, max_size: int):
        j = np.arange(max_size)
        if self.basis == "cosine":
            return np.pi * j, np.zeros(max_size, dtype=bool)
        m = (j + 1) // 2  # 0, 1, 1, 2, 2, ...
        return 2 * np.pi * m, (j % 2 == 0) & (j > 0)  # even j > 0: sine

    def features(self, t, max_size: int) -> np.ndarray:
        """The first ``max_size`` basis functions at the points ``t``: shape (len(t), max_size)."""
        t = as_float_array(t, "t", ndim=1)
        max_size = check_int(max_size, "max_size", low=1)
        if self.basis == "legendre":
            scale = np.sqrt(2 * np.arange(max_size) + 1)
            return np.polynomial.legendre.legvander(2 * t - 1, max_size - 1) * scale
        omega, sine = self._frequencies(max_size)
        phase = np.outer(t, omega)
        F = np.where(sine, np.sin(phase), np.cos(phase)) * math.sqrt(2)
        F[:, 0] = 1.0
        return F

    def coefficients(self, max_size: int) -> np.ndarray:
        """Exact coefficients ``a_j = E[e^t phi_j(t)]`` of the first ``max_size`` functions."""
        max_size = check_int(max_size, "max_size", low=1)
        if self.basis == "legendre":  # Gauss-Legendre quadrature, exact to round-off here
            nodes, weights = np.polynomial.legendre.leggauss(max_size + 40)
            t = (nodes + 1) / 2
            return (weights / 2 * np.exp(t)) @ self.features(t, max_size)
        omega, sine = self._frequencies(max_size)
        e = math.e
        end = np.cos(omega) * e - 1  # e^t cos(omega t) at 1 minus at 0 (sin terms vanish)
        cos_part = end / (1 + omega**2)  # integral of e^t cos(omega t)
        sin_part = -omega * end / (1 + omega**2)  # integral of e^t sin(omega t)
        a = math.sqrt(2) * np.where(sine, sin_part, cos_part)
        a[0] = e - 1
        return a

    def tails(self, max_size: int) -> np.ndarray:
        """``T_k = |f|^2 - sum_{j <= k} a_j^2`` for ``k = 0, ..., max_size``."""
        a = self.coefficients(max_size)
        total = (math.e**2 - 1) / 2
        return np.maximum(total - np.concatenate([[0.0], np.cumsum(a**2)]), 0.0)

    def sample(self, n: int, max_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """``(F, y)``: features of ``n`` uniform points and their noisy labels ``e^t + noise xi``."""
        rng = np.random.default_rng(check_seed(seed))
        t = rng.uniform(size=check_int(n, "n", low=1))
        y = np.exp(t) + self.noise * rng.standard_normal(n)
        return self.features(t, max_size), y


def _nested_excess(gram: np.ndarray, moment: np.ndarray, a: np.ndarray) -> np.ndarray:
    """``|a_hat_k - a_{1:k}|^2`` for every ``k`` from one Cholesky factor per seed.

    With ``F^T F = L L^T`` and ``u = L^-1 F^T y``, the fit on the first ``k`` features
    is ``a_hat_k = U_k u_k`` where ``U = L^-T`` (upper triangular, so its leading
    ``k x k`` block is the inverse of the leading block of ``L^T``). Hence
    ``a_hat_k[j] = sum_{i < k} U[j, i] u[i]``: a cumulative sum gives every ``k`` at once.
    """
    try:
        L = np.linalg.cholesky(gram)
    except np.linalg.LinAlgError:  # numerically singular: fit each size on its own
        return _excess_one_by_one(gram, moment, a)
    L_inv = np.linalg.inv(L)  # lower triangular
    u = np.matmul(L_inv, moment[..., None])[..., 0]
    fits = np.cumsum(L_inv.transpose(0, 2, 1) * u[:, None, :], axis=2)  # [s, j, k-1]
    errors = (fits - a[None, :, None]) ** 2
    return np.triu(errors).sum(axis=1)  # keep j <= k - 1


def _excess_one_by_one(gram: np.ndarray, moment: np.ndarray, a: np.ndarray) -> np.ndarray:
    """The slow path of :func:`_nested_excess`: a least-squares solve per seed and size."""
    out = np.empty(moment.shape)
    for s_, (G, b) in enumerate(zip(gram, moment, strict=True)):
        for k in range(1, a.size + 1):
            a_hat = np.linalg.lstsq(G[:k, :k], b[:k], rcond=None)[0]
            out[s_, k - 1] = ((a_hat - a[:k]) ** 2).sum()
    return out


def ols_risk_curves(task, ns, max_size: int, seeds) -> np.ndarray:
    """Exact test loss of least squares on the first ``k`` features, for every ``k``, ``n``, seed.

    For each seed one pool of ``max(ns)`` examples is drawn (``task.sample``); the
    training set of size ``n`` is its first ``n`` examples, so the sets are nested.
    The normal equations ``F^T F a = F^T y`` are accumulated as the set grows, and
    the fit on the first ``k`` features uses their leading ``k x k`` block.

    Parameters
    ----------
    task : GaussianModes or BasisTask
    ns : sequence of int
        Training-set sizes (each >= 4).
    max_size : int
        Largest model size ``k``; sizes with ``k > n / 2`` are not fitted (``NaN``).
    seeds : sequence of int
        At least one seed.

    Returns
    -------
    ndarray (len(seeds), len(ns), max_size)
        Entry ``[s, i, k - 1]``: ``noise^2 + |a_hat - a_{1:k}|^2 + T_k``, the exact
        test mean squared error (against noisy labels) of the size-``k`` fit.

    Taught in chapter 19.
    """
    if not isinstance(task, GaussianModes | BasisTask):
        raise TypeError(f"task must be a GaussianModes or BasisTask, got {type(task).__name__}")
    if isinstance(ns, str | bytes) or np.ndim(ns) != 1 or len(ns) == 0:
        raise ValueError(f"ns must be a non-empty 1-D sequence of sizes, got {ns!r}")
    ns = [check_int(v, f"ns[{i}]", low=4) for i, v in enumerate(ns)]
    max_size = check_int(max_size, "max_size", low=1)
    if isinstance(seeds, str | bytes) or np.ndim(seeds) != 1 or len(seeds) == 0:
        raise ValueError(f"seeds must be a non-empty 1-D sequence of seeds, got {seeds!r}")
    seeds = [check_seed(s, f"seeds[{i}]") for i, s in enumerate(seeds)]
    chunks = [seeds[i : i + SEED_CHUNK] for i in range(0, len(seeds), SEED_CHUNK)]
    return np.concatenate([_risk_chunk(task, ns, max_size, chunk) for chunk in chunks])


def _risk_chunk(task, ns: list[int], max_size: int, seeds: list[int]) -> np.ndarray:
    """:func:`ols_risk_curves` for a few seeds at a time (the pools of examples are large)."""
    order = np.argsort(ns)
    a, tails = task.coefficients(max_size), task.tails(max_size)
    risks = np.full((len(seeds), len(ns), max_size), np.nan)
    with limited_threads(0.0):  # small matrices: one BLAS thread is fastest on a busy machine
        pools = [task.sample(max(ns), max_size, s) for s in seeds]
        F_all = np.stack([F for F, _ in pools])
        y_all = np.stack([y for _, y in pools])
        gram = np.zeros((len(seeds), max_size, max_size))
        moment = np.zeros((len(seeds), max_size))
        done = 0
        for i in order:  # the sets are nested: add the new rows to F^T F and F^T y
            n = ns[i]
            new_F, new_y = F_all[:, done:n], y_all[:, done:n]
            gram += np.matmul(new_F.transpose(0, 2, 1), new_F)
            moment += np.matmul(new_F.transpose(0, 2, 1), new_y[..., None])[..., 0]
            done = n
            k_top = min(max_size, n // 2)
            excess = _nested_excess(gram[:, :k_top, :k_top], moment[:, :k_top], a[:k_top])
            risks[:, i, :k_top] = task.noise**2 + excess + tails[1 : k_top + 1]
    return risks


# -- compute ---------------------------------------------------------------------------------


def training_flops(k, n) -> np.ndarray:
    """The book's compute convention ``C = 6 k n``: 6 flops per parameter per example.

    The count of Kaplan et al. (2020) for one pass over ``n`` examples: about 2 flops
    per parameter in the forward pass and 4 in the backward pass. Chapter 19.
    """
    k = as_float_array(k, "k")
    n = as_float_array(n, "n")
    if np.any(k <= 0) or np.any(n <= 0):
        raise ValueError("k and n must be > 0")
    return 6.0 * k * n


def compute_frontier(sizes, compute, loss_fn) -> tuple[np.ndarray, np.ndarray]:
    """The compute-optimal envelope: best loss and model size at each compute budget.

    Parameters
    ----------
    sizes : sequence of int
        Candidate model sizes ``k``.
    compute : array_like (c,)
        Budgets ``C``; a size ``k`` trains on ``n = C / (6 k)`` examples.
    loss_fn : callable
        ``loss_fn(k, n) -> loss`` for one size and an array of (possibly fractional)
        ``n``; return ``inf`` or ``NaN`` where the size cannot be trained.

    Returns
    -------
    (best_loss, best_size) : ndarrays (c,)
        ``NaN`` / 0 where no size can be trained.

    Chapter 19.
    """
    compute = as_float_array(compute, "compute", ndim=1)
    if np.any(compute <= 0):
        raise ValueError("compute must be > 0 (flops)")
    if not callable(loss_fn):
        raise TypeError("loss_fn must be callable as loss_fn(k, n)")
    sizes = [check_int(k, f"sizes[{i}]", low=1) for i, k in enumerate(sizes)]
    if not sizes:
        raise ValueError("sizes must hold at least one model size")
    table = np.array([np.asarray(loss_fn(k, compute / (6.0 * k)), float) for k in sizes])
    table = np.where(np.isfinite(table), table, np.inf)
    pick = np.argmin(table, axis=0)
    best = table[pick, np.arange(compute.size)]
    size = np.where(np.isfinite(best), np.array(sizes)[pick], 0)
    return np.where(np.isfinite(best), best, np.nan), size
