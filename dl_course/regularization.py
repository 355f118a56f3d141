"""Explicit regularization: L2, L1 and the elastic net, weight decay, dropout (chapter 11).

- :func:`ridge` solves L2-penalized least squares in closed form, for many
  penalties at once (one SVD).
- :func:`proximal_gradient` solves the lasso and the elastic net by ISTA:
  a gradient step on the squared loss, then :func:`soft_threshold`, the
  proximal map of the L1 norm, which sets small coefficients exactly to zero.
  :func:`elastic_net_objective` and :func:`kkt_violation` check a solution
  without trusting the solver.
- :func:`weight_decay_groups` builds torch optimizer parameter groups that
  decay the weights and leave biases and normalization parameters alone.
- :func:`dropout` applies a dropout mask the two ways found in the
  literature, inverted (PyTorch) and scaled at test time (the original paper);
  :func:`dropout_masks` and :func:`mask_probabilities` enumerate all ``2^n``
  masks, and :func:`exact_dropout_ensemble` is the normalized geometric mean
  of the softmax outputs of all ``2^n`` subnetworks.

Everything is NumPy except :func:`weight_decay_groups`, which imports torch
when called.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dl_course._checks import (
    as_float_array,
    check_bool,
    check_int,
    check_module,
    check_real,
    check_seed,
)

#: The largest number of hidden units whose 2^n dropout masks are enumerated.
MAX_ENSEMBLE_UNITS = 20
#: Masks processed together by :func:`exact_dropout_ensemble` (bounds its memory).
_MASK_CHUNK = 1 << 14


# -- L2, L1 and the elastic net ----------------------------------------------------------------


def _regression(X, y) -> tuple[np.ndarray, np.ndarray]:
    X = as_float_array(X, "X", ndim=2)
    y = as_float_array(y, "y", ndim=1)
    if y.shape[0] != X.shape[0]:
        raise ValueError(
            f"y must have one entry per row of X ({X.shape[0]}), got length {y.shape[0]}"
        )
    return X, y


def _penalties(value, name: str) -> tuple[np.ndarray, bool]:
    """A scalar or 1-D array of non-negative penalties, and whether it was a scalar."""
    array = as_float_array(value, name, ndim=(0, 1))
    if np.any(array < 0):
        raise ValueError(f"{name} must be >= 0 (a penalty strength), got {array.min()}")
    return np.atleast_1d(array), array.ndim == 0


def ridge(X, y, lam) -> np.ndarray:
    """The minimizer of ``||y - X w||^2 + lam * ||w||^2`` in closed form.

    Parameters
    ----------
    X : array of shape (n, d)
    y : array of shape (n,)
    lam : float or array of shape (k,)
        Penalties ``>= 0``. For a 1-D array the solutions for all of them come
        from one SVD ``X = U S V^T``: ``w(lam) = V diag(s / (s^2 + lam)) U^T y``.
        With ``lam = 0`` this is the minimum-norm least-squares solution.

    Returns
    -------
    ndarray of shape (d,), or (k, d) for a 1-D ``lam``
        This is scikit-learn's ``Ridge(alpha=lam, fit_intercept=False)``: note
        that its squared loss has no factor ``1 / (2n)``, unlike ``Lasso``.
        Taught in chapter 11.
    """
    X, y = _regression(X, y)
    lams, scalar = _penalties(lam, "lam")
    U, s, Vt = np.linalg.svd(X, full_matrices=False)
    projected = U.T @ y  # (r,)
    with np.errstate(divide="ignore", invalid="ignore"):
        shrink = s / (s**2 + lams[:, None])  # (k, r)
    shrink = np.where(s > s.max() * max(X.shape) * np.finfo(float).eps, shrink, 0.0)
    W = (shrink * projected) @ Vt
    return W[0] if scalar else W


def soft_threshold(v, threshold) -> np.ndarray:
    """``sign(v) * max(|v| - threshold, 0)``: the proximal map of ``threshold * ||.||_1``.

    It minimizes ``0.5 * ||w - v||^2 + threshold * ||w||_1`` over ``w``, one
    coordinate at a time: entries with ``|v_j| <= threshold`` become exactly 0,
    the others move towards 0 by ``threshold``. ``threshold`` (>= 0) broadcasts
    against ``v``. Taught in chapter 11.
    """
    v = as_float_array(v, "v")
    threshold = as_float_array(threshold, "threshold")
    if np.any(threshold < 0):
        raise ValueError(f"threshold must be >= 0, got {threshold.min()}")
    return np.sign(v) * np.maximum(np.abs(v) - threshold, 0.0)


def _l1_ratio(l1_ratio) -> float:
    return check_real(l1_ratio, "l1_ratio", low=0.0, high=1.0)


def elastic_net_objective(X, y, w, alpha: float, l1_ratio: float = 1.0) -> float:
    """scikit-learn's elastic-net objective at ``w``.

    ``(1 / (2n)) ||y - X w||^2 + alpha * l1_ratio * ||w||_1
    + (alpha * (1 - l1_ratio) / 2) ||w||^2``; ``l1_ratio = 1`` is the lasso.
    Taught in chapter 11.
    """
    X, y = _regression(X, y)
    w = as_float_array(w, "w", ndim=1)
    if w.shape != (X.shape[1],):
        raise ValueError(f"w must have shape ({X.shape[1]},) to match X, got {w.shape}")
    alpha = check_real(alpha, "alpha", low=0.0)
    rho = _l1_ratio(l1_ratio)
    residual = y - X @ w
    return float(
        residual @ residual / (2 * X.shape[0])
        + alpha * rho * np.abs(w).sum()
        + 0.5 * alpha * (1 - rho) * (w @ w)
    )


def kkt_violation(X, y, w, alpha: float, l1_ratio: float = 1.0) -> float:
    """How far ``w`` is from satisfying the optimality conditions of the elastic net.

    With ``g = X^T (y - X w) / n - alpha (1 - l1_ratio) w`` (minus the gradient
    of the smooth part), ``w`` is optimal if and only if ``g_j = alpha *
    l1_ratio * sign(w_j)`` where ``w_j != 0`` and ``|g_j| <= alpha * l1_ratio``
    where ``w_j = 0``. Returns the largest violation of these conditions
    (0 at the exact optimum); it certifies a solution without trusting the solver
    that produced it. Taught in chapter 11.
    """
    X, y = _regression(X, y)
    w = as_float_array(w, "w", ndim=1)
    if w.shape != (X.shape[1],):
        raise ValueError(f"w must have shape ({X.shape[1]},) to match X, got {w.shape}")
    alpha = check_real(alpha, "alpha", low=0.0)
    rho = _l1_ratio(l1_ratio)
    g = X.T @ (y - X @ w) / X.shape[0] - alpha * (1 - rho) * w
    active = w != 0
    on = np.abs(g[active] - alpha * rho * np.sign(w[active]))
    off = np.maximum(np.abs(g[~active]) - alpha * rho, 0.0)
    return float(np.concatenate([on, off, [0.0]]).max())


@dataclass(frozen=True)
class ProximalResult:
    """The output of :func:`proximal_gradient`.

    Attributes
    ----------
    coef : ndarray of shape (d,), or (k, d) for a 1-D ``alpha``
    n_iter : int
        Iterations run (the slowest penalty's, for a path).
    converged : bool
        True if the largest coefficient change of the last step fell below ``tol``.
    step : float
        The step size ``1 / L``, ``L`` the largest eigenvalue of ``X^T X / n``.
    """

    coef: np.ndarray
    n_iter: int
    converged: bool
    step: float


def proximal_gradient(
    X,
    y,
    alpha,
    l1_ratio: float = 1.0,
    *,
    max_iter: int = 20000,
    tol: float = 1e-12,
) -> ProximalResult:
    """ISTA for the lasso and the elastic net, in scikit-learn's scaling.

    Minimizes :func:`elastic_net_objective`. Each iteration takes a gradient
    step of size ``t = 1 / L`` on the smooth part, ``(1 / (2n)) ||y - X w||^2 +
    (alpha (1 - l1_ratio) / 2) ||w||^2`` (``L`` bounds the curvature of its
    squared-loss term), then applies :func:`soft_threshold` with threshold
    ``t * alpha * l1_ratio``::

        w <- soft_threshold(w + t * (X^T (y - X w) / n - alpha (1 - l1_ratio) w),
                            t * alpha * l1_ratio)

    Parameters
    ----------
    X : array of shape (n, d)
    y : array of shape (n,)
    alpha : float or array of shape (k,)
        Penalty strengths ``>= 0``; a 1-D array solves the whole path at once
        (the iterations run on a (k, d) array, not a Python loop over penalties).
    l1_ratio : float
        Share of the L1 penalty, in [0, 1]; 1 is the lasso, 0 ridge.
    max_iter : int
        Largest number of iterations.
    tol : float
        Stop when no coefficient changed by more than ``tol`` in an iteration.

    Returns
    -------
    ProximalResult
        ``coef`` matches scikit-learn's ``Lasso`` / ``ElasticNet`` with
        ``fit_intercept=False`` (:func:`kkt_violation` checks it independently).
        Taught in chapter 11.
    """
    X, y = _regression(X, y)
    alphas, scalar = _penalties(alpha, "alpha")
    rho = _l1_ratio(l1_ratio)
    max_iter = check_int(max_iter, "max_iter", low=1)
    tol = check_real(tol, "tol", low=0.0, low_open=True)
    n = X.shape[0]
    lipschitz = float(np.linalg.eigvalsh(X.T @ X / n)[-1]) + float(alphas.max()) * (1 - rho)
    step = 1.0 / lipschitz if lipschitz > 0 else 1.0
    gram, moment = X.T @ X / n, X.T @ y / n
    W = np.zeros((alphas.shape[0], X.shape[1]))
    threshold = (step * alphas * rho)[:, None]
    ridge_part = (alphas * (1 - rho))[:, None]
    converged, n_iter = False, 0
    while not converged and n_iter < max_iter:
        gradient = W @ gram - moment + ridge_part * W
        update = soft_threshold(W - step * gradient, threshold)
        converged = bool(np.abs(update - W).max() <= tol)
        W, n_iter = update, n_iter + 1
    return ProximalResult(W[0] if scalar else W, n_iter, converged, step)


# -- weight decay ------------------------------------------------------------------------------


def weight_decay_groups(model, weight_decay: float) -> list[dict]:
    """Optimizer parameter groups that decay the weights and nothing else.

    Parameters with two or more dimensions (the weight matrices of linear and
    convolutional layers) get ``weight_decay``; one-dimensional ones (biases,
    BatchNorm and LayerNorm gains and shifts) get ``0.0``. Pass the result to
    any ``torch.optim`` optimizer: ``torch.optim.SGD(weight_decay_groups(model,
    1e-3), lr=0.1)``. A plain ``weight_decay=`` argument of the optimizer, by
    contrast, decays every parameter, biases included. Parameters that do not
    require gradients are left out. Taught in chapter 11.
    """

    check_module(model)
    weight_decay = check_real(weight_decay, "weight_decay", low=0.0)
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    keep = [p for p in params if p.ndim < 2]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": keep, "weight_decay": 0.0},
    ]


# -- dropout -----------------------------------------------------------------------------------


def _dropout_p(p) -> float:
    return check_real(p, "p", low=0.0, high=1.0, high_open=True)


def dropout(h, p: float, *, train: bool, inverted: bool = True, seed: int = 0) -> np.ndarray:
    """Apply dropout to the activations ``h`` (any shape), the inverted or the original way.

    Parameters
    ----------
    h : array
        Activations; each entry is dropped independently.
    p : float
        Probability of dropping a unit, in [0, 1).
    train : bool
        Training (draw a mask) or test time (no mask).
    inverted : bool
        ``True`` (PyTorch's ``nn.Dropout``): at training time keep each unit
        with probability ``1 - p`` and divide the kept ones by ``1 - p``; at
        test time return ``h`` unchanged. ``False`` (the original scheme of
        Srivastava et al.): at training time keep units unscaled; at test time
        multiply ``h`` by ``1 - p``. In both schemes the training-time output
        has the test-time output as its expectation over masks.
    seed : int
        Seed of the mask.

    Returns
    -------
    ndarray, the shape of ``h``
        Taught in chapter 11.
    """
    h = as_float_array(h, "h")
    p = _dropout_p(p)
    train = check_bool(train, "train")
    inverted = check_bool(inverted, "inverted")
    if not train:
        return h.copy() if inverted else (1 - p) * h
    keep = np.random.default_rng(check_seed(seed)).random(h.shape) >= p
    return keep * h / (1 - p) if inverted else keep * h


def dropout_masks(n: int) -> np.ndarray:
    """All ``2^n`` keep-masks of ``n`` units, shape (2^n, n), entries 0.0 or 1.0.

    Row ``k`` holds the binary digits of ``k`` (unit ``j`` kept if bit ``j`` is
    set). ``n`` is at most :data:`MAX_ENSEMBLE_UNITS`. Taught in chapter 11.
    """
    n = check_int(n, "n", low=1, high=MAX_ENSEMBLE_UNITS)
    return _masks(0, 1 << n, n)


def _masks(start: int, stop: int, n: int) -> np.ndarray:
    codes = np.arange(start, stop, dtype=np.int64)
    return ((codes[:, None] >> np.arange(n)) & 1).astype(np.float64)


def mask_probabilities(masks, p: float) -> np.ndarray:
    """The probability of each keep-mask (rows of 0/1) when units drop with probability ``p``.

    ``P(m) = (1 - p)^(kept units) * p^(dropped units)``; over all ``2^n`` masks
    the probabilities sum to one. Taught in chapter 11.
    """
    masks = as_float_array(masks, "masks", ndim=2)
    if not np.all((masks == 0) | (masks == 1)):
        raise ValueError("masks must hold only 0 (dropped) and 1 (kept)")
    p = _dropout_p(p)
    kept = masks.sum(axis=1)
    return (1 - p) ** kept * p ** (masks.shape[1] - kept)


def _ensemble_inputs(W, h) -> tuple[np.ndarray, np.ndarray]:
    W = as_float_array(W, "W", ndim=2)
    h = as_float_array(h, "h", ndim=(1, 2))
    if h.shape[-1] != W.shape[1]:
        raise ValueError(
            f"h must have {W.shape[1]} entries in its last axis (the columns of W), "
            f"got shape {h.shape}"
        )
    if W.shape[1] > MAX_ENSEMBLE_UNITS:
        raise ValueError(
            f"h has {W.shape[1]} hidden units: enumerating their 2^{W.shape[1]} dropout masks "
            f"is refused above {MAX_ENSEMBLE_UNITS} units (2^{MAX_ENSEMBLE_UNITS} masks)"
        )
    return W, h


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def subnetwork_outputs(W, h, p: float) -> tuple[np.ndarray, np.ndarray]:
    """The softmax output of every dropout subnetwork, and the probability of its mask.

    Returns ``(probs, weights)``: ``probs[k] = softmax(W @ (m_k * h))`` of shape
    (2^n, C), or (2^n, B, C) for ``h`` of shape (B, n), with ``m_k`` the rows
    of :func:`dropout_masks`; ``weights = mask_probabilities(masks, p)``.
    Used in chapter 11 to compare the geometric with the arithmetic mean.
    """
    W, h = _ensemble_inputs(W, h)
    p = _dropout_p(p)
    masks = dropout_masks(W.shape[1])
    logits = np.einsum("kn,...n,cn->k...c", masks, h, W)
    return np.exp(_log_softmax(logits)), mask_probabilities(masks, p)


def exact_dropout_ensemble(W, h, p: float) -> np.ndarray:
    """The normalized geometric mean of the softmax outputs of all ``2^n`` dropout subnetworks.

    Parameters
    ----------
    W : array of shape (C, n)
        Weights of a softmax layer on ``n`` hidden units.
    h : array of shape (n,) or (B, n)
        The hidden activations (one row per example for a batch).
    p : float
        Dropout probability in [0, 1): each unit is kept with probability ``1 - p``.

    Returns
    -------
    ndarray of shape (C,) or (B, C)
        ``G_c / sum_c' G_c'`` with ``G_c = prod_m softmax(W @ (m * h))_c^P(m)``
        over all ``2^n`` keep-masks ``m``, ``P(m)`` the mask's probability. The
        masks are processed in vectorized chunks; ``n`` above
        :data:`MAX_ENSEMBLE_UNITS` is refused. Chapter 11 proves that this
        equals ``softmax((1 - p) * W @ h)``, the network scaled at test time.
    """
    W, h = _ensemble_inputs(W, h)
    p = _dropout_p(p)
    n = W.shape[1]
    log_mean = np.zeros(h.shape[:-1] + (W.shape[0],))
    for start in range(0, 1 << n, _MASK_CHUNK):
        masks = _masks(start, min(start + _MASK_CHUNK, 1 << n), n)
        logits = np.einsum("kn,...n,cn->k...c", masks, h, W)
        weights = mask_probabilities(masks, p).reshape((-1,) + (1,) * (logits.ndim - 1))
        log_mean += np.sum(weights * _log_softmax(logits), axis=0)
    return np.exp(_log_softmax(log_mean))
