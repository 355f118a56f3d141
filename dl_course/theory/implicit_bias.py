"""Implicit bias of gradient descent: low rank, maximum margin and the path norm.

Chapter 16 measures three ways in which gradient descent, among the many
solutions that fit the data, picks a particular one:

- *low rank*: gradient descent on a factorized matrix ``W = F_L ... F_1`` from a
  small initialization, fitted to random linear measurements of a low-rank matrix
  (:func:`make_sensing_problem`, :func:`train_factorization`), finds a matrix of
  small nuclear norm and small effective rank (:func:`nuclear_norm`,
  :func:`effective_rank`), unlike the minimum-Frobenius-norm interpolant
  (:func:`min_norm_interpolant`); the rank-``r`` matrices have
  ``r (d + p) - r^2`` degrees of freedom (:func:`effective_parameter_count`,
  checked against the rank of :func:`factorization_jacobian`);
- *maximum margin*: gradient descent on the logistic loss of separable data
  (:func:`gd_logistic_direction`) turns towards the hard-margin SVM
  (:func:`svm_direction`) while its norm grows like ``log t``;
- *path norm*: two-layer ReLU networks (:func:`relu_network`) are invariant under
  :func:`rescale_neurons`, the path norm (:func:`path_norm`,
  :func:`neuron_path_norms`) is too, and networks trained from a small
  initialization (:func:`train_two_layer_relu`) concentrate it on few neurons.

NumPy only (:func:`svm_direction` imports scikit-learn when called). Taught in
chapter 16.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dl_course._checks import as_float_array, as_labels, check_int, check_real, check_seed
from dl_course._threads import limited_threads

# -- checks -----------------------------------------------------------------------------------


def _scales(values, name: str) -> np.ndarray:
    """A 1-D array of positive finite numbers (a scalar becomes one entry)."""
    array = as_float_array(np.atleast_1d(values), name, ndim=1)
    if np.any(array <= 0):
        raise ValueError(f"{name} must be > 0, got {array[array <= 0][0]:g}")
    return array


def _measurements(A, y) -> tuple[np.ndarray, np.ndarray]:
    """``A`` of shape (m, d, p) or (B, m, d, p) and ``y`` of shape (m,) or (B, m)."""
    A = as_float_array(A, "A", ndim=(3, 4))
    y = as_float_array(y, "y", ndim=(1, 2))
    if y.shape != A.shape[:-2]:
        raise ValueError(
            f"y must have shape {A.shape[:-2]} (one value per measurement matrix in A), "
            f"got {y.shape}"
        )
    return A, y


# -- matrices: norms, rank, degrees of freedom -------------------------------------------------


def nuclear_norm(W) -> np.ndarray | float:
    """The nuclear norm ``sum_i sigma_i(W)``, the sum of the singular values.

    Parameters
    ----------
    W : array_like of shape (..., d, p)
        One matrix or a stack of matrices.

    Returns
    -------
    float or ndarray of shape (...)

    Examples
    --------
    >>> float(nuclear_norm(np.diag([3.0, -1.0])))
    4.0
    """
    W = as_float_array(W, "W")
    if W.ndim < 2:
        raise ValueError(f"W must be a matrix or a stack of matrices, got shape {W.shape}")
    total = np.linalg.svd(W, compute_uv=False).sum(axis=-1)
    return float(total) if W.ndim == 2 else total


def effective_rank(W) -> np.ndarray | float:
    """The entropy effective rank of Roy and Vetterli, ``exp(H(sigma / sum(sigma)))``.

    It is ``k`` for a matrix with ``k`` equal nonzero singular values and varies
    continuously in between, so a matrix with one dominant direction and a few tiny
    ones has an effective rank a little above 1. Taught in chapter 16.

    Parameters
    ----------
    W : array_like of shape (..., d, p)
        One matrix or a stack of matrices; none may be zero.

    Returns
    -------
    float or ndarray of shape (...)

    Examples
    --------
    >>> round(float(effective_rank(np.diag([2.0, 2.0, 0.0]))), 6)
    2.0
    """
    W = as_float_array(W, "W")
    if W.ndim < 2:
        raise ValueError(f"W must be a matrix or a stack of matrices, got shape {W.shape}")
    sigma = np.linalg.svd(W, compute_uv=False)
    total = sigma.sum(axis=-1, keepdims=True)
    if np.any(total == 0):
        raise ValueError("W must not be the zero matrix: its effective rank is undefined")
    share = sigma / total
    entropy = -np.sum(share * np.log(np.where(share > 0, share, 1.0)), axis=-1)
    rank = np.exp(entropy)
    return float(rank) if W.ndim == 2 else rank


def effective_parameter_count(d: int, p: int, r: int) -> int:
    """``r (d + p) - r^2``: the dimension of the set of d x p matrices of rank r.

    Taught in chapter 16, which proves it from :func:`factorization_jacobian`.

    Examples
    --------
    >>> effective_parameter_count(10, 10, 2)
    36
    """
    d = check_int(d, "d", low=1)
    p = check_int(p, "p", low=1)
    r = check_int(r, "r", low=1, high=min(d, p))
    return r * (d + p) - r * r


def factorization_jacobian(U, V) -> np.ndarray:
    """The Jacobian of ``(U, V) -> U V^T``, a (d p) x (r (d + p)) matrix.

    Rows index the entries of ``W = U V^T`` in row-major order; columns index the
    entries of ``U`` (row-major) followed by those of ``V`` (row-major). The
    differential is ``(dU, dV) -> dU V^T + U dV^T``. Taught in chapter 16.

    Parameters
    ----------
    U : array_like of shape (d, r)
    V : array_like of shape (p, r)

    Returns
    -------
    ndarray of shape (d * p, r * (d + p))
    """
    U = as_float_array(U, "U", ndim=2)
    V = as_float_array(V, "V", ndim=2)
    if U.shape[1] != V.shape[1]:
        raise ValueError(
            f"U and V must have the same number of columns, got {U.shape} and {V.shape}"
        )
    d, p = U.shape[0], V.shape[0]
    # W[i, j] = sum_k U[i, k] V[j, k]
    wrt_u = np.einsum("ai,jk->ijak", np.eye(d), V).reshape(d * p, -1)
    wrt_v = np.einsum("ik,bj->ijbk", U, np.eye(p)).reshape(d * p, -1)
    return np.hstack([wrt_u, wrt_v])


# -- matrix sensing ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SensingProblem:
    """Random linear measurements ``y_k = <A_k, W_star>`` of a low-rank matrix."""

    A: np.ndarray  # (m, d, p), standard normal entries
    y: np.ndarray  # (m,)
    W_star: np.ndarray  # (d, p), rank ``rank``, largest singular value 1


def make_sensing_problem(d: int, p: int, rank: int, m: int, seed: int = 0) -> SensingProblem:
    """Draw a rank-``rank`` d x p matrix and ``m`` Gaussian measurements of it.

    ``W_star = G H^T / sigma_max`` for standard normal ``G`` (d x rank) and ``H``
    (p x rank), so its largest singular value is 1; each ``A_k`` has independent
    standard normal entries. Taught in chapter 16.

    Parameters
    ----------
    d, p : int
        Shape of the matrix.
    rank : int
        Its rank, 1 <= rank <= min(d, p).
    m : int
        Number of measurements, >= 1.
    seed : int
        Seed of the random generator.

    Returns
    -------
    SensingProblem
    """
    d = check_int(d, "d", low=1)
    p = check_int(p, "p", low=1)
    rank = check_int(rank, "rank", low=1, high=min(d, p))
    m = check_int(m, "m", low=1)
    rng = np.random.default_rng(check_seed(seed))
    W_star = rng.standard_normal((d, rank)) @ rng.standard_normal((p, rank)).T
    W_star /= np.linalg.norm(W_star, 2)
    A = rng.standard_normal((m, d, p))
    return SensingProblem(A=A, y=np.einsum("mij,ij->m", A, W_star), W_star=W_star)


def min_norm_interpolant(A, y) -> np.ndarray:
    """The matrix of least Frobenius norm among those with ``<A_k, W> = y_k`` (least squares).

    Computed with :func:`numpy.linalg.pinv` on the measurements flattened to an
    m x (d p) matrix: ``vec(W) = pinv(A) y``. Taught in chapter 16.

    Parameters
    ----------
    A : array_like of shape (m, d, p) or (B, m, d, p)
        Measurement matrices (a stack of B problems, solved one by one).
    y : array_like of shape (m,) or (B, m)
        Measurements.

    Returns
    -------
    ndarray of shape (d, p) or (B, d, p)
    """
    A, y = _measurements(A, y)
    *batch, m, d, p = A.shape
    flat = A.reshape(*batch, m, d * p)
    W = np.linalg.pinv(flat) @ y[..., None]
    return W.reshape(*batch, d, p)


@dataclass(frozen=True)
class FactorizationRun:
    """The end of :func:`train_factorization`: one matrix per init scale (and problem)."""

    W: np.ndarray  # (S, d, p) or (S, B, d, p): the product of the factors
    loss: np.ndarray  # (S,) or (S, B): the final loss (1 / 2m) sum_k (<A_k, W> - y_k)^2
    init_scales: np.ndarray  # (S,)


def _product(factors: list[np.ndarray]) -> np.ndarray:
    """``F_L ... F_1`` for factors listed first to last, batched over leading axes."""
    out = factors[0]
    for factor in factors[1:]:
        out = factor @ out
    return out


def train_factorization(
    A,
    y,
    init_scales,
    *,
    depth: int = 2,
    width: int | None = None,
    lr: float = 0.1,
    steps: int = 2000,
    seed: int = 0,
) -> FactorizationRun:
    """Full-batch gradient descent on ``W = F_depth ... F_1`` fitted to linear measurements.

    The loss is ``(1 / 2m) sum_k (<A_k, W> - y_k)^2``. ``F_1`` is width x p,
    ``F_depth`` is d x width and the factors in between are width x width; every
    entry starts as ``init_scale / sqrt(width) * N(0, 1)``, with the same standard
    normal draw for every scale, so the runs differ only in their scale. With
    ``depth=1`` the model is ``W`` itself, started at zero: gradient descent then
    converges to :func:`min_norm_interpolant`. All scales (and all problems of a
    stack) are trained at once with batched matrix products. Taught in chapter 16.

    Parameters
    ----------
    A : array_like of shape (m, d, p) or (B, m, d, p)
        Measurement matrices, one set per problem of a stack of B.
    y : array_like of shape (m,) or (B, m)
        Measurements.
    init_scales : float or sequence of floats
        Initialization scales, > 0 (ignored for ``depth=1``, which starts at zero).
    depth : int
        Number of factors, 1 to 6.
    width : int, optional
        Inner dimension of the factorization; ``min(d, p)`` by default, so the
        parameterization constrains nothing.
    lr : float
        Learning rate, > 0.
    steps : int
        Number of gradient steps, >= 1.
    seed : int
        Seed of the initialization.

    Returns
    -------
    FactorizationRun

    Raises
    ------
    dl_course.training.DivergenceError
        If the loss becomes infinite or NaN (lower ``lr``).
    """
    A, y = _measurements(A, y)
    scales = _scales(init_scales, "init_scales")
    depth = check_int(depth, "depth", low=1, high=6)
    lr = check_real(lr, "lr", low=0.0, low_open=True)
    steps = check_int(steps, "steps", low=1)
    rng = np.random.default_rng(check_seed(seed))
    *batch, m, d, p = A.shape
    width = min(d, p) if width is None else check_int(width, "width", low=1)
    flat_t = np.swapaxes(A.reshape(*batch, m, d * p), -1, -2)  # (..., dp, m)
    shapes = [(width, p)] + [(width, width)] * (depth - 2) + [(d, width)] if depth > 1 else []
    lead = (len(scales), *batch)
    factor_scale = scales.reshape(-1, *[1] * (len(batch) + 2)) / np.sqrt(width)
    factors = [factor_scale * rng.standard_normal(lead + shape) for shape in shapes]
    if depth == 1:
        factors = [np.zeros(lead + (d, p))]
    work = len(scales) * max(1, int(np.prod(batch))) * (2 * m * d * p + 4 * depth * d * p * width)
    with limited_threads(work):
        for _ in range(steps):
            W = _product(factors)
            residual = (W.reshape(*lead, 1, d * p) @ flat_t)[..., 0, :] - y
            grad_W = (residual[..., None, :] @ np.swapaxes(flat_t, -1, -2)).reshape(W.shape) / m
            factors = [
                f - lr * g for f, g in zip(factors, _factor_grads(factors, grad_W), strict=True)
            ]
        W = _product(factors)
        residual = (W.reshape(*lead, 1, d * p) @ flat_t)[..., 0, :] - y
    loss = 0.5 * np.mean(residual**2, axis=-1)
    if not np.all(np.isfinite(loss)):
        from dl_course.training import DivergenceError

        raise DivergenceError(f"the loss diverged with lr={lr}; try a smaller learning rate")
    return FactorizationRun(W=W, loss=loss, init_scales=scales)


def _factor_grads(factors: list[np.ndarray], grad_W: np.ndarray) -> list[np.ndarray]:
    """Gradients of ``L(F_L ... F_1)`` with respect to each factor, given ``dL/dW``."""
    if len(factors) == 1:
        return [grad_W]
    grads = []
    for i in range(len(factors)):
        g = grad_W
        if i + 1 < len(factors):  # left: (F_L ... F_{i+1})^T
            g = np.swapaxes(_product(factors[i + 1 :]), -1, -2) @ g
        if i > 0:  # right: (F_{i-1} ... F_1)^T
            g = g @ np.swapaxes(_product(factors[:i]), -1, -2)
        grads.append(g)
    return grads


# -- logistic regression on separable data -----------------------------------------------------


@dataclass(frozen=True)
class LogisticRun:
    """Weights of :func:`gd_logistic_direction` at the recorded steps."""

    steps: np.ndarray  # (T,) the recorded step numbers
    w: np.ndarray  # (T, d) or (T, B, d)
    loss: np.ndarray  # (T,) or (T, B): the mean logistic loss at those steps


def gd_logistic_direction(
    X, y, *, lr: float = 1.0, steps: int = 10_000, record=None
) -> LogisticRun:
    """Gradient descent from zero on the mean logistic loss ``mean log(1 + exp(-y_i w.x_i))``.

    No bias: the classifier is ``sign(w . x)``. On linearly separable data the loss
    tends to zero, ``||w||`` grows without bound (like ``log t``) and ``w / ||w||``
    turns towards the hard-margin SVM direction (:func:`svm_direction`), with an
    error of order ``1 / log t`` (Soudry et al. 2018). Taught in chapter 16.

    Parameters
    ----------
    X : array_like of shape (n, d) or (B, n, d)
        Inputs (a stack of B data sets of the same size, trained at once).
    y : array_like of shape (n,) or (B, n)
        Labels in {-1, +1}.
    lr : float
        Learning rate, > 0. ``lr < 8 / lambda_max(X^T X / n)`` keeps the first
        steps stable; the curvature only falls afterwards.
    steps : int
        Number of gradient steps, >= 1.
    record : sequence of int, optional
        Steps (0 to ``steps``) at which to store the weights; default about 60
        log-spaced steps and the last.

    Returns
    -------
    LogisticRun
    """
    X = as_float_array(X, "X", ndim=(2, 3))
    y = as_float_array(y, "y", ndim=(1, 2))
    if y.shape != X.shape[:-1]:
        raise ValueError(
            f"y must have shape {X.shape[:-1]} (one label per row of X), got {y.shape}"
        )
    as_labels(y.ravel(), "y", n=y.size, allowed=(-1, 1))
    lr = check_real(lr, "lr", low=0.0, low_open=True)
    steps = check_int(steps, "steps", low=1)
    if record is None:
        record = np.unique(np.r_[0, np.geomspace(1, steps, 60).round().astype(int)])
    record = np.array([check_int(int(t), "record", low=0, high=steps) for t in record])
    if record.size == 0 or np.any(np.diff(record) <= 0):
        raise ValueError("record must be a non-empty increasing sequence of steps")
    Z = y[..., None] * X  # the margins are Z @ w
    n = X.shape[-2]
    w = np.zeros(X.shape[:-2] + X.shape[-1:])
    saved_w, saved_loss = [], []
    wanted = set(record.tolist())
    with limited_threads(Z.size):
        for t in range(steps + 1):
            if t in wanted:
                margins = (Z @ w[..., None])[..., 0]
                saved_w.append(w.copy())
                saved_loss.append(np.mean(np.logaddexp(0.0, -margins), axis=-1))
            if t == steps:
                break
            margins = (Z @ w[..., None])[..., 0]
            weights = 0.5 * (1.0 - np.tanh(0.5 * margins))  # sigmoid(-margin), stable
            w = w + (lr / n) * (weights[..., None, :] @ Z)[..., 0, :]
    return LogisticRun(steps=record, w=np.array(saved_w), loss=np.array(saved_loss))


def svm_direction(X, y, *, C: float = 1e6) -> np.ndarray:
    """The unit normal of the hard-margin SVM through the origin, from scikit-learn's SVC.

    ``SVC`` always fits an intercept. To get the homogeneous classifier, the data
    are mirrored: ``(x_i, y_i)`` and ``(-x_i, -y_i)``. The mirrored set is
    symmetric, so its maximum-margin hyperplane passes through the origin, and a
    hyperplane through the origin has the same margins on both copies. A large
    ``C`` makes the soft margin hard. Taught in chapter 16.

    Parameters
    ----------
    X : array_like of shape (n, d)
    y : array_like of shape (n,), labels in {-1, +1}
    C : float
        Penalty of the soft-margin SVM, > 0.

    Returns
    -------
    ndarray of shape (d,)
        ``w_hat / ||w_hat||`` where ``w_hat`` minimizes ``||w||`` subject to
        ``y_i w . x_i >= 1``; ``1 / ||w_hat||`` is the maximum margin.
    """
    X = as_float_array(X, "X", ndim=2)
    y = as_labels(y, "y", n=X.shape[0], allowed=(-1, 1))
    C = check_real(C, "C", low=0.0, low_open=True)
    from sklearn.svm import SVC

    svc = SVC(kernel="linear", C=C, tol=1e-10).fit(np.vstack([X, -X]), np.r_[y, -y])
    w = svc.coef_[0]
    return w / np.linalg.norm(w)


# -- two-layer ReLU networks -------------------------------------------------------------------


def _network(a, W) -> tuple[np.ndarray, np.ndarray]:
    a = as_float_array(a, "a")
    W = as_float_array(W, "W")
    if W.ndim < 2 or W.shape[:-1] != a.shape:
        raise ValueError(
            f"W must have shape a.shape + (d,) (one input weight vector per neuron), "
            f"got a {a.shape} and W {W.shape}"
        )
    return a, W


def relu_network(a, W, X) -> np.ndarray:
    """The two-layer ReLU network ``f(x) = sum_j a_j relu(w_j . x)`` on the rows of ``X``.

    Parameters
    ----------
    a : array_like of shape (..., k)
        Output weights (a stack of networks over the leading axes).
    W : array_like of shape (..., k, d)
        Input weights, row ``j`` is ``w_j``.
    X : array_like of shape (n, d) or (..., n, d)
        Inputs.

    Returns
    -------
    ndarray of shape (..., n)
    """
    a, W = _network(a, W)
    X = as_float_array(X, "X")
    if X.ndim < 2 or X.shape[-1] != W.shape[-1]:
        raise ValueError(f"X must have shape (n, {W.shape[-1]}), got {X.shape}")
    hidden = np.maximum(X @ np.swapaxes(W, -1, -2), 0.0)  # (..., n, k)
    return (hidden @ a[..., None])[..., 0]


def neuron_path_norms(a, W) -> np.ndarray:
    """Per-neuron path norms ``|a_j| ||w_j||``, shape ``a.shape``. Taught in chapter 16."""
    a, W = _network(a, W)
    return np.abs(a) * np.linalg.norm(W, axis=-1)


def path_norm(a, W) -> np.ndarray | float:
    """The path norm ``sum_j |a_j| ||w_j||`` of a two-layer ReLU network.

    Unlike ``||a||^2 + ||W||^2`` it does not change under :func:`rescale_neurons`.
    Taught in chapter 16.

    Examples
    --------
    >>> float(path_norm([2.0, -1.0], [[3.0, 4.0], [0.0, 1.0]]))
    11.0
    """
    total = neuron_path_norms(a, W).sum(axis=-1)
    return float(total) if np.ndim(total) == 0 else total


def merged_path_norms(a, W, *, min_cosine: float = 0.99) -> np.ndarray:
    """Path norms of groups of neurons that point the same way, largest first.

    Neurons ``j`` and ``k`` with the same sign of ``a`` and input directions
    ``w_j / ||w_j||`` within ``min_cosine`` of each other compute nearly the same
    function up to scale, so together they form one path of the network: merged
    into one neuron, they keep their summed path norm. Groups are formed greedily,
    each around the largest remaining neuron. Taught in chapter 16.

    Parameters
    ----------
    a : array_like of shape (k,)
    W : array_like of shape (k, d)
    min_cosine : float
        Cosine above which two directions count as the same, in (0, 1].

    Returns
    -------
    ndarray of shape (groups,)
        The path norm of each group, in decreasing order; they sum to
        :func:`path_norm`.
    """
    a, W = _network(a, W)
    if a.ndim != 1:
        raise ValueError(f"a must be 1-D (one network), got shape {a.shape}")
    min_cosine = check_real(min_cosine, "min_cosine", low=0.0, high=1.0, low_open=True)
    norms = neuron_path_norms(a, W)
    lengths = np.linalg.norm(W, axis=-1)
    unit = W / np.where(lengths > 0, lengths, 1.0)[:, None]
    left = np.argsort(-norms, kind="stable")
    groups = []
    while left.size:
        lead = left[0]
        same = (unit[left] @ unit[lead] >= min_cosine) & (np.sign(a[left]) == np.sign(a[lead]))
        same[0] = True
        groups.append(norms[left[same]].sum())
        left = left[~same]
    return np.sort(np.array(groups))[::-1]


def rescale_neurons(a, W, c) -> tuple[np.ndarray, np.ndarray]:
    """``(a_j / c_j, c_j w_j)``: the rescaling that leaves a ReLU network's function unchanged.

    Parameters
    ----------
    a : array_like of shape (..., k)
    W : array_like of shape (..., k, d)
    c : float or array_like broadcastable to ``a``
        Positive factors, one per neuron (relu(c s) = c relu(s) needs c > 0).

    Returns
    -------
    (ndarray, ndarray)
    """
    a, W = _network(a, W)
    c = as_float_array(c, "c")
    if np.any(c <= 0):
        raise ValueError("c must be > 0: relu(c s) = c relu(s) holds only for positive c")
    c = np.broadcast_to(c, a.shape)
    return a / c, c[..., None] * W


@dataclass(frozen=True)
class ReluRun:
    """Trained two-layer ReLU networks, one per (init scale, data set)."""

    a: np.ndarray  # (S, B, k)
    W: np.ndarray  # (S, B, k, d)
    loss: np.ndarray  # (S, B): final training loss (1/2n) sum (f(x_i) - y_i)^2
    balance: np.ndarray  # (S, B): max_j |a_j^2 - ||w_j||^2| at the end
    balance_init: np.ndarray  # (S, B): the same at the start


def train_two_layer_relu(
    X,
    y,
    init_scales,
    *,
    width: int = 50,
    lr: float = 0.1,
    steps: int = 2000,
    weight_decay: float = 0.0,
    seed: int = 0,
) -> ReluRun:
    """Full-batch gradient descent on ``(1/2n) sum_i (f(x_i) - y_i)^2 + (wd/2) ||theta||^2``.

    ``f(x) = sum_j a_j relu(w_j . x)`` with ``width`` neurons; at the start
    ``w_j ~ init_scale * N(0, I / d)`` and ``a_j ~ init_scale * N(0, 1 / width)``,
    the same standard normal draw for every scale. All scales and data sets train at
    once with batched products. Taught in chapter 16.

    Parameters
    ----------
    X : array_like of shape (n, d) or (B, n, d)
        Inputs (a stack of B data sets of the same size).
    y : array_like of shape (n,) or (B, n)
        Targets.
    init_scales : float or sequence of floats
        Initialization scales, > 0.
    width : int
        Number of hidden neurons, >= 1.
    lr : float
        Learning rate, > 0.
    steps : int
        Number of gradient steps, >= 1.
    weight_decay : float
        The coefficient ``wd`` of the L2 penalty on all weights, >= 0.
    seed : int
        Seed of the initialization (data set ``b`` uses its own draw).

    Returns
    -------
    ReluRun
    """
    X = as_float_array(X, "X", ndim=(2, 3))
    y = as_float_array(y, "y", ndim=(1, 2))
    if y.shape != X.shape[:-1]:
        raise ValueError(
            f"y must have shape {X.shape[:-1]} (one target per row of X), got {y.shape}"
        )
    if X.ndim == 2:
        X, y = X[None], y[None]
    scales = _scales(init_scales, "init_scales")
    width = check_int(width, "width", low=1)
    lr = check_real(lr, "lr", low=0.0, low_open=True)
    steps = check_int(steps, "steps", low=1)
    weight_decay = check_real(weight_decay, "weight_decay", low=0.0)
    rng = np.random.default_rng(check_seed(seed))
    B, n, d = X.shape
    s = scales[:, None, None]
    W = s[..., None] * rng.standard_normal((1, B, width, d)) / np.sqrt(d)
    a = s * rng.standard_normal((1, B, width)) / np.sqrt(width)
    balance_init = np.max(np.abs(a**2 - np.sum(W**2, axis=-1)), axis=-1)
    with limited_threads(len(scales) * B * n * width * d * 3):
        for _ in range(steps):
            pre = X @ np.swapaxes(W, -1, -2)  # (S, B, n, k)
            hidden = np.maximum(pre, 0.0)
            residual = (hidden @ a[..., None])[..., 0] - y  # (S, B, n)
            grad_a = (residual[..., None, :] @ hidden)[..., 0, :] / n
            back = (pre > 0) * (residual[..., None] * a[..., None, :])  # (S, B, n, k)
            grad_W = np.swapaxes(back, -1, -2) @ X / n
            a = a - lr * (grad_a + weight_decay * a)
            W = W - lr * (grad_W + weight_decay * W)
        residual = relu_network(a, W, X) - y
    loss = 0.5 * np.mean(residual**2, axis=-1)
    if not np.all(np.isfinite(loss)):
        from dl_course.training import DivergenceError

        raise DivergenceError(f"the loss diverged with lr={lr}; try a smaller learning rate")
    balance = np.max(np.abs(a**2 - np.sum(W**2, axis=-1)), axis=-1)
    return ReluRun(a=a, W=W, loss=loss, balance=balance, balance_init=balance_init)


__all__: Sequence[str] = (
    "FactorizationRun",
    "LogisticRun",
    "ReluRun",
    "SensingProblem",
    "effective_parameter_count",
    "effective_rank",
    "factorization_jacobian",
    "gd_logistic_direction",
    "make_sensing_problem",
    "merged_path_norms",
    "min_norm_interpolant",
    "neuron_path_norms",
    "nuclear_norm",
    "path_norm",
    "relu_network",
    "rescale_neurons",
    "svm_direction",
    "train_factorization",
    "train_two_layer_relu",
)
