"""Geometry of representations: Jacobian ranks, learned PCA and representation similarity.

Chapter 17 asks three questions about the features a network computes, and this
module holds the measuring instruments:

- *How many dimensions does a layer keep?* :func:`stage_jacobians` computes the
  Jacobian of every stage (:func:`stage_ends`) of a ``torch.nn.Sequential`` with
  respect to its input, for many inputs at once (``torch.func.vmap`` of ``jacrev``
  or ``jacfwd``), :func:`numerical_rank` counts its singular values above a stated
  relative tolerance, and :func:`relu_layer_jacobian` and
  :func:`relu_network_jacobians` are the closed forms ``D(x) W`` and
  ``D_k W_k ... D_1 W_1`` they are checked against.
- *Does a layer learn the principal subspace?* :func:`planted_subspace_data`
  draws Gaussian data whose top-``r`` principal subspace is known,
  :func:`train_linear_autoencoder` runs full-batch gradient descent on a linear
  autoencoder (loss :func:`autoencoder_loss`) for several seeds at once, and
  :func:`subspace_alignment`, :func:`subspace_alignments`, :func:`principal_angles`
  and :func:`orthonormal_basis` compare subspaces.
- *Do two networks compute the same features?* :func:`linear_cka` (Kornblith et
  al., 2019) and :func:`cka_matrix`, layer by layer.

NumPy only, except :func:`stage_jacobians` and :func:`stage_outputs` (torch,
imported inside). Taught in chapter 17.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dl_course._checks import as_float_array, check_int, check_real, check_seed
from dl_course._threads import limited_threads

#: Default relative tolerance of :func:`numerical_rank`: singular values at most
#: this fraction of the largest one count as zero.
RANK_RTOL = 1e-8


# -- subspaces ----------------------------------------------------------------------------------


def _as_basis_matrix(A, name: str) -> np.ndarray:
    """``A`` as a float array with at least two dimensions (a 1-D vector becomes a column)."""
    A = as_float_array(A, name)
    if A.ndim == 1:
        A = A[:, None]
    if A.shape[-2] < A.shape[-1]:
        raise ValueError(
            f"{name} must have at least as many rows (the ambient dimension) as columns "
            f"(the subspace dimension), got shape {A.shape}"
        )
    return A


def _orthonormalize(A: np.ndarray, name: str) -> np.ndarray:
    """Orthonormal bases of the column spaces of ``A`` (..., d, r), by SVD; full rank required."""
    Q, s, _ = np.linalg.svd(A, full_matrices=False)
    rtol = max(A.shape[-2:]) * np.finfo(np.float64).eps
    if np.any(s[..., -1] <= rtol * s[..., 0]):
        raise ValueError(
            f"the columns of {name} must be linearly independent (span an r-dimensional "
            "subspace); they are (numerically) rank deficient"
        )
    return Q


def orthonormal_basis(A) -> np.ndarray:
    """An orthonormal basis (d, r) of the column space of ``A`` (d, r), which must have rank r.

    Parameters
    ----------
    A : array of shape (d, r) or (d,)
        Columns spanning the subspace; a vector spans a line.

    Returns
    -------
    ndarray of shape (d, r)
        ``Q`` with ``Q.T @ Q = I`` and the same column space as ``A``. Chapter 17.
    """
    A = _as_basis_matrix(A, "A")
    with limited_threads(A.size * A.shape[-1]):
        return _orthonormalize(A, "A")


def _pair(U, V) -> tuple[np.ndarray, np.ndarray]:
    U, V = _as_basis_matrix(U, "U"), _as_basis_matrix(V, "V")
    if U.shape[-2] != V.shape[-2]:
        raise ValueError(
            f"U and V must live in the same space (same number of rows), got {U.shape} and "
            f"{V.shape}"
        )
    if U.shape[-1] != V.shape[-1]:
        raise ValueError(
            f"U and V must span subspaces of the same dimension r (same number of columns), "
            f"got {U.shape} and {V.shape}"
        )
    return _orthonormalize(U, "U"), _orthonormalize(V, "V")


def subspace_alignments(U, V) -> np.ndarray:
    """:func:`subspace_alignment` for stacks of bases, broadcast over the leading axes.

    Parameters
    ----------
    U, V : arrays of shape (..., d, r)
        Bases (any full-rank columns) of r-dimensional subspaces of R^d; the
        leading axes broadcast against each other.

    Returns
    -------
    ndarray of shape (...)
        One alignment in [0, 1] per pair. Chapter 17.
    """
    with limited_threads(np.size(U) * np.shape(U)[-1] + np.size(V) * np.shape(V)[-1]):
        Q_U, Q_V = _pair(U, V)
        overlap = np.swapaxes(Q_U, -1, -2) @ Q_V
    return np.clip(np.sum(overlap**2, axis=(-2, -1)) / Q_U.shape[-1], 0.0, 1.0)


def subspace_alignment(U, V) -> float:
    """How well two r-dimensional subspaces agree: (1/r) ||Q_U^T Q_V||_F^2.

    ``Q_U`` and ``Q_V`` are orthonormal bases of the column spaces of ``U`` and
    ``V``, so the score does not depend on which basis is given (columns may be
    scaled and mixed). It is the mean of the squared cosines of the principal
    angles between the subspaces (:func:`principal_angles`): 1 for the same
    subspace, 0 for orthogonal ones, and r / d on average for random ones.

    Parameters
    ----------
    U, V : arrays of shape (d, r), or (d,) for lines
        Full-rank columns spanning the two subspaces.

    Returns
    -------
    float in [0, 1]

    Examples
    --------
    >>> subspace_alignment([[1.0], [0.0]], [[2.0], [0.0]])
    1.0

    Taught in chapter 17.
    """
    U, V = _as_basis_matrix(U, "U"), _as_basis_matrix(V, "V")
    if U.ndim != 2 or V.ndim != 2:
        raise ValueError(f"U and V must be 1-D or 2-D, got shapes {U.shape} and {V.shape}")
    return float(subspace_alignments(U, V))


def principal_angles(U, V) -> np.ndarray:
    """The principal angles (radians, ascending) between the column spaces of ``U`` and ``V``.

    They are the arccosines of the singular values of ``Q_U^T Q_V``; the first
    is the smallest angle between any two unit vectors of the subspaces.

    Parameters
    ----------
    U, V : arrays of shape (..., d, r)
        Full-rank bases of r-dimensional subspaces; leading axes broadcast.

    Returns
    -------
    ndarray of shape (..., r)
        Angles in [0, pi/2]. Chapter 17.
    """
    with limited_threads(np.size(U) * np.shape(U)[-1] + np.size(V) * np.shape(V)[-1]):
        Q_U, Q_V = _pair(U, V)
        cosines = np.linalg.svd(np.swapaxes(Q_U, -1, -2) @ Q_V, compute_uv=False)
    return np.arccos(np.clip(cosines, 0.0, 1.0))


# -- representation similarity --------------------------------------------------------------------


def _representation(X, name: str) -> np.ndarray:
    X = as_float_array(X, name, ndim=(1, 2))
    if X.ndim == 1:
        X = X[:, None]
    if X.shape[0] < 2:
        raise ValueError(f"{name} must hold at least two examples (rows), got {X.shape[0]}")
    X = X - X.mean(axis=0)
    if np.sqrt(np.sum(X * X)) <= 1e-12 * max(1.0, np.abs(X).max()):
        raise ValueError(f"{name} is the same for every example: its similarity is undefined")
    return X


def linear_cka(X, Y) -> float:
    """Linear centered kernel alignment of two representations of the same examples.

    With ``X`` and ``Y`` centered column-wise,

        CKA(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F),

    the normalized Hilbert-Schmidt independence criterion of the linear kernels
    ``X X^T`` and ``Y Y^T`` (Kornblith et al., 2019). It is 1 for ``CKA(X, X)``,
    invariant to orthogonal transforms and isotropic scaling of either argument
    (so to permuting units), but not to arbitrary invertible linear maps.

    Parameters
    ----------
    X : array of shape (n, p)
        One row per example: the features of one layer (or of the input).
    Y : array of shape (n, q)
        The same n examples in another representation; ``q`` may differ from ``p``.

    Returns
    -------
    float in [0, 1]. Taught in chapter 17.
    """
    X, Y = _representation(X, "X"), _representation(Y, "Y")
    _same_examples(X, Y, "X", "Y")
    with limited_threads(_cka_work(X, Y)):
        return _cka(X, Y, _self_norm(X), _self_norm(Y))


def _same_examples(X, Y, name_x: str, name_y: str) -> None:
    if X.shape[0] != Y.shape[0]:
        raise ValueError(
            f"{name_x} and {name_y} must describe the same examples (same number of rows), got "
            f"{X.shape[0]} and {Y.shape[0]}"
        )


def _cka_work(X, Y) -> int:
    n, pq = X.shape[0], X.shape[1] + Y.shape[1]
    return n * min(n, pq) * pq


def _self_norm(X: np.ndarray) -> float:
    """||X^T X||_F, which equals ||X X^T||_F."""
    small = X.T @ X if X.shape[1] <= X.shape[0] else X @ X.T
    return float(np.sqrt(np.sum(small * small)))


def _cka(X: np.ndarray, Y: np.ndarray, norm_x: float, norm_y: float) -> float:
    """Linear CKA of column-centered ``X`` and ``Y`` with their self-norms (no checks)."""
    # with n < p it is cheaper and as exact to work with the n x n Gram matrices
    if X.shape[0] < max(X.shape[1], Y.shape[1]):
        cross = np.sum((X @ X.T) * (Y @ Y.T))
    else:
        cross = np.sum((Y.T @ X) ** 2)
    return float(np.clip(cross / (norm_x * norm_y), 0.0, 1.0))


def cka_matrix(reps_a, reps_b) -> np.ndarray:
    """Linear CKA between every representation of ``reps_a`` and every one of ``reps_b``.

    Parameters
    ----------
    reps_a, reps_b : sequences of arrays of shape (n, p_k)
        The layers of two networks evaluated on the same n examples.

    Returns
    -------
    ndarray of shape (len(reps_a), len(reps_b))
        Entry (i, j) is ``linear_cka(reps_a[i], reps_b[j])``. Chapter 17.
    """
    for name, reps in (("reps_a", reps_a), ("reps_b", reps_b)):
        if isinstance(reps, np.ndarray) or not hasattr(reps, "__len__") or len(reps) == 0:
            raise TypeError(f"{name} must be a non-empty sequence of 2-D arrays")
    reps_a = [_representation(a, f"reps_a[{i}]") for i, a in enumerate(reps_a)]
    reps_b = [_representation(b, f"reps_b[{j}]") for j, b in enumerate(reps_b)]
    for j, b in enumerate(reps_b):
        _same_examples(reps_a[0], b, "reps_a[0]", f"reps_b[{j}]")
    for i, a in enumerate(reps_a):
        _same_examples(a, reps_b[0], f"reps_a[{i}]", "reps_b[0]")
    work = sum(_cka_work(a, b) for a in reps_a for b in reps_b)
    with limited_threads(work / max(1, len(reps_a) * len(reps_b))):
        norms_a, norms_b = [_self_norm(a) for a in reps_a], [_self_norm(b) for b in reps_b]
        return np.array(
            [
                [_cka(a, b, na, nb) for b, nb in zip(reps_b, norms_b, strict=True)]
                for a, na in zip(reps_a, norms_a, strict=True)
            ]
        )


# -- Jacobian ranks -----------------------------------------------------------------------------


def numerical_rank(J, rtol: float = RANK_RTOL) -> np.ndarray | int:
    """The number of singular values of ``J`` above ``rtol`` times its largest one.

    Parameters
    ----------
    J : array of shape (..., m, d)
        One matrix or a stack of them (for example one Jacobian per input).
    rtol : float
        Relative tolerance in (0, 1). A zero matrix has rank 0.

    Returns
    -------
    int or ndarray of int with shape (...). Chapter 17.
    """
    J = as_float_array(J, "J")
    if J.ndim < 2:
        raise ValueError(f"J must have at least 2 dimensions (m, d), got shape {J.shape}")
    rtol = check_real(rtol, "rtol", low=0.0, high=1.0, low_open=True, high_open=True)
    with limited_threads(J.size * min(J.shape[-2:])):
        s = np.linalg.svd(J, compute_uv=False)
    top = s[..., :1]
    ranks = np.sum((s > rtol * top) & (top > 0), axis=-1)
    return int(ranks) if ranks.ndim == 0 else ranks


def relu_layer_jacobian(W, b, X) -> np.ndarray:
    """The closed-form Jacobian ``D(x) W`` of ``x -> relu(W x + b)`` at each row of ``X``.

    ``D(x)`` is the diagonal 0/1 matrix of the units with positive
    pre-activation; a unit exactly at 0 counts as inactive (PyTorch's convention
    for the derivative of ReLU at the kink).

    Parameters
    ----------
    W : array of shape (m, d)
    b : array of shape (m,)
    X : array of shape (n, d) or (d,)

    Returns
    -------
    ndarray of shape (n, m, d), or (m, d) for one input. Chapter 17.
    """
    W = as_float_array(W, "W", ndim=2)
    b = as_float_array(b, "b", ndim=1)
    X = as_float_array(X, "X", ndim=(1, 2))
    if b.shape[0] != W.shape[0]:
        raise ValueError(f"b must have shape ({W.shape[0]},), got {b.shape}")
    if X.shape[-1] != W.shape[1]:
        raise ValueError(f"X must have {W.shape[1]} columns (inputs of W), got {X.shape[-1]}")
    active = (X @ W.T + b) > 0
    return active[..., :, None] * W


def relu_network_jacobians(weights, biases, X) -> list[np.ndarray]:
    """Closed-form stage Jacobians of a ReLU network, ``D_k W_k ... D_1 W_1`` at each input.

    The network computes ``h_k = relu(W_k h_{k-1} + b_k)`` for every layer but the
    last, which is linear (the logits). Its stage Jacobians are products of the
    layers' :func:`relu_layer_jacobian` factors; this is the reference against
    which :func:`stage_jacobians` (torch autodiff) is checked.

    Parameters
    ----------
    weights : sequence of arrays of shape (m_k, m_{k-1})
    biases : sequence of arrays of shape (m_k,)
    X : array of shape (n, d)

    Returns
    -------
    list of ndarray of shape (n, m_k, d), one per layer. Chapter 17.
    """
    if len(weights) != len(biases) or len(weights) == 0:
        raise ValueError("weights and biases must be non-empty sequences of the same length")
    X = as_float_array(X, "X", ndim=2)
    h, J, out = X, None, []
    for k, (W, b) in enumerate(zip(weights, biases, strict=True)):
        W = as_float_array(W, f"weights[{k}]", ndim=2)
        b = as_float_array(b, f"biases[{k}]", ndim=1)
        if W.shape[1] != h.shape[1] or b.shape[0] != W.shape[0]:
            raise ValueError(
                f"weights[{k}] {W.shape} and biases[{k}] {b.shape} do not fit inputs of width "
                f"{h.shape[1]}"
            )
        z = h @ W.T + b
        last = k == len(weights) - 1
        factor = np.broadcast_to(W, (X.shape[0], *W.shape)) if last else (z > 0)[..., None] * W
        J = factor if J is None else factor @ J
        h = z if last else np.maximum(z, 0.0)
        out.append(np.array(J))
    return out


def _check_sequential(model):
    import torch

    if not isinstance(model, torch.nn.Sequential) or len(model) == 0:
        raise TypeError(
            f"model must be a non-empty torch.nn.Sequential, got {type(model).__name__}"
        )


def stage_ends(model) -> list[int]:
    """Where the stages of a ``Sequential`` end: after each activation and after the last module.

    A *stage* is everything up to and including one nonlinearity (a module
    without parameters that follows a layer with parameters), so
    ``Linear, ReLU, Linear, ReLU, Linear`` has the stages ending at modules 1, 3
    and 4: two hidden representations and the logits. Chapter 17.
    """
    _check_sequential(model)
    ends = []
    for k, module in enumerate(model):
        has_params = any(True for _ in module.parameters(recurse=True))
        previous = model[k - 1] if k > 0 else None
        after_layer = previous is not None and any(True for _ in previous.parameters())
        if not has_params and after_layer:
            ends.append(k)
    if not ends or ends[-1] != len(model) - 1:
        ends.append(len(model) - 1)
    return ends


def _stages(model, x):
    outputs, h = [], x
    ends = set(stage_ends(model))
    for k, module in enumerate(model):
        h = module(h)
        if k in ends:
            outputs.append(h)
    return tuple(outputs)


def stage_outputs(model, X) -> list[np.ndarray]:
    """The representation of ``X`` after every stage of ``model`` (see :func:`stage_ends`).

    Parameters
    ----------
    model : torch.nn.Sequential
    X : array of shape (n, d)

    Returns
    -------
    list of ndarray of shape (n, m_k), float64, computed without gradients in
    eval mode (the model's mode is restored). Chapter 17.
    """
    import torch

    _check_sequential(model)
    X = as_float_array(X, "X", ndim=2)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            dtype = next(model.parameters()).dtype
            outputs = _stages(model, torch.as_tensor(X, dtype=dtype))
    finally:
        model.train(was_training)
    return [out.double().numpy() for out in outputs]


def stage_jacobians(model, X, mode: str = "auto") -> list[np.ndarray]:
    """The Jacobian of every stage's output with respect to the input, at every row of ``X``.

    Computed in float64 on a copy of the parameters, vectorized over the inputs
    with ``torch.func.vmap`` of ``torch.func.jacrev`` (reverse mode: one pass per
    output coordinate) or ``jacfwd`` (forward mode: one pass per input
    coordinate); no Python loop over inputs. Both give the same matrices to
    round-off.

    Parameters
    ----------
    model : torch.nn.Sequential
        Its stages are given by :func:`stage_ends`; the model is not changed.
    X : array of shape (n, d)
    mode : {"auto", "reverse", "forward"}
        ``"auto"`` picks forward mode when the input has fewer coordinates than
        all stages' outputs together, which is then the cheaper choice.

    Returns
    -------
    list of ndarray of shape (n, m_k, d)
        ``J[k][i]`` is the Jacobian of stage k at input ``X[i]``. Chapter 17.
    """
    import copy

    import torch
    from torch.func import jacfwd, jacrev, vmap

    _check_sequential(model)
    X = as_float_array(X, "X", ndim=2)
    if mode not in ("auto", "reverse", "forward"):
        raise ValueError(f"mode must be 'auto', 'reverse' or 'forward', got {mode!r}")
    twin = copy.deepcopy(model).double().eval()
    for p in twin.parameters():
        p.requires_grad_(False)
    x_t = torch.as_tensor(X, dtype=torch.float64)
    if mode == "auto":
        with torch.no_grad():
            widths = sum(out.shape[-1] for out in _stages(twin, x_t[:1]))
        mode = "forward" if X.shape[1] < widths else "reverse"
    jacobian = jacfwd if mode == "forward" else jacrev
    work = X.shape[0] * sum(p.numel() for p in twin.parameters())
    with limited_threads(work):
        jacobians = vmap(jacobian(lambda x: _stages(twin, x)))(x_t)
    return [J.numpy() for J in jacobians]


# -- learned PCA --------------------------------------------------------------------------------


def planted_subspace_data(
    n: int, d: int, r: int, gap: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian data whose covariance has a known top-r principal subspace.

    The covariance is ``U U^T + (1 - gap) (I - U U^T)``: variance 1 along the r
    orthonormal columns of a random ``U`` and ``1 - gap`` in the d - r directions
    orthogonal to them, so ``gap`` is the spectral gap between the r-th and
    (r+1)-th eigenvalues.

    Parameters
    ----------
    n : int
        Number of examples, >= 2.
    d : int
        Dimension, >= 2.
    r : int
        Dimension of the planted subspace, 1 <= r < d.
    gap : float
        Spectral gap in [0, 1).
    seed : int

    Returns
    -------
    X : ndarray of shape (n, d)
    U : ndarray of shape (d, r), orthonormal columns
        Chapter 17.
    """
    n, d = check_int(n, "n", low=2), check_int(d, "d", low=2)
    r = check_int(r, "r", low=1, high=d - 1)
    gap = check_real(gap, "gap", low=0.0, high=1.0, high_open=True)
    rng = np.random.default_rng(check_seed(seed))
    basis, _ = np.linalg.qr(rng.standard_normal((d, d)))
    scales = np.concatenate([np.ones(r), np.full(d - r, np.sqrt(1.0 - gap))])
    X = (rng.standard_normal((n, d)) * scales) @ basis.T
    return X, basis[:, :r]


@dataclass
class AutoencoderRun:
    """Full-batch gradient descent on linear autoencoders (see :func:`train_linear_autoencoder`).

    Attributes
    ----------
    steps : ndarray of shape (T,)
        The steps at which the weights were recorded (0 is the initialization).
    encoders : ndarray of shape (T, ..., S, r, d)
        The encoder ``E`` (the first layer, r filters in R^d) of each of the S
        seeds at each recorded step; the middle axes are those of the data.
    decoders : ndarray of shape (T, ..., S, d, r)
    losses : ndarray of shape (T, ..., S)
        The reconstruction loss (1 / 2n) ||X - X E^T D^T||_F^2 at each recorded step.
    """

    steps: np.ndarray
    encoders: np.ndarray
    decoders: np.ndarray
    losses: np.ndarray


def autoencoder_loss(E, D, C) -> np.ndarray:
    """Reconstruction loss 0.5 tr((I - DE) C (I - DE)^T) of a linear autoencoder.

    ``C = X^T X / n`` is the second-moment matrix of the data, so this equals
    (1 / 2n) ||X - X E^T D^T||_F^2. Broadcasts over leading axes. Chapter 17.
    """
    E, D, C = (as_float_array(a, name) for a, name in ((E, "E"), (D, "D"), (C, "C")))
    R = np.eye(C.shape[-1]) - D @ E
    return 0.5 * np.einsum("...ij,...jk,...ik->...", R, C, R)


def train_linear_autoencoder(
    X,
    r: int,
    *,
    lr: float,
    steps: int,
    n_seeds: int = 5,
    seed: int = 0,
    init_scale: float = 0.1,
    record_every: int = 1,
) -> AutoencoderRun:
    """Train linear autoencoders ``x -> D E x`` by full-batch gradient descent, several seeds at once.

    The loss is (1 / 2n) ||X - X E^T D^T||_F^2 with encoder ``E`` (r, d) and decoder
    ``D`` (d, r); its gradients are ``-D^T (I - DE) C`` and ``-(I - DE) C E^T`` with
    ``C = X^T X / n``, so a step costs a few d x d products whatever n is. The
    data are used as given (centre them first to compare with PCA).

    Parameters
    ----------
    X : array of shape (n, d), or (..., n, d) for several data sets at once
    r : int
        Width of the code, 1 <= r <= d.
    lr : float
        Learning rate, > 0.
    steps : int
        Gradient steps, >= 0.
    n_seeds : int
        Independent initializations trained side by side.
    seed : int
        Seeds the initializations: entries of ``E`` and ``D`` are normal with
        standard deviation ``init_scale / sqrt(d)``, drawn per data set and seed.
    init_scale : float
        > 0; small values start near the saddle at zero (the rich, PCA-finding regime).
    record_every : int
        Record the weights every this many steps (and always at the last step).

    Returns
    -------
    AutoencoderRun
        Taught in chapter 17.
    """
    X = as_float_array(X, "X")
    if X.ndim < 2:
        raise ValueError(f"X must have shape (n, d) or (..., n, d), got {X.shape}")
    n, d = X.shape[-2:]
    r = check_int(r, "r", low=1, high=d)
    lr = check_real(lr, "lr", low=0.0, low_open=True)
    steps = check_int(steps, "steps", low=0)
    n_seeds = check_int(n_seeds, "n_seeds", low=1)
    init_scale = check_real(init_scale, "init_scale", low=0.0, low_open=True)
    record_every = check_int(record_every, "record_every", low=1)
    rng = np.random.default_rng(check_seed(seed))
    C = (np.swapaxes(X, -1, -2) @ X / n)[..., None, :, :]  # (..., 1, d, d)
    shape = X.shape[:-2] + (n_seeds,)
    E = rng.normal(0.0, init_scale / np.sqrt(d), size=shape + (r, d))
    D = rng.normal(0.0, init_scale / np.sqrt(d), size=shape + (d, r))
    recorded, encoders, decoders, losses = [], [], [], []
    with limited_threads(E.size * d), np.errstate(over="ignore", invalid="ignore"):
        _descend(E, D, C, lr, steps, record_every, (recorded, encoders, decoders, losses))
    return AutoencoderRun(
        np.array(recorded), np.array(encoders), np.array(decoders), np.array(losses)
    )


def _descend(E, D, C, lr, steps, record_every, records) -> None:
    """The gradient-descent loop of :func:`train_linear_autoencoder`; appends to ``records``."""
    recorded, encoders, decoders, losses = records
    eye = np.eye(C.shape[-1])
    for t in range(steps + 1):
        if t % record_every == 0 or t == steps:
            recorded.append(t)
            encoders.append(E.copy())
            decoders.append(D.copy())
            R = eye - D @ E
            losses.append(0.5 * np.einsum("...ij,...jk,...ik->...", R, C, R))
        if t == steps:
            break
        RC = (eye - D @ E) @ C
        grad_E = -np.swapaxes(D, -1, -2) @ RC
        grad_D = -RC @ np.swapaxes(E, -1, -2)
        E, D = E - lr * grad_E, D - lr * grad_D
        if not (np.all(np.isfinite(E)) and np.all(np.isfinite(D))):
            raise FloatingPointError(
                f"gradient descent diverged at step {t + 1}; try a smaller learning rate "
                f"(lr = {lr:g})"
            )
