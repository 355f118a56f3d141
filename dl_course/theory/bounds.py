"""Generalization bounds: counting, VC, Rademacher and PAC-Bayes, computed (chapter 13).

Chapter 13 asks what a training error says about the error on new data, and
evaluates four answers on the digits:

- *uniform convergence over a finite class*: :func:`occam_bound`, with the class
  of every network whose parameters are 32-bit floats (:func:`float_class_log_size`);
- *VC theory*: Sauer's lemma (:func:`log_growth_function`) and :func:`vc_bound`;
- *Rademacher complexity*: a Monte-Carlo estimate for norm-bounded linear
  classes (:func:`rademacher_linear`) against its closed-form bounds
  (:func:`rademacher_linear_bounds`), and the bound it gives (:func:`rademacher_bound`);
- *PAC-Bayes*: the binary relative entropy :func:`kl_bernoulli` and its inverse
  :func:`kl_inverse` (bisection), the kl form of the bound (Maurer, Langford and
  Seeger; :func:`pac_bayes_kl_bound`) and the square-root form that follows from it
  (:func:`pac_bayes_sqrt_bound`), the closed-form :func:`gaussian_kl` between a
  Gaussian posterior and a Gaussian prior (:func:`gaussian_kl_grid` for many
  rescalings of both at once), and the Monte-Carlo side of
  Dziugaite and Roy's certificate: :func:`stochastic_error` estimates the
  training error of a stochastic ReLU network and :func:`sample_convergence_bound`
  turns the estimate into an upper bound; :func:`train_posterior` trains the
  posterior (means and standard deviations) on the bound itself.

Every bound is for a loss in [0, 1] (the 0-1 loss: the error rate), holds with
probability at least ``1 - delta`` over the draw of the ``n`` training examples.
Bounds that can exceed 1 are not clipped: the chapter shows how far above 1 they
are. NumPy only (SciPy's special functions inside :func:`log_growth_function`),
except :func:`train_posterior` (torch, imported inside). Taught in chapter 13.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dl_course._checks import (
    as_float_array,
    as_labels,
    check_int,
    check_real,
    check_seed,
)
from dl_course._threads import limited_threads

ArrayLike = float | Sequence | np.ndarray
#: Parameters of one network: an array, or a sequence of arrays (one per layer).
Layers = ArrayLike | Sequence[ArrayLike]

#: Bisection steps of :func:`kl_inverse`: the bracket [q, 1] halves each step.
KL_INVERSE_STEPS = 60


# -- checks -----------------------------------------------------------------------------------


def _unit_interval(value, name: str) -> np.ndarray:
    array = as_float_array(value, name)
    if np.any((array < 0) | (array > 1)):
        raise ValueError(f"{name} must lie in [0, 1] (an error rate), got values outside")
    return array


def _nonnegative(value, name: str) -> np.ndarray:
    array = as_float_array(value, name)
    if np.any(array < 0):
        raise ValueError(f"{name} must be >= 0, got {array.min()}")
    return array


def _delta(delta) -> float:
    return check_real(delta, "delta", low=0.0, high=1.0, low_open=True, high_open=True)


def _count(value, name: str) -> np.ndarray:
    """A positive integer or an array of them, as float64 (for vectorized formulas)."""
    array = np.asarray(value)
    if array.ndim == 0:
        return np.float64(check_int(value if isinstance(value, int) else array.item(), name, low=1))
    if not np.issubdtype(array.dtype, np.integer) or np.any(array < 1):
        raise ValueError(f"{name} must hold integers >= 1")
    return array.astype(np.float64)


def _out(array):
    """A 0-d result as a Python float, anything else as an array."""
    return float(array) if np.ndim(array) == 0 else array


# -- the binary relative entropy and its inverse ---------------------------------------------


def kl_bernoulli(q: ArrayLike, p: ArrayLike) -> float | np.ndarray:
    """Relative entropy kl(q || p) of Bernoulli(q) from Bernoulli(p), in nats.

    ``q ln(q / p) + (1 - q) ln((1 - q) / (1 - p))`` with ``0 ln 0 = 0``; infinite
    where ``p`` is 0 or 1 and ``q`` differs. Arrays broadcast. Chapter 13.

    Parameters
    ----------
    q, p : float or array_like
        Probabilities in [0, 1].

    Returns
    -------
    float or ndarray
    """
    q = _unit_interval(q, "q")
    p = _unit_interval(p, "p")
    with np.errstate(divide="ignore", invalid="ignore"):
        return _out(_kl(*np.broadcast_arrays(q, p)))


def kl_inverse(q: ArrayLike, c: ArrayLike) -> float | np.ndarray:
    """The largest p in [q, 1] with kl(q || p) <= c: the upper inverse of the binary kl.

    kl(q || p) increases in p on [q, 1], so bisection on that bracket finds the
    crossing; :data:`KL_INVERSE_STEPS` halvings leave a bracket of width below
    1e-18, and the upper end is returned (never below the true inverse). Arrays
    broadcast. Used by every kl-form bound of chapter 13.

    Parameters
    ----------
    q : float or array_like
        An observed error rate in [0, 1].
    c : float or array_like
        The allowed divergence, >= 0 (for example (KL + ln(2 sqrt(n) / delta)) / n).

    Returns
    -------
    float or ndarray
        The inverse, in [q, 1]; 1 when even p = 1 is within ``c``.

    Examples
    --------
    >>> round(kl_inverse(0.1, 0.05), 4)
    0.2201
    """
    q = _unit_interval(q, "q")
    c = _nonnegative(c, "c")
    q, c = np.broadcast_arrays(q, c)
    low, high = q.copy(), np.ones_like(q)
    with np.errstate(divide="ignore", invalid="ignore"):
        for _ in range(KL_INVERSE_STEPS):
            middle = (low + high) / 2
            inside = _kl(q, middle) <= c
            low = np.where(inside, middle, low)
            high = np.where(inside, high, middle)
        whole = _kl(q, np.ones_like(q)) <= c
    return _out(np.where(whole, 1.0, high))


def _kl(q, p):
    """kl(q || p) without the checks (bisection calls it 60 times).

    Written with ``log1p`` of the relative differences: the two terms cancel to
    first order in p - q, and this form keeps the remainder accurate even for
    p within 1e-12 of q.
    """
    first = np.where(q > 0, -q * np.log1p((p - q) / np.where(q > 0, q, 1.0)), 0.0)
    second = np.where(q < 1, -(1 - q) * np.log1p((q - p) / np.where(q < 1, 1 - q, 1.0)), 0.0)
    return first + second


# -- uniform convergence: finite classes and VC dimension ------------------------------------


def occam_bound(
    train_error: ArrayLike, n: ArrayLike, log_size: ArrayLike, delta: float = 0.05
) -> float | np.ndarray:
    """Finite-class bound: ``train_error + sqrt((ln|H| + ln(1 / delta)) / (2 n))``.

    With probability at least ``1 - delta`` it holds for every one of the |H|
    classifiers at once (Hoeffding's inequality and a union bound; chapter 13
    proves it). Not clipped: a value above 1 is the bound saying nothing.

    Parameters
    ----------
    train_error : float or array_like
        Training error rates in [0, 1].
    n : int or array of int
        Training examples, >= 1.
    log_size : float or array_like
        ln |H|, >= 0 (see :func:`float_class_log_size`).
    delta : float
        Failure probability in (0, 1).
    """
    train_error = _unit_interval(train_error, "train_error")
    n = _count(n, "n")
    log_size = _nonnegative(log_size, "log_size")
    gap = np.sqrt((log_size + math.log(1 / _delta(delta))) / (2 * n))
    return _out(train_error + gap)


def float_class_log_size(n_params: int, bits: int = 32) -> float:
    """ln |H| for all networks of one architecture with ``bits``-bit parameters: ``P bits ln 2``.

    Each of the ``n_params`` parameters takes at most ``2**bits`` values, so an
    architecture computes at most ``2**(bits * n_params)`` functions. Chapter 13.
    """
    n_params = check_int(n_params, "n_params", low=1)
    bits = check_int(bits, "bits", low=1)
    return n_params * bits * math.log(2)


def log_growth_function(m: ArrayLike, vc_dim: ArrayLike) -> float | np.ndarray:
    """Sauer's bound on the log growth function: ``ln sum_{i <= d} C(m, i)``.

    A class of VC dimension ``d`` labels ``m`` points in at most this many ways
    (exactly ``2**m`` when ``d >= m``). Computed as a log-sum-exp of
    log-binomials, so it is exact for any size. Arrays broadcast. Chapter 13.

    Parameters
    ----------
    m : int or array of int
        Number of points, >= 1.
    vc_dim : int or array of int
        VC dimension, >= 1.
    """
    from scipy.special import gammaln, logsumexp

    m = _count(m, "m")
    vc_dim = _count(vc_dim, "vc_dim")
    m, vc_dim = np.broadcast_arrays(m, vc_dim)
    out = np.empty(m.shape)
    for index in np.ndindex(m.shape):
        i = np.arange(min(m[index], vc_dim[index]) + 1)
        terms = gammaln(m[index] + 1) - gammaln(i + 1) - gammaln(m[index] - i + 1)
        out[index] = logsumexp(terms)
    return _out(out)


def vc_bound(
    train_error: ArrayLike, n: ArrayLike, vc_dim: ArrayLike, delta: float = 0.05
) -> float | np.ndarray:
    """VC bound: ``train_error + sqrt(8 (ln Pi(2n) + ln(4 / delta)) / n)`` for binary classifiers.

    ``Pi(2n)`` is Sauer's bound on the growth function (:func:`log_growth_function`)
    of a class of VC dimension ``vc_dim``; with probability at least ``1 - delta``
    the bound holds for every classifier of the class at once (Vapnik and
    Chervonenkis; the constants of Anthony and Bartlett's textbook form). Not
    clipped to 1. Chapter 13.
    """
    train_error = _unit_interval(train_error, "train_error")
    n = _count(n, "n")
    log_growth = log_growth_function(2 * np.asarray(n, dtype=np.int64), vc_dim)
    gap = np.sqrt(8 * (log_growth + math.log(4 / _delta(delta))) / n)
    return _out(train_error + gap)


# -- Rademacher complexity --------------------------------------------------------------------


@dataclass(frozen=True)
class RademacherEstimate:
    """A Monte-Carlo estimate of an empirical Rademacher complexity.

    Attributes
    ----------
    estimate : float
        The mean over the sign draws of ``sup_f (1/n) sum_i sigma_i f(x_i)``.
    standard_error : float
        Its standard error (standard deviation over draws / sqrt(draws)).
    second_moment : float
        The mean of the squared supremum (for a check against its closed form).
    draws : int
        Number of sign vectors drawn.
    """

    estimate: float
    standard_error: float
    second_moment: float
    draws: int


def rademacher_linear(
    X: ArrayLike, bound: float = 1.0, *, draws: int = 2000, seed: int = 0
) -> RademacherEstimate:
    """Estimate the empirical Rademacher complexity of ``{x -> w . x : ||w|| <= bound}``.

    For each draw of random signs ``sigma`` the supremum over the ball is
    attained at ``w = bound * v / ||v||`` with ``v = sum_i sigma_i x_i``
    (Cauchy-Schwarz), so it equals ``bound * ||v|| / n`` exactly; only the mean
    over ``sigma`` is estimated, from ``draws`` independent sign vectors (one
    matrix product). Chapter 13.

    Parameters
    ----------
    X : array_like of shape (n, d)
        The sample.
    bound : float
        The norm bound B, > 0.
    draws : int
        Sign vectors drawn, >= 2.
    seed : int
        Seed of the signs.

    Returns
    -------
    RademacherEstimate
    """
    X = as_float_array(X, "X", ndim=2)
    bound = check_real(bound, "bound", low=0.0, low_open=True)
    draws = check_int(draws, "draws", low=2)
    rng = np.random.default_rng(check_seed(seed))
    signs = rng.choice(np.array([-1.0, 1.0]), size=(draws, X.shape[0]))
    sup = bound * np.linalg.norm(signs @ X, axis=1) / X.shape[0]
    return RademacherEstimate(
        estimate=float(sup.mean()),
        standard_error=float(sup.std(ddof=1) / math.sqrt(draws)),
        second_moment=float(np.mean(sup**2)),
        draws=draws,
    )


def rademacher_linear_bounds(X: ArrayLike, bound: float = 1.0) -> tuple[float, float]:
    """Closed-form upper bounds on the Rademacher complexity of the norm-bounded linear class.

    Returns ``(jensen, radius)``: ``jensen = (B / n) sqrt(sum_i ||x_i||^2)`` (Jensen's
    inequality and ``E[sigma_i sigma_j] = [i = j]``), and the weaker
    ``radius = B max_i ||x_i|| / sqrt(n)``. Chapter 13 proves both.
    """
    X = as_float_array(X, "X", ndim=2)
    bound = check_real(bound, "bound", low=0.0, low_open=True)
    squares = np.sum(X**2, axis=1)
    n = X.shape[0]
    return float(bound * math.sqrt(squares.sum()) / n), float(
        bound * math.sqrt(squares.max()) / math.sqrt(n)
    )


def rademacher_bound(
    train_error: ArrayLike, rademacher: ArrayLike, n: ArrayLike, delta: float = 0.05
) -> float | np.ndarray:
    """Rademacher bound: ``train_error + 2 R + 3 sqrt(ln(2 / delta) / (2 n))``.

    ``rademacher`` is the *empirical* Rademacher complexity of the loss class
    (losses in [0, 1]) on the training sample; with probability at least
    ``1 - delta`` the bound holds for every function of the class (Bartlett and
    Mendelson). Not clipped to 1. Chapter 13.
    """
    train_error = _unit_interval(train_error, "train_error")
    rademacher = _nonnegative(rademacher, "rademacher")
    n = _count(n, "n")
    gap = 2 * rademacher + 3 * np.sqrt(math.log(2 / _delta(delta)) / (2 * n))
    return _out(train_error + gap)


# -- PAC-Bayes ---------------------------------------------------------------------------------


def pac_bayes_kl_bound(
    train_error: ArrayLike, kl: ArrayLike, n: ArrayLike, delta: float = 0.05
) -> float | np.ndarray:
    """PAC-Bayes-kl bound: the largest p with ``kl(train_error || p) <= (KL + ln(2 sqrt(n) / delta)) / n``.

    Maurer's form of the Langford-Seeger bound: with probability at least
    ``1 - delta`` over the sample, for every posterior Q at once, the expected
    error of the stochastic classifier Q is at most this (``train_error`` is
    its expected training error, ``kl`` = KL(Q || P) for a prior P fixed before
    seeing the data). Maurer's proof needs ``n >= 8`` (a ValueError below).
    Arrays broadcast. Chapter 13.
    """
    train_error = _unit_interval(train_error, "train_error")
    kl = _nonnegative(kl, "kl")
    n = _count(n, "n")
    if np.any(n < 8):
        raise ValueError("n must be >= 8 (Maurer's bound E exp(n kl) <= 2 sqrt(n) needs it)")
    return kl_inverse(train_error, (kl + np.log(2 * np.sqrt(n) / _delta(delta))) / n)


def pac_bayes_sqrt_bound(
    train_error: ArrayLike, kl: ArrayLike, n: ArrayLike, delta: float = 0.05
) -> float | np.ndarray:
    """The square-root PAC-Bayes bound: ``train_error + sqrt((KL + ln(n / delta)) / (2 n))``.

    The form of the course notes. It follows from :func:`pac_bayes_kl_bound` by
    Pinsker's inequality ``kl(q || p) >= 2 (q - p)^2`` and ``2 sqrt(n) <= n``,
    so it is valid wherever that bound is (``n >= 8``) and never tighter. Not
    clipped to 1. Chapter 13.
    """
    train_error = _unit_interval(train_error, "train_error")
    kl = _nonnegative(kl, "kl")
    n = _count(n, "n")
    if np.any(n < 8):
        raise ValueError("n must be >= 8 (the kl bound it follows from needs n >= 8)")
    gap = np.sqrt((kl + np.log(n / _delta(delta))) / (2 * n))
    return _out(train_error + gap)


def sample_convergence_bound(
    error: ArrayLike, samples: ArrayLike, delta: float = 0.01
) -> float | np.ndarray:
    """Upper confidence bound on a mean from ``samples`` independent draws in [0, 1].

    ``kl_inverse(error, ln(1 / delta) / samples)``: by the Chernoff-Hoeffding
    inequality in its kl form, the mean of independent variables in [0, 1]
    falls this far below the average of their means with probability at most
    ``delta``, whether or not the variables are identically distributed
    (Langford and Caruana's sample-convergence bound). Chapter 13.
    """
    error = _unit_interval(error, "error")
    samples = _count(samples, "samples")
    return kl_inverse(error, np.log(1 / _delta(delta)) / samples)


def gaussian_kl(mean_q: Layers, std_q: Layers, mean_p: Layers, std_p: Layers) -> float:
    """KL(Q || P) between diagonal Gaussians, summed over all entries, in nats.

    ``sum ln(s_p / s_q) + (s_q^2 + (m_q - m_p)^2) / (2 s_p^2) - 1/2``. Each
    argument is an array or a sequence of arrays (one per layer); entries
    broadcast within a layer (a scalar prior standard deviation per layer is
    fine). Chapter 13.

    Parameters
    ----------
    mean_q, std_q : array_like or sequence of array_like
        The posterior's means and standard deviations (> 0).
    mean_p, std_p : array_like or sequence of array_like
        The prior's means and standard deviations (> 0).
    """
    if isinstance(mean_q, list | tuple) and all(np.ndim(v) >= 1 for v in mean_q):
        layers = len(mean_q)
        groups = []
        for value, name in (
            (mean_q, "mean_q"),
            (std_q, "std_q"),
            (mean_p, "mean_p"),
            (std_p, "std_p"),
        ):
            if not isinstance(value, list | tuple) or len(value) != layers:
                raise ValueError(
                    f"{name} must hold one entry per layer ({layers}), like mean_q, got {type(value).__name__}"
                )
            groups.append([as_float_array(v, f"{name}[{k}]") for k, v in enumerate(value)])
    else:
        groups = [
            [as_float_array(v, name)]
            for v, name in (
                (mean_q, "mean_q"),
                (std_q, "std_q"),
                (mean_p, "mean_p"),
                (std_p, "std_p"),
            )
        ]
    total = 0.0
    for k, (mq, sq, mp, sp) in enumerate(zip(*groups, strict=True)):
        if np.any(sq <= 0) or np.any(sp <= 0):
            raise ValueError(f"standard deviations must be > 0 (layer {k})")
        try:
            mq, sq, mp, sp = np.broadcast_arrays(mq, sq, mp, sp)
        except ValueError:
            raise ValueError(f"the arrays of layer {k} do not broadcast to one shape") from None
        ratio = (sq / sp) ** 2
        total += float(np.sum(0.5 * (ratio + ((mq - mp) / sp) ** 2 - 1 - np.log(ratio))))
    return total


def gaussian_kl_grid(
    mean_q: Layers,
    std_q: Layers,
    mean_p: Layers,
    std_p: Layers,
    std_factors: ArrayLike,
    prior_factors: ArrayLike,
) -> np.ndarray:
    """:func:`gaussian_kl` for every rescaling of the posterior's and the prior's deviations.

    Entry ``[i, j]`` is KL(N(mean_q, (t_i std_q)^2) || N(mean_p, (s_j std_p)^2)) with
    ``t = std_factors`` and ``s = prior_factors`` (all > 0), computed from a few
    sums per layer, so a grid of thousands of pairs costs no more than one KL.
    Arguments as for :func:`gaussian_kl`. Chapter 13.
    """
    t = as_float_array(std_factors, "std_factors", ndim=1)[:, None]
    s = as_float_array(prior_factors, "prior_factors", ndim=1)[None, :]
    if np.any(t <= 0) or np.any(s <= 0):
        raise ValueError("std_factors and prior_factors must be > 0")
    gaussian_kl(mean_q, std_q, mean_p, std_p)  # validates the layers
    layered = isinstance(mean_q, list | tuple) and all(np.ndim(v) >= 1 for v in mean_q)
    groups = zip(*(v if layered else [v] for v in (mean_q, std_q, mean_p, std_p)), strict=True)
    total = np.zeros((t.size, s.size))
    for mq, sq, mp, sp in groups:
        mq, sq, mp, sp = np.broadcast_arrays(
            *(np.asarray(v, dtype=np.float64) for v in (mq, sq, mp, sp))
        )
        inv = 1 / sp**2
        spread, distance = np.sum(sq**2 * inv), np.sum((mq - mp) ** 2 * inv)
        logs = np.sum(np.log(sq / sp))
        total += 0.5 * (t**2 * spread / s**2 + distance / s**2 - mq.size) - (
            logs + mq.size * np.log(t / s)
        )
    return total


# -- stochastic ReLU networks -------------------------------------------------------------------


def _check_network(means, stds, X):
    """Layers as (W, b) pairs of float64 arrays; stds broadcast to the means."""
    means = [as_float_array(m, f"means[{k}]") for k, m in enumerate(means)]
    stds = [as_float_array(s, f"stds[{k}]") for k, s in enumerate(stds)]
    if len(means) != len(stds) or len(means) % 2 or not means:
        raise ValueError(
            "means and stds must list the same parameters: W1, b1, W2, b2, ... (torch's order)"
        )
    for k in range(0, len(means), 2):
        W, b = means[k], means[k + 1]
        fan_in = X.shape[1] if k == 0 else means[k - 2].shape[0]
        if W.ndim != 2 or b.shape != (W.shape[0],) or W.shape[1] != fan_in:
            raise ValueError(
                f"layer {k // 2}: weight {W.shape} and bias {b.shape} must be (out, in) and "
                f"(out,) with in = {fan_in}"
            )
    if means[-2].shape[0] != 1:
        raise ValueError("the last layer must have one output (the score of class 1)")
    for k, (m, s) in enumerate(zip(means, stds, strict=True)):
        if np.any(s < 0):
            raise ValueError(f"stds[{k}] must be >= 0")
        try:
            stds[k] = np.ascontiguousarray(np.broadcast_to(s, m.shape))
        except ValueError:
            raise ValueError(f"stds[{k}] must broadcast to shape {m.shape}") from None
    return means, stds


def stochastic_error(
    means: Sequence[ArrayLike],
    stds: Sequence[ArrayLike],
    X: ArrayLike,
    y: ArrayLike,
    *,
    draws: int = 50,
    scales: ArrayLike = 1.0,
    seed: int = 0,
) -> float | np.ndarray:
    """Monte-Carlo error rate of a Gaussian stochastic ReLU network, a fresh network per example.

    The stochastic classifier draws every parameter from N(mean, std^2) and
    predicts class 1 when the score is >= 0. Its expected error on the sample is
    the average over examples of each example's error probability, so each of
    the ``draws * n`` (draw, example) pairs may use its own independent network.
    Only the network's output on that one example is needed, and it is sampled
    exactly layer by layer: given the layer's input ``a``, the pre-activations
    are independent Gaussians with mean ``W a + b`` and variance
    ``std_W^2 a^2 + std_b^2`` (the local reparameterization of Kingma, Salimans
    and Welling). The result is an average of independent 0/1 variables whose
    mean is the expected error, as :func:`sample_convergence_bound` needs. All
    ``scales`` (factors on every std) reuse the same standard-normal noise.
    Chapter 13.

    Parameters
    ----------
    means, stds : sequence of array_like
        W1, b1, W2, b2, ... in torch's ``(out, in)`` layout (as
        ``model.parameters()`` of :func:`dl_course.mlp.build_mlp` lists them), the
        last layer with one output; ``stds`` broadcast to ``means``.
    X : array_like of shape (n, d)
    y : array_like of shape (n,)
        Labels in {0, 1}.
    draws : int
        Networks drawn per example, >= 1.
    scales : float or array_like
        Factors (>= 0) applied to every standard deviation; 0 gives the
        deterministic network of the means.
    seed : int

    Returns
    -------
    float or ndarray
        The error rate, one per scale.
    """
    X = as_float_array(X, "X", ndim=2)
    y = as_labels(y, "y", n=X.shape[0], allowed=(0, 1))
    means, stds = _check_network(means, stds, X)
    draws = check_int(draws, "draws", low=1)
    scales = _nonnegative(scales, "scales")
    rng = np.random.default_rng(check_seed(seed))
    n_layers = len(means) // 2
    n = X.shape[0]
    noise = [rng.standard_normal((draws, n, means[2 * k].shape[0])) for k in range(n_layers)]
    first = _moments(X, *means[:2], *stds[:2])  # the first layer's input is the same every draw
    errors = []
    for scale in np.ravel(scales):
        a = X
        for k in range(n_layers):
            if k == 0:
                mean, std = first
            else:
                flat = a.reshape(draws * n, -1)
                mean, std = (
                    m.reshape(draws, n, -1)
                    for m in _moments(flat, *means[2 * k : 2 * k + 2], *stds[2 * k : 2 * k + 2])
                )
            z = mean + scale * std * noise[k]
            a = np.maximum(z, 0.0) if k < n_layers - 1 else z[..., 0]
        errors.append(np.mean((a >= 0) != (y == 1)))
    return _out(np.reshape(errors, np.shape(scales)))


def _moments(a, W, b, sW, sb):
    """Mean and standard deviation of a Gaussian layer's pre-activations, given inputs ``a``."""
    # einsum: NumPy's matmul is slow for tall, narrow products like (n * draws, 8) @ (8, 1)
    mean = np.einsum("ni,oi->no", a, W) + b
    return mean, np.sqrt(np.einsum("ni,oi->no", a**2, sW**2) + sb**2)


@dataclass
class TrainedPosterior:
    """Gaussian posteriors trained by :func:`train_posterior`, one per member.

    Attributes
    ----------
    means, stds : list of ndarray
        W1, b1, W2, b2, ..., each with a leading axis over the members.
    objective : ndarray of shape (steps, members)
        The training objective (the relaxed bound on mini-batches) of every step.
    """

    means: list[np.ndarray]
    stds: list[np.ndarray]
    objective: np.ndarray

    def member(self, k: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The means and standard deviations of member ``k``."""
        k = check_int(k, "k", low=0, high=self.objective.shape[1] - 1)
        return [m[k] for m in self.means], [s[k] for s in self.stds]


def train_posterior(
    X: ArrayLike,
    y: ArrayLike,
    prior_means: Sequence[ArrayLike],
    prior_stds: Sequence[ArrayLike],
    subsets: Sequence[ArrayLike],
    *,
    delta: float = 0.05,
    steps: int = 400,
    batch_size: int = 128,
    lr: float = 0.02,
    start_ratio: float = 0.3,
    seed: int = 0,
) -> TrainedPosterior:
    """Train Gaussian posteriors over a ReLU network's parameters on a PAC-Bayes bound.

    Dziugaite and Roy's recipe, for K members at once (one batched computation):
    member k has a prior N(prior_means[.][k], prior_stds^2) fixed before seeing
    data and a posterior with its own mean and standard deviation for every
    parameter, started at the prior mean with standard deviations
    ``start_ratio * prior_stds``. Adam minimizes, on mini-batches drawn from the
    member's training examples ``subsets[k]``,

        ( sqrt(e + C / 2) + sqrt(C / 2) )^2,   C = (KL(Q || P) + ln(2 sqrt(n_k) / delta)) / n_k,

    a differentiable upper bound on the PAC-Bayes-kl bound (Perez-Ortiz and
    co-authors' "quadratic" form), where e is the stochastic network's expected
    0-1 error: its output noise is sampled in the first layers as in
    :func:`stochastic_error`, and in the last layer the error probability
    Phi(-y s / sd) is used exactly. Taught in chapter 13; torch is imported here.

    Parameters
    ----------
    X, y : arrays
        All training inputs (N, d) and labels in {0, 1}.
    prior_means : sequence of array_like
        W1, b1, W2, b2, ... of the prior means (the initializations), each with a
        leading axis of length K, the last layer with one output.
    prior_stds : sequence of float or array_like
        Prior standard deviations, > 0, broadcasting to one member's parameter.
    subsets : sequence of K index arrays
        The training examples of each member (rows of ``X``).
    delta : float
        The confidence of the bound being relaxed.
    steps, batch_size : int
        Adam steps; examples per mini-batch (drawn with replacement from the member's subset).
    lr : float
        Adam's learning rate.
    start_ratio : float
        Initial posterior std / prior std, in (0, 1].
    seed : int
        Seeds the mini-batches and the noise.

    Returns
    -------
    TrainedPosterior
    """
    import torch

    X = as_float_array(X, "X", ndim=2)
    y = as_labels(y, "y", n=X.shape[0], allowed=(0, 1))
    prior_means = [as_float_array(m, f"prior_means[{k}]") for k, m in enumerate(prior_means)]
    if len(prior_stds) != len(prior_means):
        raise ValueError("prior_stds must give one entry per parameter of prior_means")
    members = prior_means[0].shape[0]
    if any(m.shape[0] != members for m in prior_means):
        raise ValueError("every entry of prior_means needs the same leading member axis")
    _check_network([m[0] for m in prior_means], [np.ones(1)] * len(prior_means), X)
    stds = []
    for k, s in enumerate(prior_stds):
        s = as_float_array(s, f"prior_stds[{k}]")
        if np.any(s <= 0):
            raise ValueError(f"prior_stds[{k}] must be > 0")
        stds.append(np.broadcast_to(s, prior_means[k].shape[1:]))
    if len(subsets) != members:
        raise ValueError(
            f"subsets must give one index array per member ({members}), got {len(subsets)}"
        )
    subsets = [np.asarray(s) for s in subsets]
    for k, s in enumerate(subsets):
        if s.ndim != 1 or s.size == 0 or not np.issubdtype(s.dtype, np.integer):
            raise ValueError(f"subsets[{k}] must be a non-empty 1-D array of row indices")
        if s.min() < 0 or s.max() >= X.shape[0]:
            raise ValueError(f"subsets[{k}] holds indices outside 0 .. {X.shape[0] - 1}")
    delta = _delta(delta)
    steps = check_int(steps, "steps", low=1)
    batch_size = check_int(batch_size, "batch_size", low=1)
    lr = check_real(lr, "lr", low=0.0, low_open=True)
    start_ratio = check_real(start_ratio, "start_ratio", low=0.0, high=1.0, low_open=True)
    rng = np.random.default_rng(check_seed(seed))

    f32 = torch.float32
    sizes = np.array([s.size for s in subsets], dtype=np.float64)
    padded = np.stack([s[np.arange(sizes.max().astype(int)) % s.size] for s in subsets])
    confidence = torch.tensor(np.log(2 * np.sqrt(sizes) / delta) / sizes, dtype=f32)
    inv_n = torch.tensor(1 / sizes, dtype=f32)
    X_t, sign_t = torch.tensor(X, dtype=f32), torch.tensor(2.0 * y - 1, dtype=f32)
    prior_m = [torch.tensor(m, dtype=f32) for m in prior_means]
    prior_s = [torch.tensor(s, dtype=f32) for s in stds]
    mu = [m.clone().requires_grad_(True) for m in prior_m]
    rho = [
        torch.log(start_ratio * s).expand_as(m).clone().requires_grad_(True)
        for s, m in zip(prior_s, prior_m, strict=True)
    ]
    opt = torch.optim.Adam(mu + rho, lr=lr)
    gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
    normal = torch.distributions.Normal(0.0, 1.0)
    history = np.empty((steps, members))
    work = members * batch_size * sum(m[0].size for m in prior_means)
    with limited_threads(work):
        for step in range(steps):
            pick = (rng.random((members, batch_size)) * sizes[:, None]).astype(np.int64)
            rows = torch.as_tensor(np.take_along_axis(padded, pick, axis=1))
            error = _batched_error(mu, rho, X_t[rows], sign_t[rows], gen, normal)
            kl = sum(
                (0.5 * ((torch.exp(2 * r) + (m - pm) ** 2) / ps**2 - 1) - r + torch.log(ps))
                .flatten(start_dim=1)
                .sum(dim=1)
                for m, r, pm, ps in zip(mu, rho, prior_m, prior_s, strict=True)
            )
            c = kl * inv_n + confidence
            objective = (torch.sqrt(error + c / 2) + torch.sqrt(c / 2)) ** 2
            opt.zero_grad()
            objective.sum().backward()
            opt.step()
            history[step] = objective.detach().double().numpy()
    return TrainedPosterior(
        means=[m.detach().double().numpy() for m in mu],
        stds=[torch.exp(r).detach().double().numpy() for r in rho],
        objective=history,
    )


def _batched_error(mu, rho, x, sign, gen, normal):
    """Mean error probability per member: sampled hidden layers, exact last layer."""
    import torch

    a = x  # (K, B, d)
    n_layers = len(mu) // 2
    for k in range(n_layers):
        W, b = mu[2 * k], mu[2 * k + 1]
        vW, vb = torch.exp(2 * rho[2 * k]), torch.exp(2 * rho[2 * k + 1])
        mean = torch.einsum("kbi,koi->kbo", a, W) + b[:, None, :]
        var = torch.einsum("kbi,koi->kbo", a**2, vW) + vb[:, None, :]
        if k == n_layers - 1:
            return normal.cdf(-sign * mean[..., 0] / torch.sqrt(var[..., 0])).mean(dim=1)
        noise = torch.randn(mean.shape, generator=gen, dtype=mean.dtype)
        a = torch.relu(mean + torch.sqrt(var) * noise)
