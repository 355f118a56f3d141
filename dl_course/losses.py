"""Loss functions and the information-theoretic quantities behind them (chapter 4).

Everything here is NumPy and uses the natural logarithm (losses in nats)
unless a ``base`` argument says otherwise.

- Multiclass classification from raw scores: :func:`hinge_loss` (Weston-Watkins
  multiclass SVM loss), :func:`crammer_singer_loss` (its largest-violation
  relative) and :func:`softmax_cross_entropy`, with their gradients with respect
  to the scores; :func:`softmax` and :func:`log_softmax`.
- The shared kernels :func:`softmax_cross_entropy_with_grad` and
  :func:`hinge_loss_with_grad` return a loss and its gradient from one pass;
  :mod:`dl_course.autograd` and :mod:`dl_course.linear` train with them.
- Regression: :func:`mse`, :func:`mae`, :func:`gaussian_nll` and :func:`laplace_nll`.
- Binary classification: :func:`binary_cross_entropy` (from probabilities) and
  :func:`binary_cross_entropy_with_logits` (from scores, numerically stable).
- Distributions: :func:`entropy`, :func:`distribution_cross_entropy` and
  :func:`kl_divergence`. (The cross-entropy *between two distributions* has its
  own name: ``cross_entropy(logits, labels)`` in :mod:`dl_course.autograd`, as in
  torch, is the softmax cross-entropy of scores against labels.)

Scores of shape ``(N, C)`` hold one row of ``C`` class scores per example and
go with ``N`` integer labels in ``0 .. C-1``; scores of shape ``(C,)`` are a
single example and go with a single integer label. Losses are averaged over
the examples.
"""

from __future__ import annotations

import numbers

import numpy as np

from dl_course._checks import as_float_array, as_labels, check_int, check_real

#: Largest deviation from 1 that :func:`entropy` and friends accept in ``sum(p)``.
SUM_TOLERANCE = 1e-6


# ----------------------------------------------------------------------------- validation


def _scores_and_labels(scores, y, *, finite: bool = True) -> tuple[np.ndarray, np.ndarray, bool]:
    """Return scores as an (N, C) array, labels as (N,) ints, and whether the input was 1-D.

    With ``finite=False`` NaN and infinite scores are let through (the kernels
    then return a non-finite loss, which is how a training loop sees divergence).
    """
    if finite:
        scores = as_float_array(scores, "scores", ndim=(1, 2))
    else:
        scores = _any_float_array(scores, "scores", ndim=(1, 2))
    single = scores.ndim == 1
    n_classes = scores.shape[-1]
    if n_classes < 2:
        raise ValueError(f"scores must hold at least 2 classes, got shape {scores.shape}")
    if single:
        if not isinstance(y, numbers.Integral) or isinstance(y, bool):
            raise TypeError(
                f"y must be a single integer label when scores is 1-D, got {type(y).__name__}"
            )
        labels = np.array([check_int(y, "y", low=0, high=n_classes - 1)])
        return scores[None, :], labels, True
    return scores, _labels(y, scores.shape[0], n_classes), False


def _labels(y, n: int, n_classes: int) -> np.ndarray:
    """``y`` as N int64 labels in ``0 .. n_classes-1``; the common case costs two reductions.

    Training loops call the kernels once per step with labels that are already a
    valid integer array, so those skip the full check of :func:`as_labels` (which
    also gives the error messages).
    """
    if isinstance(y, np.ndarray) and y.dtype.kind in "iu" and y.shape == (n,):
        if y.min() >= 0 and y.max() < n_classes:
            return y.astype(np.int64, copy=False)
    return as_labels(y, "y", n=n, allowed=range(n_classes))


def _any_float_array(value, name: str, *, ndim: tuple[int, ...]) -> np.ndarray:
    """Like :func:`~dl_course._checks.as_float_array`, but NaN and infinity are allowed."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be an array of real numbers: {error}") from None
    if array.ndim not in ndim:
        shapes = " or ".join(f"{d}-D" for d in ndim)
        raise ValueError(f"{name} must be {shapes}, got an array of shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {array.shape}")
    return array


def _same_shape(a, b, name_a: str, name_b: str) -> tuple[np.ndarray, np.ndarray]:
    a = as_float_array(a, name_a)
    b = as_float_array(b, name_b)
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape, got {a.shape} and {b.shape}"
        )
    return a, b


def _distribution(p, name: str) -> np.ndarray:
    """Check that ``p`` (1-D, or 2-D with one distribution per row) is a probability vector."""
    p = as_float_array(p, name, ndim=(1, 2))
    if np.any(p < 0):
        raise ValueError(f"{name} must be non-negative (probabilities)")
    sums = p.sum(axis=-1)
    if np.any(np.abs(sums - 1.0) > SUM_TOLERANCE):
        worst = float(sums.flat[np.argmax(np.abs(sums - 1.0))])
        raise ValueError(
            f"{name} must sum to 1 along its last axis (within {SUM_TOLERANCE}), got {worst:.9g}"
        )
    return p


def _two_distributions(p, q) -> tuple[np.ndarray, np.ndarray]:
    p, q = _distribution(p, "p"), _distribution(q, "q")
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same shape, got {p.shape} and {q.shape}")
    return p, q


def _log_base(base) -> float:
    """The factor ``1 / ln(base)`` that converts nats to the unit of ``base`` (None: nats)."""
    if base is None:
        return 1.0
    base = check_real(base, "base", low=0.0, low_open=True)
    if base == 1.0:
        raise ValueError("base must be a positive number other than 1 (e.g. 2 or 10), got 1")
    return 1.0 / np.log(base)


def _reduce(values: np.ndarray):
    """A float for a single distribution, an array (one value per row) otherwise."""
    return float(values) if values.ndim == 0 else values


# ----------------------------------------------------------------------------- softmax


def log_softmax(scores) -> np.ndarray:
    """Return ``log softmax(scores)`` along the last axis, computed stably.

    ``log_softmax(s)_k = s_k - log sum_j exp(s_j)``, evaluated as
    ``(s_k - m) - log sum_j exp(s_j - m)`` with ``m = max_j s_j`` so that no
    exponential overflows, even for scores of size 1e4. Taught in chapter 4.

    Parameters
    ----------
    scores : array of shape (C,) or (N, C)
        Unnormalized log-probabilities (logits).

    Returns
    -------
    ndarray of the same shape as ``scores``.

    Examples
    --------
    >>> np.round(log_softmax([0.0, 0.0]), 4).tolist()
    [-0.6931, -0.6931]
    """
    return _log_softmax(as_float_array(scores, "scores", ndim=(1, 2)))


def _log_softmax(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def softmax(scores) -> np.ndarray:
    """Return ``softmax(scores)_k = exp(s_k) / sum_j exp(s_j)`` along the last axis.

    Each row is a probability vector. The maximum score is subtracted before
    exponentiating (which leaves the result unchanged), so large scores do not
    overflow. Taught in chapter 4.

    Examples
    --------
    The cat / car / frog scores of chapter 4:

    >>> np.round(softmax([3.2, 5.1, -1.7]), 3).tolist()
    [0.13, 0.869, 0.001]
    """
    return np.exp(log_softmax(scores))


# ----------------------------------------------------------------------------- multiclass losses


def hinge_loss(scores, y, margin: float = 1.0) -> float:
    """Return the mean multiclass hinge (SVM) loss of the class scores.

    For one example with scores ``s`` and label ``y`` the loss is
    ``sum_{j != y} max(0, s_j - s_y + margin)``: every wrong class whose score
    comes within ``margin`` of the correct one pays the amount of the
    violation (the Weston-Watkins form). The result is averaged over examples.
    Taught in chapter 4.

    Parameters
    ----------
    scores : array of shape (N, C) or (C,)
        Class scores, one row per example.
    y : array of N integer labels in ``0 .. C-1``, or one integer if ``scores`` is 1-D
    margin : float
        Required gap between the correct score and each wrong score, >= 0.

    Returns
    -------
    float

    Examples
    --------
    >>> round(hinge_loss([3.2, 5.1, -1.7], 0), 6)  # cat image, scores for cat, car, frog
    2.9
    """
    scores, labels, _ = _scores_and_labels(scores, y)
    margin = check_real(margin, "margin", low=0.0)
    return _hinge(scores, labels, margin, gradient=False)[0]


def _hinge(scores: np.ndarray, labels: np.ndarray, margin: float, *, gradient: bool):
    """Mean hinge loss of validated (N, C) scores, and its gradient if asked (else None)."""
    rows = np.arange(len(labels))
    violations = np.maximum(0.0, scores - scores[rows, labels][:, None] + margin)
    violations[rows, labels] = 0.0
    loss = float(violations.sum(axis=1).mean())
    if not gradient:
        return loss, None
    active = (violations > 0).astype(np.float64)
    active[rows, labels] = -active.sum(axis=1)
    return loss, active / len(labels)


def hinge_loss_with_grad(scores, y, margin: float = 1.0) -> tuple[float, np.ndarray]:
    """Return :func:`hinge_loss` and :func:`hinge_loss_grad` together, from one pass.

    This is the kernel that the two functions above and
    :func:`dl_course.linear.train_linear_classifier` share. Shapes, labels and
    ``margin`` are checked as in :func:`hinge_loss`; unlike it, NaN or infinite
    scores are not refused but give a non-finite loss, so that a training loop
    can see its own divergence. Taught in chapter 4.

    Parameters
    ----------
    scores : array of shape (N, C) or (C,)
    y : array of N integer labels in ``0 .. C-1``, or one integer if ``scores`` is 1-D
    margin : float
        Required gap between the correct score and each wrong score, >= 0.

    Returns
    -------
    loss : float
        The mean hinge loss.
    grad : ndarray of the same shape as ``scores``
        Its gradient with respect to the scores (0 at the kink).

    Examples
    --------
    >>> loss, grad = hinge_loss_with_grad([3.2, 5.1, -1.7], 0)
    >>> round(loss, 6), grad.tolist()
    (2.9, [-1.0, 1.0, 0.0])
    """
    scores, labels, single = _scores_and_labels(scores, y, finite=False)
    margin = check_real(margin, "margin", low=0.0)
    with np.errstate(invalid="ignore"):
        loss, grad = _hinge(scores, labels, margin, gradient=True)
    return loss, (grad[0] if single else grad)


def hinge_loss_grad(scores, y, margin: float = 1.0) -> np.ndarray:
    """Return the gradient of :func:`hinge_loss` with respect to ``scores``.

    For each example, every wrong class ``j`` with ``s_j - s_y + margin > 0``
    gets ``+1`` and the correct class gets minus the number of such classes;
    everything is divided by ``N`` (the loss is a mean). At the kink
    (a violation of exactly zero) the derivative from the left, 0, is used,
    as ``torch.autograd`` does for ``max(0, .)``. Taught in chapter 4.

    Returns
    -------
    ndarray of the same shape as ``scores``.
    """
    scores, labels, single = _scores_and_labels(scores, y)
    margin = check_real(margin, "margin", low=0.0)
    grad = _hinge(scores, labels, margin, gradient=True)[1]
    return grad[0] if single else grad


def crammer_singer_loss(scores, y, margin: float = 1.0) -> float:
    """Return the mean Crammer-Singer multiclass hinge loss: only the largest violation counts.

    For one example the loss is ``max(0, max_{j != y} s_j - s_y + margin)``,
    where :func:`hinge_loss` (Weston-Watkins) adds up the violations of all
    wrong classes. The two agree on an example with at most one violating
    class, and in general ``crammer_singer <= hinge <= (C - 1) * crammer_singer``.
    With ``margin=0`` it is ``max_j s_j - s_y``, the loss that the softmax
    cross-entropy smooths (``log sum_j exp(s_j)`` is a smooth maximum).
    Taught in chapter 4.

    Parameters
    ----------
    scores : array of shape (N, C) or (C,)
    y : array of N integer labels in ``0 .. C-1``, or one integer if ``scores`` is 1-D
    margin : float
        Required gap between the correct score and the best wrong score, >= 0.

    Returns
    -------
    float

    Examples
    --------
    >>> round(crammer_singer_loss([2.2, 2.5, -3.1], 2), 6)  # two violators: 6.3 and 6.6
    6.6
    """
    scores, labels, _ = _scores_and_labels(scores, y)
    margin = check_real(margin, "margin", low=0.0)
    rows = np.arange(len(labels))
    rivals = scores.copy()
    rivals[rows, labels] = -np.inf
    worst = rivals.max(axis=1) - scores[rows, labels] + margin
    return float(np.maximum(0.0, worst).mean())


def softmax_cross_entropy(scores, y) -> float:
    """Return the mean cross-entropy of ``softmax(scores)`` against the labels, in nats.

    For one example this is ``-log softmax(s)_y = log sum_j exp(s_j) - s_y``,
    the negative log-likelihood of the correct class. It is computed with
    :func:`log_softmax`, so scores of size 1e4 neither overflow nor lose the
    answer. Taught in chapter 4.

    Parameters
    ----------
    scores : array of shape (N, C) or (C,)
        Class scores (logits), one row per example.
    y : array of N integer labels in ``0 .. C-1``, or one integer if ``scores`` is 1-D

    Returns
    -------
    float

    Examples
    --------
    >>> round(softmax_cross_entropy([3.2, 5.1, -1.7], 0), 4)  # natural log: 2.04 nats
    2.0404
    """
    scores, labels, _ = _scores_and_labels(scores, y)
    return _softmax_cross_entropy(scores, labels, gradient=False)[0]


def _softmax_cross_entropy(scores: np.ndarray, labels: np.ndarray, *, gradient: bool):
    """Mean cross-entropy of validated (N, C) scores, and its gradient if asked (else None)."""
    rows = np.arange(len(labels))
    log_probs = _log_softmax(scores)
    loss = float(-log_probs[rows, labels].mean())
    if not gradient:
        return loss, None
    grad = np.exp(log_probs)
    grad[rows, labels] -= 1.0
    return loss, grad / len(labels)


def softmax_cross_entropy_with_grad(scores, y) -> tuple[float, np.ndarray]:
    """Return :func:`softmax_cross_entropy` and :func:`softmax_cross_entropy_grad` from one pass.

    This is the kernel that the two functions above,
    :func:`dl_course.autograd.cross_entropy` and
    :func:`dl_course.linear.train_linear_classifier` share: one stable
    log-softmax gives both the loss and the gradient ``(softmax(s) - onehot(y)) / N``.
    Shapes and labels are checked as in :func:`softmax_cross_entropy`; unlike
    it, NaN or infinite scores are not refused but give a non-finite loss, so
    that a training loop can see its own divergence. Taught in chapter 4.

    Parameters
    ----------
    scores : array of shape (N, C) or (C,)
        Class scores (logits), one row per example.
    y : array of N integer labels in ``0 .. C-1``, or one integer if ``scores`` is 1-D

    Returns
    -------
    loss : float
        The mean cross-entropy, in nats.
    grad : ndarray of the same shape as ``scores``
        Its gradient with respect to the scores.

    Examples
    --------
    >>> loss, grad = softmax_cross_entropy_with_grad([0.0, 0.0], 1)
    >>> round(loss, 4), grad.tolist()
    (0.6931, [0.5, -0.5])
    """
    scores, labels, single = _scores_and_labels(scores, y, finite=False)
    with np.errstate(invalid="ignore", over="ignore"):
        loss, grad = _softmax_cross_entropy(scores, labels, gradient=True)
    return loss, (grad[0] if single else grad)


def softmax_cross_entropy_grad(scores, y) -> np.ndarray:
    """Return the gradient of :func:`softmax_cross_entropy` with respect to ``scores``.

    It is ``(softmax(s) - onehot(y)) / N``: predicted minus target
    probabilities, averaged over the examples. Taught in chapter 4.

    Returns
    -------
    ndarray of the same shape as ``scores``.
    """
    scores, labels, single = _scores_and_labels(scores, y)
    grad = _softmax_cross_entropy(scores, labels, gradient=True)[1]
    return grad[0] if single else grad


def one_hot(y, n_classes: int) -> np.ndarray:
    """Return the ``(N, n_classes)`` float array with a 1 in column ``y[i]`` of row ``i``.

    Taught in chapter 4 (targets for the MSE classifier, one-hot distributions).
    """
    n_classes = check_int(n_classes, "n_classes", low=1)
    y_arr = np.asarray(y)
    labels = as_labels(y, "y", n=y_arr.shape[0] if y_arr.ndim else 0, allowed=range(n_classes))
    out = np.zeros((len(labels), n_classes))
    out[np.arange(len(labels)), labels] = 1.0
    return out


# ----------------------------------------------------------------------------- regression


def mse(pred, target) -> float:
    """Return the mean squared error ``mean((pred - target)**2)`` over all entries.

    The average runs over every entry, as in ``torch.nn.functional.mse_loss``.
    Taught in chapter 4.
    """
    pred, target = _same_shape(pred, target, "pred", "target")
    return float(np.mean((pred - target) ** 2))


def mse_grad(pred, target) -> np.ndarray:
    """Return the gradient ``2 (pred - target) / pred.size`` of :func:`mse` w.r.t. ``pred``.

    Taught in chapter 4.
    """
    pred, target = _same_shape(pred, target, "pred", "target")
    return 2.0 * (pred - target) / pred.size


def mae(pred, target) -> float:
    """Return the mean absolute error ``mean(|pred - target|)`` over all entries.

    Taught in chapter 4.
    """
    pred, target = _same_shape(pred, target, "pred", "target")
    return float(np.mean(np.abs(pred - target)))


def gaussian_nll(pred, target, sigma: float = 1.0) -> float:
    """Return the mean negative log-likelihood of ``target`` under ``N(pred, sigma**2)``.

    Per entry this is ``(target - pred)**2 / (2 sigma**2) + log(sigma) + log(2 pi) / 2``,
    so it equals ``mse(pred, target) / (2 sigma**2)`` plus a constant that does
    not depend on ``pred``: minimizing it is minimizing the MSE. Taught in chapter 4.
    """
    pred, target = _same_shape(pred, target, "pred", "target")
    sigma = check_real(sigma, "sigma", low=0.0, low_open=True)
    squared = (target - pred) ** 2 / (2.0 * sigma**2)
    return float(np.mean(squared) + np.log(sigma) + 0.5 * np.log(2.0 * np.pi))


def laplace_nll(pred, target, scale: float = 1.0) -> float:
    """Return the mean negative log-likelihood of ``target`` under ``Laplace(pred, scale)``.

    The Laplace density is ``exp(-|t - pred| / scale) / (2 scale)``, so per entry
    the NLL is ``|target - pred| / scale + log(2 scale)``: it equals
    ``mae(pred, target) / scale`` plus a constant, and minimizing it is minimizing
    the MAE, whose best constant prediction is the median (the Gaussian's is the
    mean). Taught in chapter 4.

    Examples
    --------
    >>> round(laplace_nll([0.0], [0.0]), 4)  # log 2
    0.6931
    """
    pred, target = _same_shape(pred, target, "pred", "target")
    scale = check_real(scale, "scale", low=0.0, low_open=True)
    return float(np.mean(np.abs(target - pred)) / scale + np.log(2.0 * scale))


# ----------------------------------------------------------------------------- binary losses


def _binary_targets(target, shape) -> np.ndarray:
    target = as_float_array(target, "target")
    if target.shape != shape:
        raise ValueError(f"target must have shape {shape} like the predictions, got {target.shape}")
    if np.any((target < 0) | (target > 1)):
        raise ValueError("target must lie in [0, 1] (labels 0/1, or soft targets)")
    return target


def binary_cross_entropy(probs, target) -> float:
    """Return the mean binary cross-entropy ``-[t log p + (1 - t) log(1 - p)]``, in nats.

    ``probs`` are predicted probabilities of class 1, strictly between 0 and 1
    (use :func:`binary_cross_entropy_with_logits` when you have scores: it never
    needs to form a probability that rounds to 0 or 1). ``target`` holds labels
    in {0, 1} or soft targets in [0, 1]. It is the negative log-likelihood of a
    Bernoulli model, averaged over entries. Taught in chapter 4.
    """
    probs = as_float_array(probs, "probs")
    if np.any((probs <= 0) | (probs >= 1)):
        raise ValueError(
            "probs must lie strictly between 0 and 1; for scores (logits) use "
            "binary_cross_entropy_with_logits"
        )
    target = _binary_targets(target, probs.shape)
    return float(-np.mean(target * np.log(probs) + (1.0 - target) * np.log1p(-probs)))


def binary_cross_entropy_with_logits(logits, target) -> float:
    """Return the mean binary cross-entropy of ``sigmoid(logits)`` against ``target``.

    Uses the stable form ``max(z, 0) - z t + log(1 + exp(-|z|))``, which equals
    ``-[t log sigmoid(z) + (1 - t) log(1 - sigmoid(z))]`` but never overflows
    and stays exact for large ``|z|``. Taught in chapter 4.
    """
    logits = as_float_array(logits, "logits")
    target = _binary_targets(target, logits.shape)
    values = np.maximum(logits, 0.0) - logits * target + np.log1p(np.exp(-np.abs(logits)))
    return float(np.mean(values))


# ----------------------------------------------------------------------------- information theory


def _plogq(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``p * log(q)`` elementwise with ``0 * log(anything) = 0`` and ``p * log(0) = -inf``."""
    with np.errstate(divide="ignore"):
        logs = np.log(q)
    return np.where(p > 0, p * np.where(p > 0, logs, 0.0), 0.0)


def entropy(p, base: float | None = None):
    """Return the entropy ``H(p) = -sum_k p_k log p_k`` of a probability vector.

    Terms with ``p_k = 0`` contribute 0. With ``base=None`` (the default) the
    logarithm is natural and the unit is the nat; ``base=2`` gives bits.
    Taught in chapter 4.

    Parameters
    ----------
    p : array of shape (C,) or (N, C)
        A probability vector, or one per row.
    base : float or None
        Base of the logarithm (> 0, not 1); None for the natural log.

    Returns
    -------
    float for 1-D ``p``; ndarray of shape (N,) for 2-D ``p``.

    Examples
    --------
    >>> entropy([0.5, 0.5], base=2)
    1.0
    """
    p = _distribution(p, "p")
    scale = _log_base(base)
    return _reduce(-_plogq(p, p).sum(axis=-1) * scale)


def distribution_cross_entropy(p, q, base: float | None = None):
    """Return the cross-entropy ``H(p, q) = -sum_k p_k log q_k`` between two distributions.

    Not to be confused with the softmax cross-entropy of scores against labels
    (:func:`softmax_cross_entropy` here, ``cross_entropy(logits, labels)`` in
    :mod:`dl_course.autograd` and torch): that one is this one with a one-hot
    ``p`` and ``q = softmax(scores)``.
    ``p`` weights the terms (the "true" distribution) and ``q`` sits inside the
    logarithm (the model), so ``distribution_cross_entropy(p, q)`` and
    ``distribution_cross_entropy(q, p)`` differ in general. It is ``inf`` when ``q`` gives probability 0 to an outcome that
    ``p`` does not. Natural log unless ``base`` is given. Taught in chapter 4.

    Returns
    -------
    float for 1-D inputs; ndarray of shape (N,) for 2-D inputs (one per row).
    """
    p, q = _two_distributions(p, q)
    scale = _log_base(base)
    return _reduce(-_plogq(p, q).sum(axis=-1) * scale)


def kl_divergence(p, q, base: float | None = None):
    """Return the Kullback-Leibler divergence ``KL(p || q) = sum_k p_k log(p_k / q_k)``.

    It is >= 0, zero only when ``p == q``, not symmetric, and equals
    ``distribution_cross_entropy(p, q) - entropy(p)``; it is computed directly (not as that
    difference) so that it is exactly 0 for ``p == q``, and round-off below 0
    is clipped to 0. It is ``inf`` when ``q``
    gives probability 0 to an outcome that ``p`` does not. Natural log unless
    ``base`` is given. Taught in chapter 4.

    Returns
    -------
    float for 1-D inputs; ndarray of shape (N,) for 2-D inputs (one per row).

    Examples
    --------
    >>> kl_divergence([0.5, 0.5], [0.5, 0.5])
    0.0
    """
    p, q = _two_distributions(p, q)
    scale = _log_base(base)
    with np.errstate(divide="ignore"):
        log_ratio = np.log(np.where(p > 0, p, 1.0)) - np.log(q)
    terms = np.where(p > 0, p * np.where(p > 0, log_ratio, 0.0), 0.0)
    return _reduce(np.maximum(terms.sum(axis=-1), 0.0) * scale)
