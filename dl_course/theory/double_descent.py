"""Double descent: random-features regression, its isotropic closed form, and slow features.

Chapter 12 measures the three kinds of double descent on models whose every fit
is an exact linear-algebra computation:

- *model-wise*: least squares on ``p`` ReLU random features of ``n`` examples from
  a fixed linear teacher (:func:`make_task`, :func:`relu_features`). Its test error
  peaks at the interpolation threshold ``p = n`` and descends again beyond it
  (:func:`random_features_curve`; :func:`random_features_sweep` evaluates many
  widths, ridges, label-noise levels and draws at once, from one singular value
  decomposition per feature matrix);
- the closed form for isotropic Gaussian features and a linear teacher (Hastie et
  al. 2019), exact at every finite ``n`` and ``p`` (:func:`isotropic_risk`), against
  which :func:`isotropic_min_norm_risk` checks a Monte-Carlo simulation;
- *sample-wise*: the same curves as a function of ``n`` at a fixed width (the
  training sets of one seed are nested, so "more data" means adding examples);
- *epoch-wise*: gradient descent on a linear model with fast and slow features
  (:func:`two_scale_task`, :func:`gradient_descent_risk`), whose test error
  falls, rises and falls again over the steps; plus :func:`noisy_labels` for the
  label-noise experiment with a small network.

NumPy only. Taught in chapter 12.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dl_course._checks import as_float_array, as_labels, check_int, check_real, check_seed
from dl_course._threads import limited_threads

#: Dimension of the inputs of the random-features task.
INPUT_DIM = 20
#: Test examples on which :func:`random_features_curve` measures the error.
N_TEST = 1000
#: Largest number of random features (memory: the test features are N_TEST x width).
MAX_WIDTH = 20_000
#: Seed of the teacher's direction: the task is the same for every ``seed``.
TEACHER_SEED = 20_190_312


# -- checks -----------------------------------------------------------------------------------


def _widths(widths) -> np.ndarray:
    """``widths`` as a 1-D int array of positive integers (ValueError / TypeError otherwise)."""
    if isinstance(widths, str | bytes) or np.ndim(widths) != 1:
        raise ValueError(
            f"widths must be a 1-D sequence of positive integers (numbers of random features), "
            f"got {widths!r}"
        )
    values = [check_int(w, f"widths[{k}]", low=1, high=MAX_WIDTH) for k, w in enumerate(widths)]
    if not values:
        raise ValueError("widths must hold at least one width")
    return np.array(values, dtype=np.int64)


def _nonnegative(values, name: str, what: str) -> np.ndarray:
    """A 1-D float array of finite values >= 0."""
    array = as_float_array(values, name, ndim=1)
    if np.any(array < 0):
        raise ValueError(f"{name} must be >= 0 ({what}), got {array[array < 0][0]:g}")
    return array


def _seeds(seeds) -> list[int]:
    if isinstance(seeds, str | bytes) or np.ndim(seeds) != 1 or len(seeds) == 0:
        raise ValueError(f"seeds must be a non-empty 1-D sequence of seeds, got {seeds!r}")
    return [check_seed(s, f"seeds[{k}]") for k, s in enumerate(seeds)]


# -- the random-features task -------------------------------------------------------------------


def teacher_direction(input_dim: int = INPUT_DIM) -> np.ndarray:
    """The teacher's unit vector ``beta`` (fixed: drawn from :data:`TEACHER_SEED`)."""
    input_dim = check_int(input_dim, "input_dim", low=1)
    beta = np.random.default_rng(TEACHER_SEED).normal(size=input_dim)
    return beta / np.linalg.norm(beta)


def teacher(X) -> np.ndarray:
    """The noiseless target ``f(x) = beta . x`` of the random-features task, one per row of ``X``.

    With standard normal inputs ``f(x)`` is standard normal: predicting 0 has test
    error 1. Chapter 12.
    """
    X = as_float_array(X, "X", ndim=2)
    return X @ teacher_direction(X.shape[1])


def relu_features(X, W) -> np.ndarray:
    """ReLU random features ``relu(X W^T) / sqrt(p)`` of the rows of ``X``, for ``p`` rows of ``W``.

    The factor ``1 / sqrt(p)`` keeps the kernel ``F F^T`` of the same size at every
    width, so a ridge penalty means the same at every width. Chapter 12.
    """
    X = as_float_array(X, "X", ndim=2)
    W = as_float_array(W, "W", ndim=2)
    if W.shape[1] != X.shape[1]:
        raise ValueError(
            f"W must have one column per input dimension ({X.shape[1]}), got shape {W.shape}"
        )
    return np.maximum(X @ W.T, 0.0) / math.sqrt(W.shape[0])


@dataclass(frozen=True)
class RandomFeaturesTask:
    """One draw of the random-features regression task (see :func:`make_task`).

    Attributes
    ----------
    X_train : ndarray (n_train, INPUT_DIM)
    X_test : ndarray (n_test, INPUT_DIM)
    target_train, target_test : ndarray
        The teacher's noiseless outputs ``f(x)`` on the two sets.
    label_noise : ndarray (n_train,)
        Standard normal draws; the labels with noise level ``noise`` are
        ``target_train + noise * label_noise``.
    weights : ndarray (max_width, INPUT_DIM)
        The random first-layer weights, rows standard normal over ``sqrt(INPUT_DIM)``;
        a model of width ``p`` uses the first ``p`` rows.

    Chapter 12.
    """

    X_train: np.ndarray
    X_test: np.ndarray
    target_train: np.ndarray
    target_test: np.ndarray
    label_noise: np.ndarray
    weights: np.ndarray

    def labels(self, noise: float = 0.0) -> np.ndarray:
        """The training labels at label-noise standard deviation ``noise``."""
        noise = check_real(noise, "noise", low=0.0)
        return self.target_train + noise * self.label_noise

    def features(self, X, width: int) -> np.ndarray:
        """The ``width`` ReLU features of the rows of ``X`` (:func:`relu_features`)."""
        width = check_int(width, "width", low=1, high=self.weights.shape[0])
        return relu_features(X, self.weights[:width])


def make_task(
    n_train: int, max_width: int, seed: int = 0, *, n_test: int = N_TEST
) -> RandomFeaturesTask:
    """Draw the training set, test set, label noise and random features of one task.

    Inputs are standard normal in ``INPUT_DIM`` dimensions, the target is the fixed
    linear teacher :func:`teacher`. Each ingredient has its own random stream
    spawned from ``seed``, so draws are nested: for one seed, the first ``n`` training
    examples (and their noise) do not depend on ``n_train``, the first ``p`` feature
    weights do not depend on ``max_width``, and the test set depends on neither.
    Chapter 12.
    """
    n_train = check_int(n_train, "n_train", low=1)
    max_width = check_int(max_width, "max_width", low=1, high=MAX_WIDTH)
    n_test = check_int(n_test, "n_test", low=1)
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(check_seed(seed)).spawn(4)]
    X_train = streams[0].normal(size=(n_train, INPUT_DIM))
    X_test = streams[1].normal(size=(n_test, INPUT_DIM))
    label_noise = streams[2].normal(size=n_train)
    weights = streams[3].normal(size=(max_width, INPUT_DIM)) / math.sqrt(INPUT_DIM)
    return RandomFeaturesTask(
        X_train, X_test, teacher(X_train), teacher(X_test), label_noise, weights
    )


# -- fitting every ridge and noise level from one SVD ------------------------------------------


@dataclass(frozen=True)
class RandomFeaturesSweep:
    """What :func:`random_features_sweep` measured.

    Arrays are indexed ``[seed, width, ridge, noise]`` (``smallest_singular_value``
    only ``[seed, width]``).

    Attributes
    ----------
    n_train : int
    widths, ridges, noises : ndarray
    test_error : ndarray
        Mean squared error of the fitted model against the teacher's noiseless
        outputs on the test set (the excess risk: label noise on test points would
        add ``noise**2`` to every entry).
    train_error : ndarray
        Mean squared error on the (noisy) training labels.
    coef_norm : ndarray
        Euclidean norm of the fitted output weights ``a``.
    smallest_singular_value : ndarray
        The ``min(n_train, width)``-th singular value of the feature matrix.

    Chapter 12.
    """

    n_train: int
    widths: np.ndarray
    ridges: np.ndarray
    noises: np.ndarray
    test_error: np.ndarray
    train_error: np.ndarray
    coef_norm: np.ndarray
    smallest_singular_value: np.ndarray


def _quadratic(clean: np.ndarray, cross: np.ndarray, pure: np.ndarray, noises: np.ndarray):
    """``clean + 2 s cross + s^2 pure`` for every noise level s: shape (..., len(noises))."""
    s = noises
    return clean[..., None] + 2 * s * cross[..., None] + s**2 * pure[..., None]


def _fit_one_width(F, F_test, target, eps, target_test, ridges, noises):
    """Errors and norms of the ridge fits ``a = (F^T F + lam I)^-1 F^T y`` for all lam and s.

    With ``F = U diag(s) V^T`` the fit is ``a = V diag(s / (s^2 + lam)) U^T y`` (the
    min-norm least-squares solution for lam = 0, singular values below round-off
    dropped), and ``y = target + noise * eps`` makes every error a quadratic in the
    noise level: three numbers per ridge give all noise levels.
    """
    n, p = F.shape
    U, s, Vt = np.linalg.svd(F, full_matrices=False)
    smallest = s[min(n, p) - 1]
    keep = s > s[0] * max(n, p) * np.finfo(float).eps
    U, s, Vt = U[:, keep], s[keep], Vt[keep]
    gain = s[:, None] / (s[:, None] ** 2 + ridges[None, :])  # (r, L)
    c_f, c_e = U.T @ target, U.T @ eps
    L = len(ridges)
    coef = Vt.T @ np.hstack([gain * c_f[:, None], gain * c_e[:, None]])  # (p, 2L): a per ridge
    predicted = F_test @ coef  # the teacher part and the noise part of every prediction
    resid, P_e = predicted[:, :L] - target_test[:, None], predicted[:, L:]
    test = _quadratic(np.mean(resid**2, 0), np.mean(resid * P_e, 0), np.mean(P_e**2, 0), noises)
    norm2 = _quadratic(gain.T**2 @ c_f**2, gain.T**2 @ (c_f * c_e), gain.T**2 @ c_e**2, noises)
    shrink = (s[:, None] * gain - 1.0) ** 2  # how much of each fitted direction is left over
    outside = (  # the part of the labels outside the span of the features
        np.array([target @ target - c_f @ c_f]),
        np.array([target @ eps - c_f @ c_e]),
        np.array([eps @ eps - c_e @ c_e]),
    )
    train = _quadratic(
        shrink.T @ c_f**2 + outside[0],
        shrink.T @ (c_f * c_e) + outside[1],
        shrink.T @ c_e**2 + outside[2],
        noises,
    )
    return test, np.maximum(train, 0.0) / n, np.sqrt(np.maximum(norm2, 0.0)), smallest


def random_features_sweep(
    n_train: int,
    widths: Sequence[int],
    *,
    ridges: Sequence[float] = (0.0,),
    noises: Sequence[float] = (0.0,),
    seeds: Sequence[int] = (0,),
    n_test: int = N_TEST,
) -> RandomFeaturesSweep:
    """Fit ridge (or min-norm) least squares on ReLU random features, for a grid of settings.

    For every seed one task is drawn (:func:`make_task` with the largest width);
    the model of width ``p`` uses its first ``p`` features, so the widths of one seed
    are nested. Each feature matrix is decomposed once and every ridge and noise
    level is evaluated from its SVD, which makes a grid of hundreds of settings cost
    little more than one fit.

    Parameters
    ----------
    n_train : int
        Training examples, >= 1.
    widths : sequence of int
        Numbers of random features, each >= 1.
    ridges : sequence of float
        Penalties ``lam >= 0`` of ``||F a - y||^2 + lam ||a||^2``; 0 is the min-norm
        least-squares fit (the interpolating one when ``p >= n``).
    noises : sequence of float
        Standard deviations ``>= 0`` of the Gaussian label noise.
    seeds : sequence of int
        One draw of data, noise and features per seed.
    n_test : int
        Test examples.

    Returns
    -------
    RandomFeaturesSweep
        Taught in chapter 12.
    """
    n_train = check_int(n_train, "n_train", low=1)
    widths = _widths(widths)
    ridges = _nonnegative(ridges, "ridges", "a ridge penalty")
    noises = _nonnegative(noises, "noises", "a standard deviation")
    seeds = _seeds(seeds)
    n_test = check_int(n_test, "n_test", low=1)
    shape = (len(seeds), len(widths), len(ridges), len(noises))
    test, train, norm = np.empty(shape), np.empty(shape), np.empty(shape)
    smallest = np.empty(shape[:2])
    with limited_threads(0):
        for i, seed in enumerate(seeds):
            task = make_task(n_train, int(widths.max()), seed, n_test=n_test)
            Z = np.maximum(task.X_train @ task.weights.T, 0.0)
            Z_test = np.maximum(task.X_test @ task.weights.T, 0.0)
            for j, p in enumerate(widths):
                scale = 1.0 / math.sqrt(p)
                test[i, j], train[i, j], norm[i, j], smallest[i, j] = _fit_one_width(
                    Z[:, :p] * scale,
                    Z_test[:, :p] * scale,
                    task.target_train,
                    task.label_noise,
                    task.target_test,
                    ridges,
                    noises,
                )
    return RandomFeaturesSweep(n_train, widths, ridges, noises, test, train, norm, smallest)


def random_features_curve(
    n_train: int,
    widths: Sequence[int],
    noise: float = 0.0,
    ridge: float = 0.0,
    seed: int = 0,
) -> np.ndarray:
    """Test MSE of ridge (or min-norm) least squares on ReLU random features, one per width.

    The task (:func:`make_task`): ``n_train`` standard normal inputs in
    :data:`INPUT_DIM` dimensions, labels from the fixed linear teacher :func:`teacher`
    plus Gaussian noise of standard deviation ``noise``, features
    :func:`relu_features`. The output weights minimize
    ``||F a - y||^2 + ridge * ||a||^2``; with ``ridge = 0`` they are the min-norm
    least-squares solution. The error is measured on :data:`N_TEST` test inputs
    against the teacher's noiseless outputs.

    Parameters
    ----------
    n_train : int
        Training examples, >= 1.
    widths : sequence of int
        Numbers of random features ``p``, each a positive integer.
    noise : float
        Standard deviation of the label noise, >= 0.
    ridge : float
        The penalty ``lambda >= 0``.
    seed : int
        The draw of data, noise and features (the teacher is the same for all seeds).

    Returns
    -------
    ndarray of shape (len(widths),)
        Taught in chapter 12.

    Examples
    --------
    >>> errors = random_features_curve(100, [50, 100, 400], noise=0.5)
    >>> bool(errors[1] > max(errors[0], errors[2]))  # the peak at p = n
    True
    """
    noise = check_real(noise, "noise", low=0.0)
    ridge = check_real(ridge, "ridge", low=0.0)
    sweep = random_features_sweep(
        n_train, widths, ridges=(ridge,), noises=(noise,), seeds=(check_seed(seed),)
    )
    return sweep.test_error[0, :, 0, 0]


# -- isotropic Gaussian features: the closed form ---------------------------------------------


def isotropic_risk(n_train: int, widths, noise: float, signal: float = 1.0) -> np.ndarray:
    """Expected excess test risk of min-norm least squares with isotropic Gaussian features.

    Rows of the ``n x p`` design are standard normal, labels ``y = X beta + noise * z``
    with ``||beta|| = signal``. Then, exactly for every ``n`` and ``p``
    (Hastie, Montanari, Rosset and Tibshirani 2019),

    - ``noise**2 * p / (n - p - 1)`` for ``p < n - 1`` (least squares: no bias);
    - ``signal**2 * (1 - n / p) + noise**2 * n / (p - n - 1)`` for ``p > n + 1``;
    - infinite for ``n - 1 <= p <= n + 1`` if ``noise > 0``. Without noise only the
      bias is left: 0 for ``p <= n`` and ``signal**2 * (1 - n / p)`` for ``p > n``.

    Returns one value per width (an ndarray). Taught in chapter 12.
    """
    n = check_int(n_train, "n_train", low=1)
    widths = _widths(np.atleast_1d(widths))
    noise = check_real(noise, "noise", low=0.0)
    signal = check_real(signal, "signal", low=0.0)
    p = widths.astype(float)
    if noise == 0.0:
        return np.where(p <= n, 0.0, signal**2 * (1 - n / p))
    risk = np.full(p.shape, np.inf)
    under, over = p < n - 1, p > n + 1
    risk[under] = noise**2 * p[under] / (n - p[under] - 1)
    risk[over] = signal**2 * (1 - n / p[over]) + noise**2 * n / (p[over] - n - 1)
    return risk


@dataclass(frozen=True)
class IsotropicRisk:
    """What :func:`isotropic_min_norm_risk` simulated, one column per width.

    Attributes
    ----------
    risk : ndarray (trials, widths)
        ``||beta_hat - beta||^2``: the excess test risk of each draw (exact, since the
        test inputs are isotropic).
    smallest_singular_value : ndarray (trials, widths)
        The ``min(n, p)``-th singular value of each design.
    coef_norm : ndarray (trials, widths)
        ``||beta_hat||``.

    Chapter 12.
    """

    risk: np.ndarray
    smallest_singular_value: np.ndarray
    coef_norm: np.ndarray

    @property
    def mean(self) -> np.ndarray:
        return self.risk.mean(axis=0)

    @property
    def standard_error(self) -> np.ndarray:
        """Standard error of :attr:`mean` (NaN for a single trial)."""
        trials = self.risk.shape[0]
        if trials < 2:
            return np.full(self.risk.shape[1], np.nan)
        return self.risk.std(axis=0, ddof=1) / math.sqrt(trials)


def isotropic_min_norm_risk(
    n_train: int,
    widths: Sequence[int],
    noise: float,
    signal: float = 1.0,
    trials: int = 200,
    seed: int = 0,
) -> IsotropicRisk:
    """Monte-Carlo version of :func:`isotropic_risk`: fit ``trials`` draws per width.

    Each draw has a standard normal ``n x p`` design, ``beta = signal * e_1`` (by
    rotation invariance every direction gives the same risk) and fresh label
    noise; the min-norm least-squares fit comes from a batched SVD of all the
    draws of one width at once. Taught in chapter 12.
    """
    n = check_int(n_train, "n_train", low=1)
    widths = _widths(widths)
    noise = check_real(noise, "noise", low=0.0)
    signal = check_real(signal, "signal", low=0.0)
    trials = check_int(trials, "trials", low=1)
    if trials * n * int(widths.max()) > 2**24:
        raise ValueError(
            f"trials * n_train * max(widths) must be at most {2**24:,} (memory), got "
            f"{trials * n * int(widths.max()):,}: use fewer trials"
        )
    rng = np.random.default_rng(check_seed(seed))
    shape = (trials, len(widths))
    risk, smallest, norm = np.empty(shape), np.empty(shape), np.empty(shape)
    with limited_threads(0):
        for j, p in enumerate(widths):
            X = rng.normal(size=(trials, n, p))
            y = signal * X[:, :, 0] + noise * rng.normal(size=(trials, n))
            U, s, Vt = np.linalg.svd(X, full_matrices=False)
            coef = np.einsum("tij,ti->tj", U, y) / s  # U^T y / s
            beta_hat = np.einsum("tj,tjk->tk", coef, Vt)
            error = beta_hat.copy()
            error[:, 0] -= signal
            risk[:, j] = np.sum(error**2, axis=1)
            smallest[:, j] = s[:, min(n, p) - 1]
            norm[:, j] = np.linalg.norm(beta_hat, axis=1)
    return IsotropicRisk(risk, smallest, norm)


# -- epoch-wise double descent: fast and slow features ---------------------------------------


@dataclass(frozen=True)
class TwoScaleTask:
    """A linear regression task whose features come at two scales (see :func:`two_scale_task`).

    Attributes
    ----------
    X : ndarray (n_train, n_fast + n_slow)
    y : ndarray (n_train,)
    beta : ndarray (n_fast + n_slow,)
        The teacher's coefficients.
    scales : ndarray (n_fast + n_slow,)
        The population standard deviation of each feature (1 or ``slow_scale``);
        the test risk of coefficients ``b`` is ``sum(scales**2 * (b - beta)**2)``.

    Chapter 12.
    """

    X: np.ndarray
    y: np.ndarray
    beta: np.ndarray
    scales: np.ndarray

    def risk(self, coef) -> np.ndarray:
        """Excess test risk of coefficients ``coef`` (..., d): its last axis are the features."""
        coef = as_float_array(coef, "coef")
        return np.sum(self.scales**2 * (coef - self.beta) ** 2, axis=-1)


def two_scale_task(
    n_train: int,
    n_fast: int,
    n_slow: int,
    slow_scale: float,
    noise: float,
    slow_signal: float = 1.0,
    seed: int = 0,
) -> TwoScaleTask:
    """Draw a regression task with ``n_fast`` features of scale 1 and ``n_slow`` of scale ``slow_scale``.

    Feature ``j`` is normal with standard deviation ``scales[j]``; the teacher puts a
    signal of variance 1 on the fast block and ``slow_signal**2`` on the slow one
    (each block's coefficients Gaussian, rescaled so that ``E (x . beta)^2`` over the
    block has exactly that value), and the labels carry Gaussian noise of standard
    deviation ``noise``. Gradient descent learns the fast block first and the slow
    one about ``1 / slow_scale**2`` times later. Chapter 12.
    """
    n = check_int(n_train, "n_train", low=1)
    n_fast = check_int(n_fast, "n_fast", low=1)
    n_slow = check_int(n_slow, "n_slow", low=1)
    slow_scale = check_real(slow_scale, "slow_scale", low=0.0, low_open=True)
    noise = check_real(noise, "noise", low=0.0)
    slow_signal = check_real(slow_signal, "slow_signal", low=0.0)
    rng = np.random.default_rng(check_seed(seed))
    scales = np.r_[np.ones(n_fast), np.full(n_slow, slow_scale)]
    fast, slow = rng.normal(size=n_fast), rng.normal(size=n_slow)
    beta = np.r_[
        fast / np.linalg.norm(fast), slow_signal * slow / np.linalg.norm(slow) / slow_scale
    ]
    X = rng.normal(size=(n, n_fast + n_slow)) * scales
    y = X @ beta + noise * rng.normal(size=n)
    return TwoScaleTask(X, y, beta, scales)


def gradient_descent_risk(task: TwoScaleTask, lr: float, steps) -> np.ndarray:
    """Excess test risk after each number of gradient-descent steps in ``steps``, in closed form.

    Gradient descent on ``L(b) = ||X b - y||^2 / (2 n)`` from ``b = 0`` with step
    ``lr`` moves along the right singular vectors of ``X = U diag(s) V^T``
    independently: after ``k`` steps

        ``b_k = V diag((1 - (1 - lr s^2 / n)^k) / s) U^T y``,

    so the whole trajectory costs one SVD. ``lr`` must be below ``2 n / s_max^2``
    (twice the inverse of the largest curvature, chapter 6), else the iteration
    diverges. Returns one risk per entry of ``steps``. Taught in chapter 12.
    """
    if not isinstance(task, TwoScaleTask):
        raise TypeError(f"task must be a TwoScaleTask, got {type(task).__name__}")
    lr = check_real(lr, "lr", low=0.0, low_open=True)
    steps = np.atleast_1d(steps)
    counts = [check_int(k, f"steps[{i}]", low=0) for i, k in enumerate(steps.ravel())]
    if steps.ndim != 1:
        raise ValueError(f"steps must be a 1-D sequence of step counts, got shape {steps.shape}")
    n = task.X.shape[0]
    U, s, Vt = np.linalg.svd(task.X, full_matrices=False)
    limit = 2 * n / s[0] ** 2
    if lr >= limit:
        raise ValueError(
            f"lr must be < 2 n / s_max^2 = {limit:.4g} for gradient descent to converge, got {lr:g}"
        )
    keep = s > s[0] * max(task.X.shape) * np.finfo(float).eps
    U, s, Vt = U[:, keep], s[keep], Vt[keep]
    k = np.array(counts, dtype=float)[:, None]
    x = lr * s**2 / n  # in (0, 2): each direction's factor 1 - x lies in (-1, 1)
    with np.errstate(invalid="ignore"):  # log1p(-x) is only used where x < 1
        smooth = -np.expm1(k * np.log1p(-np.minimum(x, 0.5)))  # accurate for small x
    filters = np.where(x < 0.5, smooth, 1.0 - (1.0 - x) ** k) / s  # (1 - (1 - x)^k) / s
    coef = (filters * (U.T @ task.y)) @ Vt
    return task.risk(coef)


# -- label noise for classifiers ---------------------------------------------------------------


def noisy_labels(
    y, fraction: float, n_classes: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Replace a ``fraction`` of the labels by a different class, chosen uniformly.

    Exactly ``round(fraction * len(y))`` labels change, each to one of the other
    ``n_classes - 1`` classes. Returns the new labels and the mask of the changed
    ones. Used in chapter 12 for the epoch-wise experiment.
    """
    fraction = check_real(fraction, "fraction", low=0.0, high=1.0)
    n_classes = check_int(n_classes, "n_classes", low=2)
    y = np.asarray(y)
    labels = as_labels(y, "y", n=y.shape[0] if y.ndim == 1 else 0, allowed=range(n_classes))
    rng = np.random.default_rng(check_seed(seed))
    flipped = np.zeros(len(labels), dtype=bool)
    flipped[rng.choice(len(labels), round(fraction * len(labels)), replace=False)] = True
    out = labels.copy()
    out[flipped] = (labels[flipped] + rng.integers(1, n_classes, flipped.sum())) % n_classes
    return out, flipped
