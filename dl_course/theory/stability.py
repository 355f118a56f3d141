"""Step size and stability: the quadratic model and the edge of stability (chapter 15).

Two halves, one question: what does the step size ``lr`` of gradient descent do
to the curvature it meets?

- On a quadratic with Hessian ``H`` the error obeys ``e_{t+1} = (I - lr H) e_t``
  (:func:`gd_on_quadratic`). Along an eigenvector with eigenvalue ``lam`` it is
  multiplied by ``1 - lr lam`` per step, so ``lr lam_max`` decides between a
  monotone approach, an oscillating one and divergence
  (:func:`classify_step_size`). Chapter 6 derives the rates
  (:mod:`dl_course.quadratic`); chapter 15 looks at the boundaries.
- On a neural network the curvature is not fixed. :func:`train_tracking_sharpness`
  runs full-batch gradient descent on several small tanh MLPs at once (one per
  learning rate and seed) and records the *sharpness*, the top eigenvalue of the
  Hessian of the training loss, every few steps, by a few warm-started Lanczos
  steps on exact Hessian-vector products. Chapter 15 uses it to watch the sharpness
  rise to ``2 / lr`` and hover there (the edge of stability).

The quadratic half is NumPy only; the network half imports torch inside its
functions, so importing this module stays cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dl_course._checks import as_float_array, check_int, check_real, check_seed
from dl_course._threads import limited_threads

#: Products ``lr * lam_max`` within this relative distance of 1 or 2 count as the threshold
#: itself, so that ``classify_step_size(2 / lam, lam)`` is "oscillating" despite round-off.
THRESHOLD_RTOL = 1e-12


def _symmetric(H) -> np.ndarray:
    H = as_float_array(H, "H", ndim=2)
    if H.shape[0] != H.shape[1]:
        raise ValueError(f"H must be square, got shape {H.shape}")
    if not np.allclose(H, H.T, rtol=1e-10, atol=1e-12 * max(1.0, np.abs(H).max())):
        raise ValueError("H must be symmetric (a Hessian)")
    return H


def gd_on_quadratic(H, x0, lr, steps) -> np.ndarray:
    """Iterates of gradient descent on ``f(x) = 1/2 x^T H x`` (chapter 15).

    The gradient is ``H x``, so each step is ``x_{t+1} = (I - lr H) x_t``; the
    minimizer is the origin and ``x_t`` is the error. Along an eigenvector of
    ``H`` with eigenvalue ``lam`` the coordinate is multiplied by ``1 - lr lam``
    at every step.

    Parameters
    ----------
    H : array_like of shape (d, d)
        The symmetric Hessian (any eigenvalues: negative ones make a saddle).
    x0 : array_like of shape (d,)
        The starting point.
    lr : float
        The step size, > 0.
    steps : int
        Number of steps, >= 0.

    Returns
    -------
    ndarray of shape (steps + 1, d)
        ``x_0, x_1, ..., x_steps``. A divergent run may overflow to ``inf``;
        no warning is raised for that.

    Examples
    --------
    >>> gd_on_quadratic([[2.0]], [1.0], lr=1.0, steps=3).ravel().tolist()
    [1.0, -1.0, 1.0, -1.0]
    """
    H = _symmetric(H)
    x0 = as_float_array(x0, "x0", ndim=1)
    if x0.shape != (H.shape[0],):
        raise ValueError(f"x0 must have length {H.shape[0]} (the size of H), got {x0.shape[0]}")
    lr = check_real(lr, "lr", low=0.0, low_open=True)
    steps = check_int(steps, "steps", low=0)
    step_map = np.eye(H.shape[0]) - lr * H
    path = np.empty((steps + 1, H.shape[0]))
    path[0] = x0
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(steps):
            path[t + 1] = step_map @ path[t]
    return path


def classify_step_size(lr, lam_max) -> str:
    """What gradient descent with step ``lr`` does along the steepest direction (chapter 15).

    With ``r = lr * lam_max`` (the top mode's factor is ``1 - r``):

    - ``r <= 1``: ``"monotone"``, the coordinate shrinks without changing sign
      (at ``r = 1`` it is removed in one step);
    - ``1 < r <= 2``: ``"oscillating"``, it flips sign every step; it shrinks for
      ``r < 2`` and keeps its size for ever at exactly ``r = 2``;
    - ``r > 2``: ``"divergent"``, it flips sign and grows.

    Products within :data:`THRESHOLD_RTOL` (relative) of 1 or 2 count as the
    threshold, so ``classify_step_size(2 / lam, lam)`` is ``"oscillating"``.

    Parameters
    ----------
    lr : float
        The step size, > 0.
    lam_max : float
        The largest Hessian eigenvalue, > 0.
    """
    lr = check_real(lr, "lr", low=0.0, low_open=True)
    lam_max = check_real(lam_max, "lam_max", low=0.0, low_open=True)
    r = lr * lam_max
    if r <= 1.0 * (1 + THRESHOLD_RTOL):
        return "monotone"
    if r <= 2.0 * (1 + THRESHOLD_RTOL):
        return "oscillating"
    return "divergent"


# --- full-batch gradient descent on small MLPs, with the sharpness tracked -------------------


@dataclass(frozen=True)
class SharpnessRun:
    """What :func:`train_tracking_sharpness` recorded, one row per member (chapter 15).

    Attributes
    ----------
    lr, seed : ndarray of shape (M,)
        Each member's learning rate and initialization seed.
    loss : ndarray of shape (M, steps + 1)
        The full-batch training loss before each step (and after the last).
    sharpness_steps : ndarray of shape (K,)
        The steps at which the sharpness was measured.
    sharpness : ndarray of shape (M, K)
        The Lanczos estimate (top Ritz value) of the top Hessian eigenvalue at those steps.
    residual : ndarray of shape (M, K)
        ``||H v - s v|| / |s|`` of the estimate ``s`` and its Ritz vector ``v``: how
        far the warm-started iteration was from an exact eigenpair (some eigenvalue
        lies within ``residual * |s|`` of ``s``).
    params : list of ndarray
        The final weights, stacked along a first axis of length M
        (``W_1, b_1, W_2, b_2, ...``, with ``W_l`` of shape (M, fan_in, fan_out)).
    hvp_count : int
        Number of batched Hessian-vector products used (each covers all members).
    """

    lr: np.ndarray
    seed: np.ndarray
    loss: np.ndarray
    sharpness_steps: np.ndarray
    sharpness: np.ndarray
    residual: np.ndarray
    params: list
    hvp_count: int

    def __len__(self) -> int:
        return len(self.lr)


def _sizes(sizes) -> list[int]:
    if isinstance(sizes, str) or not isinstance(sizes, Sequence) or len(sizes) < 2:
        raise TypeError(f"sizes must be a sequence of at least two layer widths, got {sizes!r}")
    return [check_int(s, f"sizes[{k}]", low=1) for k, s in enumerate(sizes)]


def init_mlp_stack(sizes, seeds, *, out_scale: float = 1.0, dtype=None) -> list:
    """Weights of ``len(seeds)`` tanh MLPs, stacked along a first axis (chapter 15).

    Layer ``l`` has ``W_l`` with entries ``N(0, 1 / fan_in)`` (LeCun's scale for
    tanh) and a zero bias; the output layer's weights are multiplied by
    ``out_scale``. Member ``k`` is drawn from ``torch.Generator`` seeded with
    ``seeds[k]``, so a seed gives the same network whatever else is stacked.

    Returns
    -------
    list of torch.Tensor
        ``[W_1, b_1, ..., W_L, b_L]``, with ``W_l`` of shape (M, fan_in, fan_out)
        and ``b_l`` of shape (M, fan_out).
    """
    import torch

    sizes = _sizes(sizes)
    seeds = [check_seed(s, "seeds") for s in seeds]
    if not seeds:
        raise ValueError("seeds must hold at least one seed")
    out_scale = check_real(out_scale, "out_scale", low=0.0, low_open=True)
    dtype = torch.float32 if dtype is None else dtype
    members = []
    for seed in seeds:
        gen = torch.Generator().manual_seed(seed)
        layers = []
        for k, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            scale = (out_scale if k == len(sizes) - 2 else 1.0) / fan_in**0.5
            w = torch.randn(fan_in, fan_out, generator=gen, dtype=torch.float64) * scale
            layers += [w.to(dtype), torch.zeros(fan_out, dtype=dtype)]
        members.append(layers)
    return [torch.stack(column) for column in zip(*members, strict=True)]


def mlp_loss_and_grad(params, X, Y):
    """The MSE loss ``1/(2N) sum_i ||f(x_i) - y_i||^2`` of every member and its gradient.

    The gradient is backpropagation written out for a tanh MLP (chapter 5), in
    batched matrix products over the members. It is built from torch operations,
    so it can itself be differentiated: that is how :func:`hessian_vector_products`
    gets exact Hessian-vector products.

    Parameters
    ----------
    params : list of torch.Tensor
        Stacked weights as from :func:`init_mlp_stack` (M members).
    X : torch.Tensor of shape (N, d)
        Inputs, shared by all members.
    Y : torch.Tensor of shape (N, C)
        Targets.

    Returns
    -------
    (grads, loss)
        A list shaped like ``params`` and the losses, of shape (M,).
    """
    h = X.expand(params[0].shape[0], -1, -1)
    hidden = [h]
    depth = len(params) // 2
    for layer in range(depth - 1):
        h = params[2 * layer + 1][:, None, :].baddbmm(h, params[2 * layer]).tanh()
        hidden.append(h)
    residual = params[-1][:, None, :].baddbmm(h, params[-2]) - Y
    n = X.shape[0]
    loss = 0.5 * (residual * residual).sum((1, 2)) / n
    delta = residual / n
    grads = [None] * len(params)
    for layer in range(depth - 1, -1, -1):
        grads[2 * layer] = hidden[layer].transpose(1, 2) @ delta
        grads[2 * layer + 1] = delta.sum(1)
        if layer:
            delta = (delta @ params[2 * layer].transpose(1, 2)) * (1 - hidden[layer] ** 2)
    return grads, loss


def _member_dot(u, v):
    """Per-member inner products of two stacked parameter lists: shape (M,)."""
    return sum((a * b).flatten(1).sum(1) for a, b in zip(u, v, strict=True))


def _scale(v, c):
    return [a * c.reshape((-1,) + (1,) * (a.dim() - 1)) for a in v]


def hessian_vector_products(params, vectors, X, Y) -> list:
    """``H_k v_k`` for every member ``k``: the Hessian of its loss times its vector.

    Exact (double backpropagation through :func:`mlp_loss_and_grad`), never
    forming a Hessian. The members do not interact, so one backward pass of
    ``sum_k grad_k . v_k`` gives all products at once.
    """
    import torch

    with torch.enable_grad():
        leaves = [p.detach().requires_grad_() for p in params]
        grads, _ = mlp_loss_and_grad(leaves, X, Y)
        total = _member_dot(grads, vectors).sum()
        return list(torch.autograd.grad(total, leaves))


def _flat(vectors):
    """A stacked parameter list as one (M, n) float64 matrix."""
    import torch

    return torch.cat([a.flatten(1).double() for a in vectors], dim=1)


def _unflat(matrix, like):
    pieces, start = [], 0
    for a in like:
        size = a[0].numel()
        pieces.append(matrix[:, start : start + size].reshape(a.shape).to(a.dtype))
        start += size
    return pieces


def _lanczos_step(params, start, X, Y, iters: int):
    """``iters`` Lanczos steps for every member at once, from the unit rows of ``start``.

    Returns the top Ritz value of each member, its residual ``beta |y_last|``
    relative to the value, and the Ritz vectors (the next warm start). Full
    re-orthogonalization in float64; the Krylov space is tiny, so this is cheap
    next to the Hessian-vector products.
    """
    import torch

    basis = [start]
    alphas, betas = [], []
    q = start
    for j in range(iters):
        w = _flat(hessian_vector_products(params, _unflat(q, params), X, Y))
        alphas.append((w * q).sum(1))
        block = torch.stack(basis, dim=1)  # (M, j + 1, n)
        for _ in range(2):  # re-orthogonalize twice against the whole basis
            w = w - (block.transpose(1, 2) @ (block @ w[:, :, None]))[:, :, 0]
        beta = w.norm(dim=1)
        if j < iters - 1:
            betas.append(beta)
            q = w / beta.clamp_min(1e-300)[:, None]
            basis.append(q)
    tri = torch.diag_embed(torch.stack(alphas, 1))
    if betas:
        off = torch.diag_embed(torch.stack(betas, 1), offset=1)
        tri = tri + off + off.transpose(1, 2)
    values, vectors = torch.linalg.eigh(tri)
    top, y = values[:, -1], vectors[:, :, -1]
    ritz = (torch.stack(basis, dim=1) * y[:, :, None]).sum(1)
    residual = beta * y[:, -1].abs() / top.abs()
    return top, residual, ritz / ritz.norm(dim=1, keepdim=True)


def _as_tensor(value, name: str, ndim: int, dtype):
    import torch

    array = as_float_array(value, name, ndim=ndim)
    return torch.as_tensor(array, dtype=dtype)


def train_tracking_sharpness(
    X,
    Y,
    sizes,
    lrs,
    seeds,
    steps: int,
    *,
    every: int = 10,
    lanczos_iters: int = 4,
    warmup_iters: int = 20,
    out_scale: float = 1.0,
    dtype=None,
    vector_seed: int = 0,
) -> SharpnessRun:
    """Full-batch gradient descent on stacked tanh MLPs, recording loss and sharpness (ch. 15).

    Member ``k`` starts from :func:`init_mlp_stack` with ``seeds[k]`` and takes
    ``steps`` steps ``theta <- theta - lrs[k] grad L(theta)`` on the MSE loss of
    :func:`mlp_loss_and_grad` over all of ``(X, Y)``. Before step ``t`` for every
    multiple ``t`` of ``every`` (and after the last step), the sharpness, the
    largest eigenvalue of the Hessian of the loss, is estimated by
    ``lanczos_iters`` Lanczos steps started from the previous estimate's Ritz
    vector plus the current gradient, both normalized (``warmup_iters`` steps
    the first time, from a random vector). The top eigenvector usually changes
    slowly, so a few steps keep up with it; when another eigenvector overtakes
    it, the old Ritz vector alone would be stuck (it is close to an eigenvector
    of the new Hessian too), but the gradient is not: gradient descent
    oscillates along the directions of largest curvature, so they dominate it.
    The estimate is a Ritz value, so it never exceeds the true top eigenvalue;
    the record's ``residual`` says how close it came.

    Parameters
    ----------
    X, Y : array_like of shapes (N, d) and (N, C)
        Inputs and targets (one-hot labels for classification with MSE).
    sizes : sequence of int
        Layer widths ``[d, h_1, ..., C]``.
    lrs, seeds : sequences of the same length M
        One learning rate (> 0) and one initialization seed per member.
    steps : int
        Number of gradient steps, >= 1.
    every : int
        Measure the sharpness every ``every`` steps.
    lanczos_iters, warmup_iters : int
        Lanczos steps (Hessian-vector products) per measurement, and for the first one.
    out_scale : float
        Scale of the output layer at initialization (see :func:`init_mlp_stack`).
    dtype : torch dtype, optional
        ``torch.float32`` by default.
    vector_seed : int
        Seed of the random start vector of the first Lanczos run.
    """
    import torch

    dtype = torch.float32 if dtype is None else dtype
    X_t = _as_tensor(X, "X", 2, dtype)
    Y_t = _as_tensor(Y, "Y", 2, dtype)
    sizes = _sizes(sizes)
    if X_t.shape[0] != Y_t.shape[0]:
        raise ValueError(
            f"X and Y must have the same number of rows, got {len(X_t)} and {len(Y_t)}"
        )
    if (X_t.shape[1], Y_t.shape[1]) != (sizes[0], sizes[-1]):
        raise ValueError(
            f"sizes must start with X's {X_t.shape[1]} columns and end with Y's "
            f"{Y_t.shape[1]}, got {sizes}"
        )
    lr_array = as_float_array(lrs, "lrs", ndim=1)
    if np.any(lr_array <= 0):
        raise ValueError("lrs must all be > 0")
    seeds = [check_seed(s, "seeds") for s in seeds]
    if len(seeds) != len(lr_array):
        raise ValueError(
            f"lrs and seeds must have the same length, got {len(lr_array)} and {len(seeds)}"
        )
    steps = check_int(steps, "steps", low=1)
    every = check_int(every, "every", low=1)
    lanczos_iters = check_int(lanczos_iters, "lanczos_iters", low=1)
    warmup_iters = check_int(warmup_iters, "warmup_iters", low=1)
    vector_seed = check_seed(vector_seed, "vector_seed")

    params = init_mlp_stack(sizes, seeds, out_scale=out_scale, dtype=dtype)
    # many small matrix products, one per member: one thread is fastest, so count the work
    # of one member (multiply-adds of its forward pass) to let limited_threads decide
    work = X_t.shape[0] * sum(p[0].numel() for p in params)
    with limited_threads(work), torch.no_grad():
        return _train(
            params,
            X_t,
            Y_t,
            lr_array,
            seeds,
            steps,
            every,
            lanczos_iters,
            warmup_iters,
            vector_seed,
        )


def _train(params, X, Y, lr_array, seeds, steps, every, iters, warmup_iters, vector_seed):
    import torch

    gen = torch.Generator().manual_seed(vector_seed)
    n = sum(p[0].numel() for p in params)
    v = torch.randn(len(seeds), n, generator=gen, dtype=torch.float64)
    v = v / v.norm(dim=1, keepdim=True)
    lr_t = torch.as_tensor(lr_array, dtype=params[0].dtype)
    losses, record_steps, sharp, resid = [], [], [], []
    hvps = 0
    for t in range(steps + 1):
        grads, loss = mlp_loss_and_grad(params, X, Y)
        if t % every == 0 or t == steps:
            if t:  # warm start: the last Ritz vector plus the gradient (see the docstring)
                g = _flat(grads)
                v = v + g / g.norm(dim=1, keepdim=True)
                v = v / v.norm(dim=1, keepdim=True)
            k = min(warmup_iters if t == 0 else iters, n)  # a Krylov space has at most n dims
            estimate, residual, v = _lanczos_step(params, v, X, Y, k)
            hvps += k
            record_steps.append(t)
            sharp.append(estimate.numpy())
            resid.append(residual.numpy())
        losses.append(loss.double().numpy())
        if t < steps:
            params = [p - g for p, g in zip(params, _scale(grads, lr_t), strict=True)]
    return SharpnessRun(
        lr=lr_array.copy(),
        seed=np.array(seeds),
        loss=np.array(losses).T,
        sharpness_steps=np.array(record_steps),
        sharpness=np.array(sharp).T,
        residual=np.array(resid).T,
        params=[p.double().numpy() for p in params],
        hvp_count=hvps,
    )


def member_loss(run: SharpnessRun, k: int, X, Y):
    """``(loss_fn, params)`` of member ``k``'s final network, for independent checks.

    ``params`` are fresh float64 leaf tensors (``requires_grad=True``) and
    ``loss_fn()`` recomputes the member's MSE loss from them with ordinary torch
    operations, the form that :func:`dl_course.theory.landscape.hessian_top_eigenvalue`
    expects.
    """
    import torch

    k = check_int(k, "k", low=0, high=len(run) - 1)
    params = [torch.tensor(p[k], dtype=torch.float64, requires_grad=True) for p in run.params]
    X_t = _as_tensor(X, "X", 2, torch.float64)
    Y_t = _as_tensor(Y, "Y", 2, torch.float64)

    def loss_fn():
        h = X_t
        for layer in range(len(params) // 2 - 1):
            h = torch.tanh(h @ params[2 * layer] + params[2 * layer + 1])
        out = h @ params[-2] + params[-1]
        return 0.5 * ((out - Y_t) ** 2).sum() / X_t.shape[0]

    return loss_fn, params
