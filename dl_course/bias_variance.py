"""The bias-variance decomposition, measured by simulation (chapter 11).

A regression method trained on a random training set ``D`` predicts ``f_D(x)``
for the target ``f(x)`` of labels ``y = f(x) + noise``. Averaged over training
sets and over fresh test labels, its squared error splits into three parts,

    E (f_D(x) - y)^2 = (E_D f_D(x) - f(x))^2 + Var_D f_D(x) + sigma^2
                     =         bias^2        +   variance    + noise.

:func:`simulate` fits one polynomial per training set, for thousands of
training sets at once (one batched linear solve, no Python loop over the sets),
and measures the three parts and the test error separately, so that the
chapter can check the identity to Monte-Carlo precision.
:func:`exact_fixed_design` gives bias^2 and variance in closed form when the
training inputs are fixed and only the labels are redrawn.

Polynomials are written in the Legendre basis on [-1, 1], which spans the same
functions as the monomials ``1, x, ..., x^k`` but keeps the least-squares
problems well conditioned up to high degrees.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dl_course._checks import as_float_array, check_bool, check_int, check_real, check_seed


def _check_inputs(x, name: str, ndim=1) -> np.ndarray:
    x = as_float_array(x, name, ndim=ndim)
    if np.any(np.abs(x) > 1.0):
        raise ValueError(f"{name} must lie in [-1, 1] (the Legendre basis lives there)")
    return x


def polynomial_design(x, degree: int) -> np.ndarray:
    """The Legendre design matrix ``[P_0(x), ..., P_degree(x)]`` of inputs in [-1, 1].

    ``x`` may have any shape; the result has one more axis, of length
    ``degree + 1``. Taught in chapter 11.
    """
    from numpy.polynomial import legendre

    degree = check_int(degree, "degree", low=0)
    x = _check_inputs(x, "x", ndim=None)
    return legendre.legvander(x, degree)


def _penalty(degree: int, ridge: float) -> np.ndarray:
    """``ridge`` on every coefficient but the constant one (which is left free, like a bias)."""
    weights = np.full(degree + 1, ridge)
    weights[0] = 0.0
    return np.diag(weights)


def fit_polynomials(x_train, Y, degree: int, ridge: float = 0.0) -> np.ndarray:
    """Least-squares polynomial fits to many training sets at once.

    Parameters
    ----------
    x_train : array of shape (n,) or (S, n)
        Training inputs in [-1, 1]: shared by all sets (a fixed design) or one
        row per set.
    Y : array of shape (S, n)
        Training labels, one row per training set.
    degree : int
        Degree of the polynomials, >= 0.
    ridge : float
        ``lambda >= 0`` of the penalized least squares
        ``sum_i (y_i - p(x_i))^2 + lambda * sum_{j >= 1} c_j^2`` on the
        Legendre coefficients ``c``; the constant coefficient ``c_0`` is not
        penalized. With ``ridge=0`` the minimum-norm least-squares solution.

    Returns
    -------
    ndarray of shape (S, degree + 1)
        The Legendre coefficients of each fit. Taught in chapter 11.
    """
    Y = as_float_array(Y, "Y", ndim=2)
    x_train = _check_inputs(x_train, "x_train", ndim=(1, 2))
    expected = Y.shape[1:] if x_train.ndim == 1 else Y.shape
    if x_train.shape != expected:
        raise ValueError(
            f"x_train must have shape {(Y.shape[1],)} (shared) or {Y.shape} (one row per set) "
            f"to match Y of shape {Y.shape}, got {x_train.shape}"
        )
    degree = check_int(degree, "degree", low=0)
    ridge = check_real(ridge, "ridge", low=0.0)
    Phi = polynomial_design(x_train, degree)  # (n, k) or (S, n, k)
    if ridge == 0.0:
        return np.einsum("...kn,...n->...k", np.linalg.pinv(Phi), Y)
    gram = np.swapaxes(Phi, -1, -2) @ Phi + _penalty(degree, ridge)
    rhs = np.einsum("...nk,...n->...k", Phi, Y)
    if Phi.ndim == 2:  # one matrix for every set
        return np.linalg.solve(gram, rhs.T).T
    return np.linalg.solve(gram, rhs[..., None])[..., 0]


@dataclass(frozen=True)
class BiasVariance:
    """What :func:`simulate` measured; averages run over the test inputs.

    Attributes
    ----------
    degree, ridge : the model (polynomial degree and penalty).
    x_test : ndarray (T,)
        The test inputs.
    truth : ndarray (T,)
        The target ``f`` at the test inputs.
    predictions : ndarray (S, T)
        ``f_D(x)`` of every training set at every test input.
    train_inputs : ndarray (n,) or (S, n)
        The training inputs: shared (fixed design) or one row per set.
    train_labels : ndarray (S, n)
        The noisy training labels, one row per set.
    bias_sq : float
        Mean over the test inputs of ``(mean_D f_D(x) - f(x))^2``.
    variance : float
        Mean over the test inputs of the variance of ``f_D(x)`` over the sets.
    noise : float
        ``sigma^2``, the variance of the label noise.
    test_error : float
        Measured: the mean of ``(f_D(x) - y)^2`` over all sets and test inputs,
        with one fresh noisy label ``y`` per pair.
    standard_error : float
        Standard error of ``test_error - (bias_sq + variance + noise)``. Only
        the fresh test labels are random in that difference (the sample means
        over the sets make ``bias_sq + variance`` the exact mean of
        ``(f_D(x) - f(x))^2``), so it is ``std(d) / sqrt(S T)`` with
        ``d = (f_D(x) - y)^2 - (f_D(x) - f(x))^2``.
    """

    degree: int
    ridge: float
    x_test: np.ndarray
    truth: np.ndarray
    predictions: np.ndarray
    train_inputs: np.ndarray
    train_labels: np.ndarray
    bias_sq: float
    variance: float
    noise: float
    test_error: float
    standard_error: float

    @property
    def decomposition(self) -> float:
        """``bias_sq + variance + noise``: the prediction of the identity."""
        return self.bias_sq + self.variance + self.noise

    @property
    def mean_prediction(self) -> np.ndarray:
        """``mean_D f_D(x)`` at the test inputs."""
        return self.predictions.mean(axis=0)


def _target_values(target: Callable, x: np.ndarray, name: str) -> np.ndarray:
    if not callable(target):
        raise TypeError(f"target must be a callable f(x), got {type(target).__name__}")
    values = np.asarray(target(x), dtype=np.float64)
    if values.shape != x.shape or not np.all(np.isfinite(values)):
        raise ValueError(
            f"target must map {name} of shape {x.shape} to finite values of the same shape, "
            f"got shape {values.shape}"
        )
    return values


def simulate(
    target: Callable[[np.ndarray], np.ndarray],
    x_train,
    degree: int,
    *,
    noise: float,
    n_sets: int = 2000,
    x_test=None,
    ridge: float = 0.0,
    random_inputs: bool = False,
    seed: int = 0,
) -> BiasVariance:
    """Measure bias^2, variance, noise and the test error of polynomial regression.

    Parameters
    ----------
    target : callable
        The regression function ``f``, vectorized: ``f(x)`` has the shape of ``x``.
    x_train : array of shape (n,)
        Training inputs in [-1, 1]. With ``random_inputs=False`` every training
        set uses them (a fixed design: only the labels are redrawn); with
        ``random_inputs=True`` each set draws ``n`` fresh inputs uniformly from
        [-1, 1] and ``x_train`` only sets ``n``.
    degree : int
        Degree of the fitted polynomials.
    noise : float
        Standard deviation ``sigma`` of the Gaussian label noise, >= 0.
    n_sets : int
        Number of training sets ``S``, >= 2.
    x_test : array of shape (T,), optional
        Test inputs in [-1, 1]; by default 201 equally spaced points.
    ridge : float
        Penalty of :func:`fit_polynomials`.
    random_inputs : bool
        Whether each training set draws its own inputs.
    seed : int
        Seed of the label noise, the test labels and the random inputs.

    Returns
    -------
    BiasVariance
        Taught in chapter 11.
    """
    x_train = _check_inputs(x_train, "x_train")
    noise = check_real(noise, "noise", low=0.0)
    n_sets = check_int(n_sets, "n_sets", low=2)
    random_inputs = check_bool(random_inputs, "random_inputs")
    x_test = np.linspace(-1.0, 1.0, 201) if x_test is None else _check_inputs(x_test, "x_test")
    rng = np.random.default_rng(check_seed(seed))
    n = x_train.shape[0]
    inputs = rng.uniform(-1.0, 1.0, size=(n_sets, n)) if random_inputs else x_train
    clean = _target_values(target, inputs, "x_train")
    truth = _target_values(target, x_test, "x_test")
    Y = clean + noise * rng.standard_normal((n_sets, n))
    coef = fit_polynomials(inputs, Y, degree, ridge)
    predictions = coef @ polynomial_design(x_test, degree).T  # (S, T)
    y_test = truth + noise * rng.standard_normal(predictions.shape)
    squared = (predictions - y_test) ** 2
    d = squared - (predictions - truth) ** 2
    return BiasVariance(
        degree=degree,
        ridge=float(ridge),
        x_test=x_test,
        truth=truth,
        predictions=predictions,
        train_inputs=inputs,
        train_labels=Y,
        bias_sq=float(np.mean((predictions.mean(axis=0) - truth) ** 2)),
        variance=float(np.mean(predictions.var(axis=0))),
        noise=noise**2,
        test_error=float(squared.mean()),
        standard_error=float(d.std() / np.sqrt(d.size)),
    )


def exact_fixed_design(
    target: Callable[[np.ndarray], np.ndarray],
    x_train,
    degree: int,
    *,
    noise: float,
    x_test=None,
    ridge: float = 0.0,
) -> tuple[float, float]:
    """Closed-form ``(bias_sq, variance)`` for a fixed design (only the labels are random).

    The fit is linear in the labels: ``f_D(x_test) = M y`` with
    ``M = Phi_test (Phi^T Phi + Lambda)^+ Phi^T``. So ``E f_D = M f(x_train)``
    and ``Var f_D(x_t) = sigma^2 * sum_i M_ti^2``, averaged over the test
    inputs as in :func:`simulate`. Taught in chapter 11.
    """
    x_train = _check_inputs(x_train, "x_train")
    noise = check_real(noise, "noise", low=0.0)
    x_test = np.linspace(-1.0, 1.0, 201) if x_test is None else _check_inputs(x_test, "x_test")
    # the fit of the identity matrix's rows: column i of M is the fit to the i-th unit label
    M = (
        polynomial_design(x_test, degree)
        @ fit_polynomials(x_train, np.eye(x_train.shape[0]), degree, ridge).T
    )
    clean = _target_values(target, x_train, "x_train")
    truth = _target_values(target, x_test, "x_test")
    bias_sq = float(np.mean((M @ clean - truth) ** 2))
    variance = float(noise**2 * np.mean(np.sum(M**2, axis=1)))
    return bias_sq, variance
