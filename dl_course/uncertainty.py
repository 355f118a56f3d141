"""Calibration, predictive uncertainty and small Bayesian models (chapter 21).

- :func:`expected_calibration_error` and :func:`reliability_bins` measure how
  far a classifier's confidence is from its accuracy (equal-width confidence
  bins, right-closed); :func:`draw_reliability` draws the reliability diagram.
- :func:`fit_temperature` finds the temperature ``T`` that minimizes the
  negative log-likelihood of ``softmax(logits / T)`` (temperature scaling);
  :func:`temperature_nll` is that objective.
- :func:`predictive_entropy` and :func:`mutual_information` split the
  uncertainty of an average of several predictive distributions (MC dropout
  samples, ensemble members) into its total and its disagreement part;
  :func:`mc_dropout_probs` draws the MC dropout samples of a torch model.
- :func:`relu_features`, :func:`bayesian_linear_regression` (exact) and
  :func:`laplace_regression` (the linearized Laplace approximation of a
  small torch network, full Gauss-Newton precision) give posterior predictive
  bands for 1-D regression.

The calibration and entropy functions are NumPy; :func:`mc_dropout_probs`,
:func:`laplace_regression` and :func:`fit_map_regression` import torch when
called, :func:`draw_reliability` matplotlib.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dl_course._checks import as_float_array, as_labels, check_int, check_real, check_seed
from dl_course._threads import limited_threads

#: How far the rows of ``probs`` may be from summing to 1.
PROB_TOLERANCE = 1e-6
#: The default search interval of :func:`fit_temperature`.
TEMPERATURE_BOUNDS = (1e-2, 1e2)


# -- calibration --------------------------------------------------------------------------------


def _probs_and_labels(probs, labels) -> tuple[np.ndarray, np.ndarray]:
    probs = as_float_array(probs, "probs", ndim=2)
    n, c = probs.shape
    if c < 2:
        raise ValueError(f"probs must have at least 2 columns (classes), got {c}")
    if np.any(probs < 0) or np.any(probs > 1):
        raise ValueError("probs must lie in [0, 1]")
    if np.max(np.abs(probs.sum(axis=1) - 1)) > PROB_TOLERANCE:
        raise ValueError(f"every row of probs must sum to 1 (within {PROB_TOLERANCE:g})")
    labels = as_labels(labels, "labels", n=n)
    if labels.min() < 0 or labels.max() >= c:
        raise ValueError(f"labels must be class indices in 0 .. {c - 1}, got {labels.min()} .. "
                         f"{labels.max()}")  # fmt: skip
    return probs, labels


@dataclass(frozen=True)
class ReliabilityBins:
    """The per-bin summary behind a reliability diagram (see :func:`reliability_bins`).

    Attributes
    ----------
    edges : ndarray (n_bins + 1,)
        ``np.linspace(0, 1, n_bins + 1)``; bin ``k`` is ``(edges[k], edges[k + 1]]``.
    count : ndarray of int (n_bins,)
        Examples whose top-class probability falls in the bin.
    confidence : ndarray (n_bins,)
        Mean top-class probability in the bin (NaN for an empty bin).
    accuracy : ndarray (n_bins,)
        Fraction of the bin's examples whose top class is the label (NaN if empty).
    """

    edges: np.ndarray
    count: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray

    @property
    def gaps(self) -> np.ndarray:
        """``accuracy - confidence`` per bin: negative where the model is overconfident."""
        return self.accuracy - self.confidence

    @property
    def ece(self) -> float:
        """Expected calibration error: the count-weighted mean of ``|gaps|`` over non-empty bins."""
        full = self.count > 0
        weights = self.count[full] / self.count.sum()
        return float(np.sum(weights * np.abs(self.gaps[full])))


def reliability_bins(probs, labels, n_bins: int = 15) -> ReliabilityBins:
    """Bin the top-class probabilities and compare confidence with accuracy in each bin.

    Parameters
    ----------
    probs : array (N, C)
        Predicted class probabilities; each row sums to 1.
    labels : array (N,)
        True classes, ``0 .. C - 1``.
    n_bins : int
        Number of equal-width bins ``(k / B, (k + 1) / B]`` on the top-class
        probability (right-closed: a confidence of exactly 0.5 with ``B = 2``
        falls in the first bin), >= 1.

    Returns
    -------
    ReliabilityBins
        Taught in chapter 21.
    """
    probs, labels = _probs_and_labels(probs, labels)
    n_bins = check_int(n_bins, "n_bins", low=1)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    # right-closed bins: c in (edges[k], edges[k + 1]]  <=>  searchsorted(..., side="left") = k + 1
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(which, confidence, minlength=n_bins) / count
        mean_acc = np.bincount(which, correct, minlength=n_bins) / count
    return ReliabilityBins(edges, count, mean_conf, mean_acc)


def expected_calibration_error(probs, labels, n_bins: int = 15) -> float:
    """Expected calibration error of predicted probabilities, in [0, 1].

    ``sum_k (n_k / N) |acc_k - conf_k|`` over the equal-width, right-closed
    confidence bins ``(k / B, (k + 1) / B]`` on the top-class probability, where
    ``n_k`` counts the examples in bin ``k``, ``acc_k`` is their accuracy and
    ``conf_k`` their mean top-class probability (empty bins contribute nothing).

    Parameters
    ----------
    probs : array (N, C)
        Predicted class probabilities, entries in [0, 1], rows summing to 1.
    labels : array (N,)
        True classes, ``0 .. C - 1``.
    n_bins : int
        Number of bins B, >= 1 (15 as in Guo et al., 2017).

    Returns
    -------
    float
        Taught in chapter 21.

    Examples
    --------
    >>> expected_calibration_error([[0.9, 0.1], [0.6, 0.4]], [0, 1], n_bins=2)
    0.25
    """
    return reliability_bins(probs, labels, n_bins).ece


def draw_reliability(ax, bins: ReliabilityBins, *, color: str = "#0072B2", label=None) -> None:
    """Draw a reliability diagram: accuracy per confidence bin against the diagonal.

    Filled steps show each bin's accuracy (empty bins are drawn at zero); the
    hatched red band between accuracy and mean confidence is the gap that the
    ECE averages; the dashed diagonal is perfect calibration. Two step artists
    instead of one bar per bin keep it fast enough for sliders. Chapter 21.
    """
    if not isinstance(bins, ReliabilityBins):
        raise TypeError(f"bins must be a ReliabilityBins, got {type(bins).__name__}")
    full = bins.count > 0
    acc = np.where(full, bins.accuracy, 0.0)
    conf = np.where(full, bins.confidence, 0.0)
    ax.stairs(acc, bins.edges, fill=True, color=color, alpha=0.8, label=label or "accuracy in bin")
    ax.stairs(acc, bins.edges, baseline=conf, fill=True, facecolor="none", edgecolor="#D55E00",
              hatch="//", linewidth=0.8, label="gap to confidence")  # fmt: skip
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (top-class probability)",
           ylabel="accuracy")  # fmt: skip


# -- temperature scaling ------------------------------------------------------------------------


def _log_softmax(z: np.ndarray) -> np.ndarray:
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _logits_and_labels(logits, labels) -> tuple[np.ndarray, np.ndarray]:
    logits = as_float_array(logits, "logits", ndim=2)
    labels = as_labels(labels, "labels", n=logits.shape[0])
    c = logits.shape[1]
    if c < 2:
        raise ValueError(f"logits must have at least 2 columns (classes), got {c}")
    if labels.min() < 0 or labels.max() >= c:
        raise ValueError(f"labels must be class indices in 0 .. {c - 1}")
    return logits, labels


def temperature_nll(logits, labels, temperature: float) -> float:
    """Mean negative log-likelihood (nats) of ``softmax(logits / temperature)``. Chapter 21."""
    logits, labels = _logits_and_labels(logits, labels)
    t = check_real(temperature, "temperature", low=0.0, low_open=True)
    log_p = _log_softmax(logits / t)
    return float(-log_p[np.arange(len(labels)), labels].mean())


def _nll_slope(logits: np.ndarray, labels: np.ndarray, beta: float) -> float:
    """d NLL / d beta at inverse temperature ``beta``: mean of E_p[z] - z_y (increasing in beta)."""
    p = np.exp(_log_softmax(beta * logits))
    return float(np.mean((p * logits).sum(axis=1) - logits[np.arange(len(labels)), labels]))


def fit_temperature(logits, labels, *, bounds: tuple[float, float] = TEMPERATURE_BOUNDS) -> float:
    """The temperature ``T`` minimizing the mean NLL of ``softmax(logits / T)`` (temperature scaling).

    The NLL is a convex function of the inverse temperature ``beta = 1 / T``
    (a log-sum-exp of functions linear in ``beta``, minus a linear term), so its
    derivative in ``beta`` is increasing and has at most one sign change. The
    search bisects on the sign of that derivative over ``log T`` in ``bounds``
    until the bracket is below 1e-12 (about 60 halvings, each one pass over the
    logits): no step size, no starting point, no local minima.

    Parameters
    ----------
    logits : array (N, C)
        Uncalibrated scores, typically on a validation split.
    labels : array (N,)
        True classes, ``0 .. C - 1``.
    bounds : (float, float)
        The interval searched, ``0 < low < high``. If the NLL keeps falling
        towards one end (for example every example is classified correctly, so
        sharper is always better), that end is returned.

    Returns
    -------
    float
        Taught in chapter 21.
    """
    logits, labels = _logits_and_labels(logits, labels)
    if isinstance(bounds, str) or np.ndim(bounds) != 1 or len(bounds) != 2:
        raise ValueError(f"bounds must be a pair (low, high), got {bounds!r}")
    low = check_real(bounds[0], "bounds[0]", low=0.0, low_open=True)
    high = check_real(bounds[1], "bounds[1]", low=low, low_open=True)
    if np.all(np.ptp(logits, axis=1) == 0):
        raise ValueError("logits are constant in every row: every temperature gives the same NLL")
    # work on u = log(beta) = -log T; the slope in u has the sign of the slope in beta
    u_low, u_high = -np.log(high), -np.log(low)
    if _nll_slope(logits, labels, np.exp(u_low)) >= 0:
        return high  # NLL increases with beta across the interval: softest is best
    if _nll_slope(logits, labels, np.exp(u_high)) <= 0:
        return low  # NLL decreases with beta across the interval: sharpest is best
    while u_high - u_low > 1e-12:
        mid = 0.5 * (u_low + u_high)
        if _nll_slope(logits, labels, np.exp(mid)) < 0:
            u_low = mid
        else:
            u_high = mid
    return float(np.exp(-0.5 * (u_low + u_high)))


def softmax_temperature(logits, temperature: float = 1.0) -> np.ndarray:
    """``softmax(logits / temperature)`` along the last axis. Chapter 21."""
    logits = as_float_array(logits, "logits")
    t = check_real(temperature, "temperature", low=0.0, low_open=True)
    return np.exp(_log_softmax(logits / t))


def negative_log_likelihood(probs, labels) -> float:
    """Mean ``-log probs[i, labels[i]]`` in nats (probabilities below 1e-300 count as 1e-300).

    Use it for averaged predictions (ensembles, MC dropout), whose logits do not
    exist. Chapter 21.
    """
    probs, labels = _probs_and_labels(probs, labels)
    picked = probs[np.arange(len(labels)), labels]
    return float(-np.log(np.maximum(picked, 1e-300)).mean())


# -- uncertainty from several predictions -------------------------------------------------------


def predictive_entropy(probs) -> np.ndarray:
    """Entropy ``-sum_c p_c log p_c`` (nats) of each distribution along the last axis (0 log 0 = 0).

    Chapter 21.
    """
    probs = as_float_array(probs, "probs")
    if np.any(probs < 0):
        raise ValueError("probs must be non-negative")
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(probs > 0, probs * np.log(probs), 0.0)
    return -terms.sum(axis=-1)


def mutual_information(member_probs) -> np.ndarray:
    """Disagreement of several predictive distributions: H(mean) - mean of H (nats, >= 0).

    ``member_probs`` has shape (M, ..., C): M samples (MC dropout masks,
    ensemble members) first. The entropy of their mean splits into this
    mutual information between the prediction and the member (epistemic
    part) and the members' mean entropy (aleatoric part). Chapter 21.
    """
    member_probs = as_float_array(member_probs, "member_probs")
    if member_probs.ndim < 2:
        raise ValueError(f"member_probs must have shape (M, ..., C), got {member_probs.shape}")
    total = predictive_entropy(member_probs.mean(axis=0))
    return np.maximum(total - predictive_entropy(member_probs).mean(axis=0), 0.0)


def mc_dropout_probs(model, X, n_samples: int = 30, *, seed: int = 0) -> np.ndarray:
    """Class probabilities of ``n_samples`` forward passes with dropout switched on (MC dropout).

    Every example gets its own dropout mask in every pass: ``X`` is repeated
    ``n_samples`` times and sent through the model in one batch. Dropout layers
    run in training mode and everything else in eval mode (a model without
    buffers, such as a stack of :func:`dl_course.training.stack_models`, is put
    in training mode as a whole, since only dropout then behaves differently).
    The model's mode and torch's global random state are left as they were.

    Parameters
    ----------
    model : torch.nn.Module
        A classifier containing ``torch.nn.Dropout`` with ``p > 0``: logits (N, C),
        or (K, N, C) for a stack of K models.
    X : array (N, d)
    n_samples : int
        Number of masks per example, >= 1.
    seed : int
        Seed of the masks.

    Returns
    -------
    ndarray (n_samples, N, C), or (n_samples, K, N, C) for a stack
        Float64 probabilities. Taught in chapter 21.
    """
    import torch

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch module, got {type(model).__name__}")
    X = as_float_array(X, "X", ndim=2)
    n_samples = check_int(n_samples, "n_samples", low=1)
    seed = check_seed(seed)
    members = getattr(model, "members", None)
    inner = members[0] if members else model
    dropouts = [m for m in inner.modules() if isinstance(m, torch.nn.Dropout) and m.p > 0]
    if not dropouts:
        raise ValueError("model has no torch.nn.Dropout with p > 0: MC dropout needs dropout")
    has_buffers = any(True for _ in model.buffers())
    was_training = model.training
    modes = [m.training for m in dropouts]
    x = torch.as_tensor(X, dtype=torch.float32).repeat(n_samples, 1)
    try:
        if has_buffers:
            model.eval()
            for m in dropouts:
                m.train()
        else:
            model.train()
        work = len(x) * sum(p.numel() for p in model.parameters())
        with limited_threads(work), torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(seed)
            logits = model(x).double()
    finally:
        model.train(was_training)
        for m, mode in zip(dropouts, modes, strict=True):
            m.train(mode)
    logits = logits.reshape(*logits.shape[:-2], n_samples, X.shape[0], logits.shape[-1])
    probs = torch.softmax(logits, dim=-1).numpy()
    return np.moveaxis(probs, -3, 0)


# -- Bayesian regression ------------------------------------------------------------------------


def relu_features(x, n_features: int, *, seed: int = 0, spread: float = 2.0) -> np.ndarray:
    """Random ReLU features ``max(0, w x + b)`` of 1-D inputs, ``w ~ N(0, 1)``, ``b ~ U(-s, s)``.

    Parameters
    ----------
    x : array (N,)
    n_features : int
        Number of features, >= 1.
    seed : int
        Seed of ``w`` and ``b`` (the same seed gives the same features at any ``x``).
    spread : float
        ``s``: the kinks ``-b / w`` of the features cluster within about ``s`` of 0.

    Returns
    -------
    ndarray (N, n_features)
        Taught in chapter 21 (chapter 12 uses random features for double descent).
    """
    x = as_float_array(x, "x", ndim=1)
    n_features = check_int(n_features, "n_features", low=1)
    spread = check_real(spread, "spread", low=0.0)
    rng = np.random.default_rng(check_seed(seed))
    w = rng.normal(size=n_features)
    b = rng.uniform(-spread, spread, size=n_features)
    return np.maximum(0.0, np.outer(x, w) + b)


@dataclass(frozen=True)
class GaussianPosterior:
    """A Gaussian posterior over the weights of a model that is linear in them (or linearized).

    Attributes
    ----------
    mean : ndarray (P,)
        Posterior mean (for a Laplace approximation: the MAP weights).
    cov : ndarray (P, P)
        Posterior covariance.
    noise_std : float
        The observation noise of the likelihood.
    """

    mean: np.ndarray
    cov: np.ndarray
    noise_std: float

    def predict(self, features, *, include_noise: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Predictive mean and standard deviation at inputs with ``features`` (M, P).

        The standard deviation is that of the function value, ``sqrt(phi^T cov phi)``;
        with ``include_noise`` the observation noise is added in quadrature.
        """
        features = as_float_array(features, "features", ndim=2)
        if features.shape[1] != self.mean.shape[0]:
            raise ValueError(
                f"features must have {self.mean.shape[0]} columns, got {features.shape[1]}"
            )
        var = np.einsum("mp,pq,mq->m", features, self.cov, features)
        if include_noise:
            var = var + self.noise_std**2
        return features @ self.mean, np.sqrt(np.maximum(var, 0.0))


def _precision_check(prior_precision, noise_std) -> tuple[float, float]:
    alpha = check_real(prior_precision, "prior_precision", low=0.0, low_open=True)
    sigma = check_real(noise_std, "noise_std", low=0.0, low_open=True)
    return alpha, sigma


def bayesian_linear_regression(
    features, y, *, prior_precision: float = 1.0, noise_std: float = 0.1
) -> GaussianPosterior:
    """The exact posterior of ``y = features @ w + noise``, prior ``w ~ N(0, I / prior_precision)``.

    Precision ``A = features^T features / noise_std^2 + prior_precision * I``,
    covariance ``A^-1`` and mean ``A^-1 features^T y / noise_std^2`` (via a
    Cholesky factorization).

    Parameters
    ----------
    features : array (N, P)
    y : array (N,)
    prior_precision : float
        ``alpha > 0``, the inverse variance of each weight under the prior.
    noise_std : float
        ``sigma > 0``, the standard deviation of the observation noise.

    Returns
    -------
    GaussianPosterior
        Taught in chapter 21.
    """
    features = as_float_array(features, "features", ndim=2)
    y = as_float_array(y, "y", ndim=1)
    if y.shape[0] != features.shape[0]:
        raise ValueError(f"y must have length {features.shape[0]} (one per row), got {len(y)}")
    alpha, sigma = _precision_check(prior_precision, noise_std)
    precision = features.T @ features / sigma**2 + alpha * np.eye(features.shape[1])
    return _posterior(precision, features.T @ y / sigma**2, sigma)


def _posterior(precision: np.ndarray, rhs: np.ndarray, sigma: float) -> GaussianPosterior:
    chol = np.linalg.cholesky(precision)
    inv_chol = np.linalg.solve(chol, np.eye(len(precision)))
    cov = inv_chol.T @ inv_chol
    return GaussianPosterior(cov @ rhs, cov, sigma)


def _flat_jacobian(model, x):
    """Jacobian (N, P) of the scalar outputs of ``model`` at inputs x (N, d) w.r.t. all parameters."""
    import torch
    from torch.func import functional_call, jacrev, vmap

    params = {n: p.detach() for n, p in model.named_parameters()}

    def f(p, xi):
        return functional_call(model, p, (xi.unsqueeze(0),)).squeeze()

    jac = vmap(jacrev(f), in_dims=(None, 0))(params, x)
    return torch.cat([j.reshape(x.shape[0], -1) for j in jac.values()], dim=1)


def _as_inputs(x, name: str):
    import torch

    x = as_float_array(x, name, ndim=(1, 2))
    return torch.as_tensor(x.reshape(len(x), -1), dtype=torch.float64)


@dataclass(frozen=True)
class LaplaceRegression:
    """The linearized Laplace approximation of a scalar-output torch regression network.

    Attributes
    ----------
    model : torch.nn.Module
        The network at its MAP weights (float64).
    posterior : GaussianPosterior
        Mean: the flattened MAP weights; covariance: the inverse of the
        Gauss-Newton precision ``J^T J / sigma^2 + alpha I``.
    """

    model: object
    posterior: GaussianPosterior

    def predict(self, x, *, include_noise: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Network output and predictive std ``sqrt(J(x) cov J(x)^T)`` at inputs ``x``."""
        import torch

        x_t = _as_inputs(x, "x")
        with limited_threads(len(x_t) * len(self.posterior.mean)):
            jac = _flat_jacobian(self.model, x_t).numpy()
        _, std = self.posterior.predict(jac, include_noise=include_noise)
        with torch.no_grad():
            mean = self.model(x_t).reshape(-1).numpy()
        return mean, std


def laplace_regression(
    model, x, y, *, prior_precision: float = 1.0, noise_std: float = 0.1
) -> LaplaceRegression:
    """Linearized Laplace approximation around the current weights of a regression network.

    The network ``f(x; theta)`` (float64, scalar output, already trained to the
    MAP of ``sum (f - y)^2 / (2 sigma^2) + alpha |theta|^2 / 2``, for example by
    :func:`fit_map_regression`) is replaced by its first-order Taylor expansion
    in ``theta``; the posterior of that linear model is Gaussian with the
    Gauss-Newton precision ``J^T J / sigma^2 + alpha I``, ``J`` the (N, P)
    Jacobian of the outputs with respect to all P parameters (one
    ``torch.func.vmap`` of ``jacrev``). For a model that is linear in its
    parameters it is exactly :func:`bayesian_linear_regression`.

    Returns
    -------
    LaplaceRegression
        Taught in chapter 21.
    """
    import torch

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch module, got {type(model).__name__}")
    if any(p.dtype != torch.float64 for p in model.parameters()):
        raise TypeError("model must be float64 (call model.double()): the precision is inverted")
    x_t = _as_inputs(x, "x")
    y = as_float_array(y, "y", ndim=1)
    if len(y) != len(x_t):
        raise ValueError(f"y must have length {len(x_t)} (one per input), got {len(y)}")
    alpha, sigma = _precision_check(prior_precision, noise_std)
    with limited_threads(len(x_t) * sum(p.numel() for p in model.parameters())):
        jac = _flat_jacobian(model, x_t).numpy()
    precision = jac.T @ jac / sigma**2 + alpha * np.eye(jac.shape[1])
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).numpy()
    chol = np.linalg.cholesky(precision)
    inv_chol = np.linalg.solve(chol, np.eye(len(precision)))
    return LaplaceRegression(model, GaussianPosterior(theta, inv_chol.T @ inv_chol, sigma))


def fit_map_regression(
    model, x, y, *, prior_precision: float = 1.0, noise_std: float = 0.1, steps: int = 1000,
    lr: float = 0.01,
) -> np.ndarray:  # fmt: skip
    """Train a float64 regression network to the MAP of the Gaussian model of :func:`laplace_regression`.

    Full-batch Adam on ``sum (f(x) - y)^2 / (2 sigma^2) + alpha |theta|^2 / 2``
    for ``steps`` steps. ``model`` may be a stack of K networks
    (:func:`dl_course.training.stack_models`): then ``y`` has shape (K, N), ``x``
    shape (N,) (shared) or (K, N), and the K objectives, which share no
    parameter, are minimized side by side (their sum is what Adam sees, and
    Adam's update of each parameter depends only on its own gradient).

    Returns
    -------
    ndarray (steps,) or (steps, K)
        The objective at each step, before its update. Chapter 21.
    """
    import torch

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch module, got {type(model).__name__}")
    k = len(model) if hasattr(model, "members") else None
    if k is None:
        x_t = _as_inputs(x, "x")
        y = as_float_array(y, "y", ndim=1)
        if len(y) != len(x_t):
            raise ValueError(f"y must have length {len(x_t)} (one per input), got {len(y)}")
    else:
        x = as_float_array(x, "x", ndim=(1, 2))
        y = as_float_array(y, "y", ndim=2)
        if y.shape[0] != k or y.shape[1] != x.shape[-1] or (x.ndim == 2 and x.shape[0] != k):
            raise ValueError(
                f"for a stack of {k} models y must have shape ({k}, N) and x shape (N,) or "
                f"({k}, N); got x {x.shape} and y {y.shape}"
            )
        x_t = torch.as_tensor(x[..., None], dtype=torch.float64)
    alpha, sigma = _precision_check(prior_precision, noise_std)
    steps = check_int(steps, "steps", low=1)
    lr = check_real(lr, "lr", low=0.0, low_open=True)
    y_t = torch.as_tensor(y, dtype=torch.float64)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    values = []
    member_dims = tuple(range(1, 10))
    work = x_t.shape[-2] * sum(p.numel() for p in model.parameters())
    with limited_threads(work):
        for _ in range(steps):
            opt.zero_grad()
            fit = ((model(x_t).squeeze(-1) - y_t) ** 2).sum(dim=-1) / (2 * sigma**2)
            prior = sum(
                (p**2).sum(dim=member_dims[: p.ndim - 1]) if k else (p**2).sum()
                for p in model.parameters()
            )
            loss = fit + alpha / 2 * prior
            loss.sum().backward()
            opt.step()
            values.append(loss.detach().numpy().copy())
    return np.array(values)
