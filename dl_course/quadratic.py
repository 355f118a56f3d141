"""Quadratic losses and the closed-form rates of gradient methods on them (chapter 6).

Near a minimum every smooth loss looks like a quadratic
``f(x) = 1/2 (x - x_star)^T H (x - x_star)``, and on a quadratic the classic
first-order methods are linear maps of the error whose contraction factors
have closed forms. Chapter 6 measures the iterates of :func:`dl_course.optim.optimize`
against these formulas:

- gradient descent with step ``lr`` multiplies the error along eigenvector
  ``i`` by ``1 - lr * lam_i`` per step (:func:`gd_rate`, :func:`best_gd_step`);
- the heavy ball (torch's SGD with ``momentum``) acts on each eigen-direction
  through a 2x2 matrix whose spectral radius is :func:`heavy_ball_rate`;
  :func:`best_heavy_ball` gives the step and momentum that minimize it;
- :func:`measured_rate` and :func:`iterations_to_tolerance` read the same
  quantities off a trajectory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dl_course._checks import as_float_array, check_int, check_real


@dataclass(frozen=True)
class Quadratic:
    """The loss ``f(x) = 1/2 (x - x_star)^T H (x - x_star)`` with ``H`` symmetric.

    Build one with :func:`make_quadratic`. ``value`` and ``grad`` accept points
    of shape ``(..., d)``, so a whole grid of points is evaluated at once.
    """

    H: np.ndarray
    x_star: np.ndarray

    @property
    def eigenvalues(self) -> np.ndarray:
        """The eigenvalues of ``H``, ascending."""
        return np.linalg.eigvalsh(self.H)

    @property
    def condition_number(self) -> float:
        """``lam_max / lam_min`` (infinite when ``H`` is singular)."""
        lam = self.eigenvalues
        return float(lam[-1] / lam[0]) if lam[0] > 0 else math.inf

    def value(self, x) -> np.ndarray | float:
        """``f(x)`` for ``x`` of shape ``(d,)`` (a float) or ``(..., d)`` (an array)."""
        e = np.asarray(x, dtype=np.float64) - self.x_star
        out = 0.5 * np.einsum("...i,ij,...j->...", e, self.H, e)
        return float(out) if out.ndim == 0 else out

    def grad(self, x) -> np.ndarray:
        """``H (x - x_star)``, of the same shape as ``x``."""
        return (np.asarray(x, dtype=np.float64) - self.x_star) @ self.H


def make_quadratic(
    eigenvalues, *, angle: float = 0.0, seed: int | None = None, x_star=None
) -> Quadratic:
    """A :class:`Quadratic` whose Hessian has the given eigenvalues (chapter 6).

    Parameters
    ----------
    eigenvalues : array_like, 1-D
        The eigenvalues of ``H`` (any real numbers: negative ones make a saddle).
    angle : float
        In two dimensions, the angle (radians) by which the eigenvectors are
        rotated away from the axes. Ignored when ``seed`` is given.
    seed : int, optional
        Rotate by a random orthogonal matrix drawn with this seed (any dimension).
    x_star : array_like, optional
        The minimizer (the stationary point); the origin by default.

    Examples
    --------
    >>> q = make_quadratic([1.0, 10.0], angle=0.5)
    >>> round(q.condition_number, 6)
    10.0
    """
    lam = as_float_array(eigenvalues, "eigenvalues", ndim=1)
    d = lam.size
    angle = check_real(angle, "angle")
    if seed is not None:
        rng = np.random.default_rng(check_int(seed, "seed", low=0))
        Q, R = np.linalg.qr(rng.standard_normal((d, d)))
        Q = Q * np.sign(np.diag(R))
    elif d == 2:
        c, s = math.cos(angle), math.sin(angle)
        Q = np.array([[c, -s], [s, c]])
    elif angle != 0.0:
        raise ValueError(f"angle only applies in two dimensions; got {d} eigenvalues (use seed)")
    else:
        Q = np.eye(d)
    H = (Q * lam) @ Q.T
    H = (H + H.T) / 2
    x_star = np.zeros(d) if x_star is None else as_float_array(x_star, "x_star", ndim=1)
    if x_star.shape != (d,):
        raise ValueError(f"x_star must have length {d}, got {x_star.shape[0]}")
    return Quadratic(H=H, x_star=x_star)


def _spectrum(eigenvalues) -> np.ndarray:
    lam = as_float_array(eigenvalues, "eigenvalues", ndim=1)
    if np.any(lam <= 0):
        raise ValueError("eigenvalues must be > 0 (a convex quadratic with a unique minimum)")
    return lam


def gd_rate(eigenvalues, lr) -> float | np.ndarray:
    """The factor ``max_i |1 - lr * lam_i|`` by which one gradient step shrinks the error.

    This is the spectral radius of ``I - lr H``. ``lr`` may be an array (the
    result then has its shape). A value below 1 means convergence from every
    start; above 1, divergence from almost every start. Taught in chapter 6.
    """
    lam = _spectrum(eigenvalues)
    lr = np.asarray(lr, dtype=np.float64)
    if np.any(~np.isfinite(lr)) or np.any(lr <= 0):
        raise ValueError("lr must be > 0 and finite")
    out = np.max(np.abs(1.0 - lr[..., None] * lam), axis=-1)
    return float(out) if out.ndim == 0 else out


def best_gd_step(eigenvalues) -> tuple[float, float]:
    """``(lr, rate)``: the step ``2 / (lam_min + lam_max)`` and its rate ``(k - 1) / (k + 1)``.

    ``k = lam_max / lam_min`` is the condition number. Chapter 6 proves that no
    fixed step does better.
    """
    lam = _spectrum(eigenvalues)
    low, high = lam.min(), lam.max()
    kappa = high / low
    return float(2.0 / (low + high)), float((kappa - 1) / (kappa + 1))


def heavy_ball_matrix(lam, lr, momentum) -> np.ndarray:
    """The 2x2 map ``(e_t, e_{t-1}) -> (e_{t+1}, e_t)`` of the heavy ball along one eigenvalue.

    The heavy ball ``x_{t+1} = x_t - lr grad f(x_t) + momentum (x_t - x_{t-1})``
    is what torch's SGD with ``momentum`` (no dampening) computes. Chapter 6. The
    arguments broadcast; the result has shape ``broadcast_shape + (2, 2)``.
    """
    arrays = (np.asarray(v, dtype=np.float64) for v in (lam, lr, momentum))
    lam, lr, momentum = np.broadcast_arrays(*arrays)
    out = np.zeros(lam.shape + (2, 2))
    out[..., 0, 0] = 1.0 + momentum - lr * lam
    out[..., 0, 1] = -momentum
    out[..., 1, 0] = 1.0
    return out


def heavy_ball_rate(eigenvalues, lr, momentum) -> float | np.ndarray:
    """The spectral radius of the heavy ball on a quadratic, in closed form.

    Along eigenvalue ``lam`` the characteristic polynomial of
    :func:`heavy_ball_matrix` is ``z^2 - a z + momentum`` with
    ``a = 1 + momentum - lr lam``. Its roots are complex, of modulus
    ``sqrt(momentum)``, when ``a^2 < 4 momentum``, and real otherwise, the
    larger of modulus ``(|a| + sqrt(a^2 - 4 momentum)) / 2``. The rate is the
    largest modulus over the eigenvalues. ``lr`` and ``momentum`` broadcast
    against each other (pass grids to get a whole map at once). Chapter 6 draws
    this map and checks it against measured rates.

    Examples
    --------
    >>> round(heavy_ball_rate([1.0, 100.0], lr=0.1, momentum=0.0), 6)  # plain GD
    9.0
    """
    lam = _spectrum(eigenvalues)
    lr, momentum = np.broadcast_arrays(
        np.asarray(lr, dtype=np.float64), np.asarray(momentum, dtype=np.float64)
    )
    if np.any(~np.isfinite(lr)) or np.any(lr <= 0):
        raise ValueError("lr must be > 0 and finite")
    if np.any(~np.isfinite(momentum)) or np.any(momentum < 0) or np.any(momentum >= 1):
        raise ValueError("momentum must be in [0, 1)")
    a = 1.0 + momentum[..., None] - lr[..., None] * lam
    disc = a * a - 4.0 * momentum[..., None]
    real = (np.abs(a) + np.sqrt(np.maximum(disc, 0.0))) / 2.0
    radius = np.where(disc >= 0, real, np.sqrt(momentum)[..., None])
    out = radius.max(axis=-1)
    return float(out) if out.ndim == 0 else out


def best_heavy_ball(eigenvalues) -> tuple[float, float, float]:
    """``(lr, momentum, rate)`` of the best heavy ball (Polyak's choice).

    ``lr = 4 / (sqrt(lam_max) + sqrt(lam_min))^2``,
    ``momentum = ((sqrt(k) - 1) / (sqrt(k) + 1))^2`` and
    ``rate = (sqrt(k) - 1) / (sqrt(k) + 1)``, with ``k`` the condition number.
    Derived in chapter 6.
    """
    lam = _spectrum(eigenvalues)
    low, high = lam.min(), lam.max()
    root = math.sqrt(high / low)
    rate = (root - 1) / (root + 1)
    return float(4.0 / (math.sqrt(high) + math.sqrt(low)) ** 2), float(rate**2), float(rate)


def _errors(path, x_star) -> np.ndarray:
    path = as_float_array(path, "path", ndim=2)
    x_star = np.zeros(path.shape[1]) if x_star is None else as_float_array(x_star, "x_star", ndim=1)
    if x_star.shape != (path.shape[1],):
        raise ValueError(f"x_star must have length {path.shape[1]}, got {x_star.shape[0]}")
    return np.linalg.norm(path - x_star, axis=1)


def measured_rate(path, x_star=None, *, tail: float = 0.5, floor: float | None = None) -> float:
    """The per-step contraction factor of a trajectory, read off its errors.

    Fits a line to ``log ||x_t - x_star||`` over the last ``tail`` fraction of
    the steps whose error is still above ``floor`` (so round-off and underflow
    do not count) and returns ``exp(slope)``. Both the current and the
    previous error enter each point (the state of a method with momentum is
    the pair), so oscillating errors do not spoil the fit.

    Parameters
    ----------
    path : array of shape (steps + 1, d)
        Iterates, as returned by :func:`dl_course.optim.optimize`.
    x_star : array_like, optional
        The minimizer; the origin by default.
    tail : float
        Fraction of the usable steps to fit, in (0, 1].
    floor : float, optional
        Errors at or below this are ignored. By default ``1e-12 ||x_star||``
        (round-off of the iterates), or ``1e-250`` when ``x_star`` is the
        origin: a linear method then keeps full relative precision down to
        underflow.
    """
    tail = check_real(tail, "tail", low=0.0, high=1.0, low_open=True)
    err = _errors(path, x_star)
    if floor is None:
        scale = 0.0 if x_star is None else float(np.linalg.norm(x_star))
        floor = 1e-12 * scale if scale > 0 else 1e-250
    floor = check_real(floor, "floor", low=0.0)
    state = np.sqrt(err[1:] ** 2 + err[:-1] ** 2)
    below = np.flatnonzero(~(state > floor))  # NaN counts as below
    stop = (below[0] if below.size else state.size) - 1
    start = round(stop * (1.0 - tail))
    if stop - start < 2:
        raise ValueError("path needs at least 3 steps with an error above floor to fit a rate")
    t = np.arange(start, stop + 1)
    slope = np.polyfit(t, np.log(state[t]), 1)[0]
    return float(np.exp(slope))


def iterations_to_tolerance(path, x_star=None, *, tol: float = 1e-6) -> int | None:
    """The first step ``t`` with ``||x_t - x_star|| <= tol ||x_0 - x_star||`` (None if never)."""
    tol = check_real(tol, "tol", low=0.0, low_open=True)
    err = _errors(path, x_star)
    hits = np.flatnonzero(err <= tol * err[0])
    return int(hits[0]) if hits.size else None
