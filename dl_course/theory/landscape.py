"""Loss landscapes: curvature from Hessian-vector products, slices, paths and sharpness (chapter 14).

Chapter 14 looks at the loss of a network as a surface over its parameters and
measures that surface without ever writing down its Hessian:

- :func:`hvp` multiplies the Hessian of a torch scalar by a vector with two
  backward passes (Pearlmutter's trick); :class:`HessianOperator` builds the
  gradient graph once and reuses it for every product;
- :func:`hessian_top_eigenvalue` runs the Lanczos iteration on those products
  and returns the eigenvalue of largest magnitude (the *sharpness* when the
  Hessian is positive semi-definite at a minimum); :func:`lanczos` returns the
  whole set of Ritz values;
- :func:`hutchinson_trace` estimates the trace with random sign vectors
  (Hutchinson 1989);
- the saddle ``L = 1/2 (w2 w1 x - y)^2`` of the chapter (:func:`saddle_loss`,
  :func:`saddle_escape_times`: gradient descent with Gaussian noise, many seeds
  at once) and random symmetric matrices as a model of critical points
  (:func:`goe_positive_fraction`);
- filter-normalized random directions (Li et al. 2018; :func:`filter_normalized_direction`)
  and the loss on a 1-D or 2-D slice through a point (:func:`loss_slice`);
- paths between two solutions: the straight line and the quadratic Bezier
  curve of Garipov et al. (2018) (:func:`bezier_points`);
- one sharpness-aware minimization step (Foret et al. 2021; :func:`sam_step`).

The Hessian functions take a closure ``loss_fn`` (no arguments, returns a torch
scalar) and the list of tensors ``params`` it depends on, as
``torch.optim`` optimizers do; they leave the parameters and their ``.grad``
as they were. torch is imported inside the functions that need it, so
``import dl_course.theory.landscape`` stays cheap. Taught in chapter 14.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from dl_course._checks import check_bool, check_int, check_real, check_seed
from dl_course._threads import one_torch_thread

#: Largest size of a random symmetric matrix :func:`goe_positive_fraction` accepts.
MAX_GOE_SIZE = 64


# -- checks -----------------------------------------------------------------------------------


def _check_params(params) -> list:
    """``params`` as a non-empty list of floating-point torch tensors that require grad."""
    import torch

    if isinstance(params, torch.Tensor):
        raise TypeError("params must be a list of tensors, got a single tensor: wrap it in [ ]")
    if isinstance(params, str | bytes) or not isinstance(params, Sequence | list | tuple):
        try:
            params = list(params)  # e.g. model.parameters(), a generator
        except TypeError:
            raise TypeError(
                f"params must be a list of torch tensors, got {type(params).__name__}"
            ) from None
    params = list(params)
    if not params:
        raise ValueError("params must hold at least one tensor")
    for k, p in enumerate(params):
        if not isinstance(p, torch.Tensor):
            raise TypeError(f"params[{k}] must be a torch tensor, got {type(p).__name__}")
        if not p.is_floating_point():
            raise TypeError(f"params[{k}] must be a floating-point tensor, got dtype {p.dtype}")
        if not p.requires_grad:
            raise ValueError(
                f"params[{k}] must require grad (call .requires_grad_()): the Hessian is taken "
                "with respect to it"
            )
    return params


def _check_loss_fn(loss_fn) -> Callable:
    if not callable(loss_fn):
        raise TypeError(
            f"loss_fn must be a function of no arguments returning a torch scalar, "
            f"got {type(loss_fn).__name__}"
        )
    return loss_fn


def _scalar_loss(loss_fn):
    import torch

    loss = loss_fn()
    if not isinstance(loss, torch.Tensor):
        raise TypeError(f"loss_fn() must return a torch tensor, got {type(loss).__name__}")
    if loss.numel() != 1:
        raise ValueError(
            f"loss_fn() must return a scalar (one element), got shape {tuple(loss.shape)}"
        )
    if not loss.requires_grad:
        raise ValueError("loss_fn() does not depend on params (its result does not require grad)")
    if not torch.isfinite(loss).all():
        raise ValueError(f"loss_fn() returned a non-finite loss ({loss.item()})")
    return loss.reshape(())


# -- Hessian-vector products --------------------------------------------------------------------


class HessianOperator:
    """The Hessian of ``loss_fn()`` w.r.t. ``params`` as a linear map on flat vectors.

    The loss and its gradient (with ``create_graph=True``) are computed once, at
    construction; each product ``H v`` is then one backward pass through the
    gradient's graph, ``d(g . v)/dw``, which is kept (``retain_graph=True``) for
    the next product. Vectors are flat float64 torch tensors of length
    :attr:`size` (the products are computed in the parameters' dtype).
    Parameters and their ``.grad`` are not touched. Chapter 14.

    Parameters
    ----------
    loss_fn : callable
        No arguments; returns a torch scalar that depends on ``params``.
    params : list of torch.Tensor
        The tensors (requiring grad) the Hessian is taken with respect to.
    """

    def __init__(self, loss_fn: Callable, params):
        import torch

        self.params = _check_params(params)
        loss = _scalar_loss(_check_loss_fn(loss_fn))
        self.loss = float(loss.detach())
        grads = torch.autograd.grad(loss, self.params, create_graph=True, allow_unused=True)
        self.sizes = [p.numel() for p in self.params]
        self.size = sum(self.sizes)
        self.dtype = self.params[0].dtype
        self.gradient = torch.cat(
            [
                torch.zeros(n) if g is None else g.detach().reshape(-1)
                for g, n in zip(grads, self.sizes, strict=True)
            ]
        ).double()
        # the gradient pieces that depend on the parameters (the others have a zero Hessian row)
        self._active = [k for k, g in enumerate(grads) if g is not None and g.requires_grad]
        self._grads = [grads[k] for k in self._active]
        self.products = 0

    def unflatten(self, vector) -> list:
        """Split a flat vector into tensors shaped like ``params``."""
        pieces = vector.split(self.sizes)
        return [piece.view_as(p) for piece, p in zip(pieces, self.params, strict=True)]

    def __matmul__(self, vector):
        """``H @ vector`` for a flat vector (returns float64, shape (size,))."""
        import torch

        self.products += 1
        out = torch.zeros(self.size, dtype=torch.float64)
        if not self._active:  # the loss is linear in the parameters
            return out
        pieces = self.unflatten(vector.to(self.dtype))
        # d/dw (g(w) . v) = H v: one backward pass through the retained gradient graph
        products = torch.autograd.grad(
            self._grads,
            self.params,
            grad_outputs=[pieces[k] for k in self._active],
            retain_graph=True,
            allow_unused=True,
        )
        for piece, h in zip(out.split(self.sizes), products, strict=True):
            if h is not None:
                piece.copy_(h.reshape(-1))
        return out


def hvp(loss_fn: Callable, params, vectors) -> list:
    """The Hessian-vector product ``H v`` of ``loss_fn()`` w.r.t. ``params`` (chapter 14).

    Two backward passes (Pearlmutter 1994): ``g = dL/dw`` with its graph, then
    ``d(g . v)/dw = H v``. The Hessian is never formed.

    Parameters
    ----------
    loss_fn : callable
        No arguments; returns a torch scalar that depends on ``params``.
    params : list of torch.Tensor
        The tensors the Hessian is taken with respect to (requiring grad).
    vectors : list of torch.Tensor
        ``v``, one tensor shaped like each parameter.

    Returns
    -------
    list of torch.Tensor
        ``H v``, one tensor per parameter, in the parameters' dtype.
    """
    import torch

    params = _check_params(params)
    if isinstance(vectors, torch.Tensor) or not isinstance(vectors, Sequence):
        raise TypeError("vectors must be a list of tensors, one per parameter")
    if len(vectors) != len(params):
        raise ValueError(
            f"vectors must hold one tensor per parameter ({len(params)}), got {len(vectors)}"
        )
    for k, (v, p) in enumerate(zip(vectors, params, strict=True)):
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"vectors[{k}] must be a torch tensor, got {type(v).__name__}")
        if v.shape != p.shape:
            raise ValueError(
                f"vectors[{k}] must have the shape of params[{k}] {tuple(p.shape)}, "
                f"got {tuple(v.shape)}"
            )
    with one_torch_thread():
        op = HessianOperator(loss_fn, params)
        flat = torch.cat([v.reshape(-1).double() for v in vectors])
        product = op @ flat
    return [h.to(p.dtype) for h, p in zip(op.unflatten(product), params, strict=True)]


# -- Lanczos ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LanczosResult:
    """What :func:`lanczos` found.

    Attributes
    ----------
    ritz_values : ndarray
        Eigenvalues of the tridiagonal matrix, ascending: approximations of the
        Hessian's eigenvalues, best at the two ends of the spectrum.
    top : float
        The Ritz value of largest magnitude.
    residual : float
        ``||H y - top y||`` for the Ritz vector ``y`` of ``top``: by the
        Bauer-Fike theorem some eigenvalue of the Hessian lies within this
        distance of ``top``.
    iterations : int
        Hessian-vector products used.
    converged : bool
        True if ``residual <= tol * |top|`` (or the Krylov space was exhausted).
    """

    ritz_values: np.ndarray
    top: float
    residual: float
    iterations: int
    converged: bool


def _lanczos(op: HessianOperator, iters: int, tol: float, seed: int) -> LanczosResult:
    """Lanczos with full re-orthogonalization in float64 (at most ``iters`` products)."""
    import torch

    n = op.size
    iters = min(iters, n)
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(n, generator=gen, dtype=torch.float64)
    q /= q.norm()
    basis = torch.empty(min(iters, 16), n, dtype=torch.float64)  # grown by doubling
    alphas, betas = [], []
    top, residual, converged = 0.0, math.inf, False
    ritz = np.zeros(0)
    for j in range(iters):
        if j == len(basis):
            basis = torch.cat([basis, torch.empty(min(j, iters - j), n, dtype=torch.float64)])
        basis[j] = q
        w = op @ q
        alpha = float(w @ q)
        w -= alpha * q
        if j > 0:
            w -= betas[-1] * basis[j - 1]
        block = basis[: j + 1]
        w -= block.T @ (block @ w)  # full re-orthogonalization (twice is enough)
        w -= block.T @ (block @ w)
        beta = float(w.norm())
        alphas.append(alpha)
        tri = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
        ritz, vectors = np.linalg.eigh(tri)
        k = int(np.argmax(np.abs(ritz)))
        top = float(ritz[k])
        residual = beta * abs(float(vectors[-1, k]))
        scale = max(abs(top), np.finfo(float).tiny)
        if residual <= tol * scale or beta <= 1e-12 * scale:
            converged = True
            break
        betas.append(beta)
        q = w / beta
    return LanczosResult(ritz, top, residual, len(alphas), converged)


def lanczos(
    loss_fn: Callable, params, iters: int = 100, tol: float = 1e-6, seed: int = 0
) -> LanczosResult:
    """Lanczos iteration on the Hessian of ``loss_fn()`` w.r.t. ``params`` (chapter 14).

    Starts from a random unit vector (drawn from ``seed``), builds the Krylov
    basis with Hessian-vector products (one gradient graph reused; full
    re-orthogonalization in float64) and stops when the Ritz value of largest
    magnitude has a residual ``<= tol`` times its size, or after ``iters``
    products. See :class:`LanczosResult`.
    """
    iters = check_int(iters, "iters", low=1)
    tol = check_real(tol, "tol", low=0.0, low_open=True)
    seed = check_seed(seed)
    with one_torch_thread():
        return _lanczos(HessianOperator(loss_fn, params), iters, tol, seed)


def hessian_top_eigenvalue(
    loss_fn: Callable, params, iters: int = 100, tol: float = 1e-6, seed: int = 0
) -> float:
    """The Hessian eigenvalue of largest magnitude of ``loss_fn()`` w.r.t. ``params`` (chapter 14).

    Lanczos iteration (:func:`lanczos`) on Hessian-vector products: the loss
    and its gradient graph are built once, each product is one more backward
    pass through that graph, and the Hessian itself is never formed. The
    iteration stops when the residual of the top Ritz pair is at most ``tol``
    times the eigenvalue (then the eigenvalue is within that relative distance
    of a true eigenvalue, and in practice far closer: the error of a Ritz value
    shrinks like the square of the residual) or after ``iters`` products.
    The parameters and their ``.grad`` are left as they were.

    Parameters
    ----------
    loss_fn : callable
        No arguments; returns a torch scalar that depends on ``params``.
    params : list of torch.Tensor
        The tensors (requiring grad) the Hessian is taken with respect to.
    iters : int
        Most Hessian-vector products to use (>= 1).
    tol : float
        Relative residual at which to stop (> 0).
    seed : int
        Seed of the random starting vector.

    Returns
    -------
    float
        The eigenvalue of largest absolute value (with its sign).

    Examples
    --------
    >>> import torch
    >>> w = torch.tensor([1.0, 2.0], requires_grad=True)
    >>> round(hessian_top_eigenvalue(lambda: (3 * w[0] ** 2 - w[1] ** 2) / 2, [w]), 6)
    3.0
    """
    return lanczos(loss_fn, params, iters=iters, tol=tol, seed=seed).top


@dataclass(frozen=True)
class TraceEstimate:
    """A Hutchinson estimate of the trace: ``trace`` with its standard error ``stderr``."""

    trace: float
    stderr: float
    samples: int


def hutchinson_trace(loss_fn: Callable, params, samples: int = 100, seed: int = 0) -> TraceEstimate:
    """Hutchinson's estimate of the Hessian's trace (chapter 14).

    ``tr H = E[v^T H v]`` for random vectors ``v`` with independent entries of
    mean 0 and variance 1; with Rademacher (random sign) entries the variance
    of one sample is ``2 (||H||_F^2 - sum_i H_ii^2)``, the smallest of any such
    distribution. One gradient graph, ``samples`` Hessian-vector products.

    Parameters
    ----------
    loss_fn : callable
        No arguments; returns a torch scalar that depends on ``params``.
    params : list of torch.Tensor
        The tensors (requiring grad) the Hessian is taken with respect to.
    samples : int
        Number of random sign vectors (>= 2, for the standard error).
    seed : int
        Seed of the random vectors.

    Returns
    -------
    TraceEstimate
        The mean of the samples and its standard error.
    """
    import torch

    samples = check_int(samples, "samples", low=2)
    seed = check_seed(seed)
    values = np.empty(samples)
    with one_torch_thread():
        op = HessianOperator(loss_fn, params)
        gen = torch.Generator().manual_seed(seed)
        for k in range(samples):
            v = torch.randint(0, 2, (op.size,), generator=gen, dtype=torch.float64) * 2 - 1
            values[k] = float(v @ (op @ v))
    return TraceEstimate(
        float(values.mean()), float(values.std(ddof=1) / math.sqrt(samples)), samples
    )


# -- the saddle of chapter 14 -------------------------------------------------------------------


def saddle_loss(w1, w2, x: float = 1.0, y: float = 1.0):
    """``L = 1/2 (w2 w1 x - y)^2``: a two-layer linear "network" with one weight per layer.

    The origin is a critical point (the gradient ``-(y - w2 w1 x) x (w2, w1)``
    vanishes there) whose Hessian ``[[0, -x y], [-x y, 0]]`` has eigenvalues
    ``+- x y``: a saddle. Works on floats, NumPy arrays (elementwise, for many
    points at once) and torch tensors. Chapter 14.
    """
    return 0.5 * (w2 * w1 * x - y) ** 2


def saddle_escape_times(
    noise,
    lr: float = 0.1,
    steps: int = 400,
    seeds: int = 200,
    x: float = 1.0,
    y: float = 1.0,
    seed: int = 0,
) -> np.ndarray:
    """Steps until noisy gradient descent started at the saddle of :func:`saddle_loss` escapes.

    Runs ``w <- w - lr * grad L(w) + sigma * xi`` with ``xi`` standard normal in
    both coordinates, from ``w = (0, 0)``, for every noise level ``sigma`` in
    ``noise`` and ``seeds`` independent noise sequences at once (one NumPy
    array of shape (levels, seeds, 2)). Escaping means the loss has fallen
    below half its value ``y^2 / 2`` at the saddle. Chapter 14.

    Parameters
    ----------
    noise : sequence of float
        Noise levels ``sigma`` (>= 0).
    lr : float
        Step size (> 0).
    steps : int
        Largest number of steps simulated.
    seeds : int
        Independent runs per noise level.
    x, y : float
        The example of the loss ``1/2 (w2 w1 x - y)^2`` (``x y != 0``).
    seed : int
        Seed of the noise.

    Returns
    -------
    ndarray of shape (len(noise), seeds)
        The first step at which the loss is below ``y^2 / 4``; ``inf`` for runs
        that did not escape within ``steps`` (every run at ``sigma = 0``).
    """
    sigmas = np.asarray(noise, dtype=float)
    if sigmas.ndim != 1 or sigmas.size == 0 or not np.all(np.isfinite(sigmas)):
        raise ValueError(f"noise must be a non-empty 1-D sequence of finite levels, got {noise!r}")
    if np.any(sigmas < 0):
        raise ValueError(f"noise levels must be >= 0, got {sigmas.min():g}")
    lr = check_real(lr, "lr", low=0.0, low_open=True)
    steps = check_int(steps, "steps", low=1)
    seeds = check_int(seeds, "seeds", low=1)
    x, y = check_real(x, "x"), check_real(y, "y")
    if x * y == 0:
        raise ValueError("x and y must be nonzero (else the origin is not a strict saddle)")
    rng = np.random.default_rng(check_seed(seed))
    w = np.zeros((sigmas.size, seeds, 2))
    times = np.full((sigmas.size, seeds), np.inf)
    for t in range(1, steps + 1):
        residual = w[..., 1] * w[..., 0] * x - y
        grad = residual[..., None] * x * w[..., ::-1]  # (dL/dw1, dL/dw2) = r x (w2, w1)
        w = w - lr * grad + sigmas[:, None, None] * rng.standard_normal(w.shape)
        escaped = (saddle_loss(w[..., 0], w[..., 1], x, y) < y * y / 4) & np.isinf(times)
        times[escaped] = t
    return times


# -- random symmetric matrices as a model of critical points ------------------------------------


def _positive_definite(a: np.ndarray) -> np.ndarray:
    """Which symmetric matrices of the batch ``a`` (m, n, n) are positive definite.

    Gaussian elimination without pivoting, vectorized over the batch: a
    symmetric matrix is positive definite exactly when every pivot is positive
    (Sylvester's criterion: the pivots are ratios of leading principal minors).
    Much faster than one LAPACK call per small matrix.
    """
    a = a.copy()
    ok = np.ones(len(a), dtype=bool)
    for k in range(a.shape[1]):
        pivot = a[:, k, k]
        ok &= pivot > 0
        safe = np.where(pivot > 0, pivot, 1.0)
        below = a[:, k + 1 :, k]
        with np.errstate(over="ignore", invalid="ignore"):  # a tiny pivot: already decided
            a[:, k + 1 :, k + 1 :] -= below[:, :, None] * below[:, None, :] / safe[:, None, None]
    return ok


def goe_positive_fraction(n: int, samples: int = 100_000, seed: int = 0) -> float:
    """Monte-Carlo estimate of P(all eigenvalues > 0) for an ``n x n`` GOE matrix (chapter 14).

    The Gaussian orthogonal ensemble: symmetric, independent normal entries,
    variance 1 on the diagonal and 1/2 off it (the probability does not depend
    on the overall scale). As a caricature of the Hessian at a random critical
    point, this is the chance that the point is a minimum. Dean and Majumdar
    (2006) showed ``log P ~ -(ln 3 / 4) n^2`` for large ``n``; for ``n = 1`` it
    is 1/2 and for ``n = 2`` it is ``(2 - sqrt 2) / 4``.

    Parameters
    ----------
    n : int
        Size of the matrices, 1 to :data:`MAX_GOE_SIZE`.
    samples : int
        Number of random matrices (drawn in batches).
    seed : int
        Seed of the draws.

    Returns
    -------
    float
        The fraction of sampled matrices that are positive definite.
    """
    n = check_int(n, "n", low=1, high=MAX_GOE_SIZE)
    samples = check_int(samples, "samples", low=1)
    rng = np.random.default_rng(check_seed(seed))
    batch = max(1, min(samples, 2_000_000 // (n * n)))
    hits, done = 0, 0
    while done < samples:
        m = min(batch, samples - done)
        a = rng.standard_normal((m, n, n), dtype=np.float32)  # float32: twice as fast
        sym = (a + a.transpose(0, 2, 1)) / 2  # diagonal variance 1, off-diagonal 1/2
        hits += int(np.sum(_positive_definite(sym)))
        done += m
    return hits / samples


# -- stacks of small MLPs as plain tensors ------------------------------------------------------
#
# The landscape experiments move many networks at once: K seeds, T points on a path, a grid of
# points on a plane. A network here is a list [W1, b1, W2, b2, ...] of tensors whose first axis
# counts the networks (W of shape (K, out, in), b of shape (K, out)); ReLU between the layers.


def _check_stack(params) -> list:
    import torch

    if isinstance(params, torch.Tensor) or not isinstance(params, Sequence):
        raise TypeError("params must be a list [W1, b1, W2, b2, ...] of torch tensors")
    if len(params) < 2 or len(params) % 2:
        raise ValueError(
            f"params must hold a weight and a bias per layer, got {len(params)} tensors"
        )
    k = None
    for i, p in enumerate(params):
        if not isinstance(p, torch.Tensor):
            raise TypeError(f"params[{i}] must be a torch tensor, got {type(p).__name__}")
        want = 3 if i % 2 == 0 else 2
        if p.ndim != want:
            raise ValueError(
                f"params[{i}] must have {want} axes (networks first), got shape {tuple(p.shape)}"
            )
        k = p.shape[0] if k is None else k
        if p.shape[0] != k:
            raise ValueError(f"params[{i}] holds {p.shape[0]} networks, params[0] holds {k}")
    return list(params)


def init_mlp(sizes: Sequence[int], members: int = 1, seed: int = 0) -> list:
    """He-initialized weights (zero biases) of ``members`` MLPs with layer widths ``sizes``.

    Member ``k`` is drawn from the NumPy generator seeded with ``(seed, k)``, so
    the first members of a larger stack are the same networks. Returns float32
    tensors ``[W1, b1, W2, b2, ...]`` with the members on the first axis.
    Chapter 14.
    """
    import torch

    sizes = [check_int(s, f"sizes[{i}]", low=1) for i, s in enumerate(sizes)]
    if len(sizes) < 2:
        raise ValueError(f"sizes must list at least an input and an output width, got {sizes}")
    members = check_int(members, "members", low=1)
    seed = check_seed(seed)
    rngs = [np.random.default_rng([seed, k]) for k in range(members)]
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        w = np.stack([r.normal(0, math.sqrt(2 / fan_in), (fan_out, fan_in)) for r in rngs])
        params += [torch.tensor(w, dtype=torch.float32), torch.zeros(members, fan_out)]
    return params


def mlp_logits(params, X):
    """Logits (K, N, C) of the K networks in ``params`` on inputs ``X`` (N, d) or (K, N, d)."""
    import torch

    params = _check_stack(params)
    h = X if X.ndim == 3 else X.expand(params[0].shape[0], *X.shape)
    for i in range(0, len(params), 2):
        h = torch.baddbmm(params[i + 1][:, None, :], h, params[i].transpose(1, 2))
        if i + 2 < len(params):
            h = torch.relu(h)
    return h


def mlp_loss(params, X, y):
    """Mean cross-entropy of each of the K networks: a tensor of shape (K,)."""
    import torch

    logits = mlp_logits(params, X)
    k, n, c = logits.shape
    labels = y.expand(k, n) if y.ndim == 1 else y
    losses = torch.nn.functional.cross_entropy(
        logits.reshape(k * n, c), labels.reshape(-1), reduction="none"
    )
    return losses.view(k, n).mean(dim=1)


def mlp_accuracy(params, X, y) -> np.ndarray:
    """Accuracy of each of the K networks (NumPy array of shape (K,))."""
    import torch

    with torch.no_grad():
        return (mlp_logits(params, X).argmax(dim=2) == y).double().mean(dim=1).numpy()


def _member_norms(tensors) -> object:
    """Euclidean norm of each member (first axis) over all tensors: shape (K,)."""
    return sum((t.reshape(t.shape[0], -1) ** 2).sum(dim=1) for t in tensors).sqrt()


def _per_member(values, like):
    return values.view(-1, *([1] * (like.ndim - 1)))


def _rhos(rho, k: int) -> np.ndarray:
    """``rho`` as K radii >= 0."""
    if np.ndim(rho) == 0:
        return np.full(k, check_real(rho, "rho", low=0.0))
    values = [check_real(r, f"rho[{i}]", low=0.0) for i, r in enumerate(rho)]
    if len(values) != k:
        raise ValueError(f"rho must be one radius or one per member ({k}), got {len(values)}")
    return np.array(values)


def sam_step(params, loss_fn: Callable, lr: float, rho) -> list:
    """One sharpness-aware minimization step for each member of a stack (Foret et al. 2021).

    With ``g = grad L(w)``: ascend to ``w + rho g / ||g||`` (per member), take
    the gradient ``g'`` there, and step from the original point,
    ``w <- w - lr g'``. With ``rho = 0`` this is a plain gradient step.
    Chapter 14.

    Parameters
    ----------
    params : list of torch.Tensor
        The stacked parameters (members on the first axis); not modified.
    loss_fn : callable
        ``loss_fn(params)`` returns the losses of the members, shape (K,).
    lr : float
        Step size (> 0).
    rho : float or sequence of float
        Radius of the ascent (>= 0), one for all members or one per member
        (members with ``rho = 0`` take plain gradient steps).

    Returns
    -------
    list of torch.Tensor
        The parameters after the step.
    """
    import torch

    lr = check_real(lr, "lr", low=0.0, low_open=True)
    rhos = _rhos(rho, params[0].shape[0])
    w = [p.detach().requires_grad_() for p in params]
    grads = torch.autograd.grad(loss_fn(w).sum(), w)
    if np.any(rhos > 0):
        scale = torch.as_tensor(rhos, dtype=params[0].dtype) / (_member_norms(grads) + 1e-12)
        w = [
            (p + _per_member(scale, p) * g).detach().requires_grad_()
            for p, g in zip(w, grads, strict=True)
        ]
        grads = torch.autograd.grad(loss_fn(w).sum(), w)
    return [(p - lr * g).detach() for p, g in zip(params, grads, strict=True)]


def train_mlp(
    params,
    X,
    y,
    *,
    lr: float,
    epochs: int,
    batch_size: int,
    rho=0.0,
    seed: int = 0,
    batch_seeds: Sequence[int] | None = None,
) -> list:
    """Mini-batch SGD (``rho = 0``) or SAM (``rho > 0``) on every member of a stack (chapter 14).

    ``rho`` is one radius or one per member (see :func:`sam_step`), so SGD and
    SAM runs can share one stack. Member ``k`` draws its mini-batch order from
    the generator seeded with ``(seed, batch_seeds[k])`` (default ``batch_seeds[k]
    = k``): two members with the same batch seed see the same batches.
    Returns the trained parameters; ``params`` is not modified.
    """
    import torch

    params = _check_stack(params)
    epochs = check_int(epochs, "epochs", low=0)
    batch_size = check_int(batch_size, "batch_size", low=1)
    seed = check_seed(seed)
    k, n = params[0].shape[0], X.shape[0]
    _rhos(rho, k)
    if batch_seeds is None:
        batch_seeds = range(k)
    batch_seeds = [check_seed(b, f"batch_seeds[{i}]") for i, b in enumerate(batch_seeds)]
    if len(batch_seeds) != k:
        raise ValueError(f"batch_seeds must hold one seed per member ({k}), got {len(batch_seeds)}")
    rngs = [np.random.default_rng([seed, j]) for j in batch_seeds]
    with one_torch_thread():
        for _ in range(epochs):
            orders = np.stack([r.permutation(n) for r in rngs])
            for start in range(0, n, batch_size):
                index = torch.as_tensor(orders[:, start : start + batch_size])
                xb, yb = X[index], y[index]
                params = sam_step(params, lambda w, xb=xb, yb=yb: mlp_loss(w, xb, yb), lr, rho)
    return params


def member(params, k: int) -> list:
    """Member ``k`` of a stack as a stack of one (leaf tensors that require grad)."""
    k = check_int(k, "k", low=0, high=params[0].shape[0] - 1)
    return [p[k : k + 1].detach().clone().requires_grad_() for p in params]


def top_eigenvalues(params, X, y, *, tol: float = 1e-4, seed: int = 0) -> np.ndarray:
    """:func:`hessian_top_eigenvalue` of the training loss of each member of a stack."""
    params = _check_stack(params)
    out = []
    for k in range(params[0].shape[0]):
        w = member(params, k)
        out.append(hessian_top_eigenvalue(lambda w=w: mlp_loss(w, X, y)[0], w, tol=tol, seed=seed))
    return np.array(out)


def rescale_hidden(params, a: float) -> list:
    """Multiply the first layer (weights and bias) by ``a > 0`` and the second's weights by ``1/a``.

    For a ReLU network the function is unchanged (``relu(a z) = a relu(z)``);
    the Hessian, and so the sharpness, is not (Dinh et al. 2017). Chapter 14.
    """
    params = _check_stack(params)
    a = check_real(a, "a", low=0.0, low_open=True)
    out = [p.detach().clone() for p in params]
    out[0], out[1], out[2] = out[0] * a, out[1] * a, out[2] / a
    return out


# -- directions, slices and paths -------------------------------------------------------------


def filter_normalized_direction(params, seed: int = 0, shared: bool = False) -> list:
    """A random direction scaled filter by filter to the weights (Li et al. 2018; chapter 14).

    Gaussian entries, then each row of each weight matrix (one output neuron's
    incoming weights: the MLP's "filter") rescaled to the norm of the same row
    of ``params``; bias directions are zero (biases are left out, as Li et al.
    leave out biases and normalization parameters). One direction per member:
    independent Gaussian draws, or with ``shared=True`` one draw for all members
    (each normalized to its own member's weights: the same direction seen from
    several points, such as the points of a path).
    """
    import torch

    params = _check_stack(params)
    gen = torch.Generator().manual_seed(check_seed(seed))
    shared = check_bool(shared, "shared")
    out = []
    for i, p in enumerate(params):
        if i % 2:
            out.append(torch.zeros_like(p))
            continue
        if shared:
            d = torch.randn(p.shape[1:], generator=gen, dtype=p.dtype).expand(p.shape).clone()
        else:
            d = torch.randn(p.shape, generator=gen, dtype=p.dtype)
        d *= p.detach().norm(dim=2, keepdim=True) / (d.norm(dim=2, keepdim=True) + 1e-12)
        out.append(d)
    return out


def loss_grid(params, directions: Sequence, coords, X, y) -> np.ndarray:
    """Losses at ``w + sum_j c_j d_j`` for every row ``c`` of ``coords`` and every member.

    ``directions`` is a list of one or more directions (each shaped like
    ``params``); ``coords`` has shape (P, len(directions)). All P x K networks
    are evaluated in one batched pass. Returns an array of shape (P, K).
    """
    import torch

    params = _check_stack(params)
    coords = np.asarray(coords, dtype=float)
    if coords.ndim != 2 or coords.shape[1] != len(directions):
        raise ValueError(f"coords must have shape (points, {len(directions)}), got {coords.shape}")
    c = torch.as_tensor(coords, dtype=params[0].dtype)
    k = params[0].shape[0]
    moved = []
    for i, p in enumerate(params):
        shift = sum(
            c[:, j].view(-1, *([1] * p.ndim)) * d[i][None] for j, d in enumerate(directions)
        )
        moved.append((p.detach()[None] + shift).reshape(-1, *p.shape[1:]))
    with torch.no_grad(), one_torch_thread():
        return mlp_loss(moved, X, y).view(len(coords), k).double().numpy()


def bezier_points(a, m, b, ts) -> list:
    """Points ``(1-t)^2 a + 2 t (1-t) m + t^2 b`` of the quadratic Bezier curve (Garipov et al. 2018).

    ``a``, ``m``, ``b`` are stacks of K networks; the result stacks T x K networks
    (t-major: the first K are the members at ``ts[0]``). With ``m = (a + b)/2``
    the curve is the straight segment from ``a`` to ``b``. Chapter 14.
    """
    import torch

    ts = torch.as_tensor(np.asarray(ts, dtype=float), dtype=a[0].dtype)
    out = []
    for pa, pm, pb in zip(a, m, b, strict=True):
        shape = (-1, *([1] * pa.ndim))
        t = ts.view(shape)
        point = (1 - t) ** 2 * pa[None] + 2 * t * (1 - t) * pm[None] + t**2 * pb[None]
        out.append(point.reshape(-1, *pa.shape[1:]))
    return out


def path_losses(a, m, b, ts, X, y) -> np.ndarray:
    """Losses (T, K) along the Bezier curves of :func:`bezier_points`."""
    import torch

    with torch.no_grad(), one_torch_thread():
        return mlp_loss(bezier_points(a, m, b, ts), X, y).view(len(ts), -1).double().numpy()


def midpoint(a, b) -> list:
    """``(a + b) / 2``: the control point that makes the Bezier curve the straight line."""
    return [(pa + pb).detach() / 2 for pa, pb in zip(a, b, strict=True)]


def train_bezier(
    a,
    b,
    X,
    y,
    *,
    steps: int = 200,
    lr: float = 0.01,
    points: int = 4,
    batch_size: int = 256,
    seed: int = 0,
) -> list:
    """Train the control point of a quadratic Bezier curve between ``a`` and ``b`` (chapter 14).

    Minimizes the mean loss over the curve, ``E_t L(phi(t))`` with ``t`` uniform
    on [0, 1], by Adam on the control point ``m`` alone (started at the
    midpoint of the segment; Garipov et al. 2018). Each step draws ``points``
    values of ``t`` per member (stratified: one in each of ``points`` equal
    bins) and a mini-batch of ``batch_size`` examples, and evaluates all the
    points in one batched pass.
    """
    import torch

    steps = check_int(steps, "steps", low=0)
    lr = check_real(lr, "lr", low=0.0, low_open=True)
    points = check_int(points, "points", low=1)
    batch_size = check_int(batch_size, "batch_size", low=1)
    seed = check_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    m = [p.clone().requires_grad_() for p in midpoint(a, b)]
    opt = torch.optim.Adam(m, lr=lr)
    a = [p.detach() for p in a]
    b = [p.detach() for p in b]
    k = a[0].shape[0]
    with one_torch_thread():
        for _ in range(steps):
            t = (torch.arange(points) + torch.rand(points, generator=gen)) / points
            batch = torch.as_tensor(rng.choice(len(X), min(batch_size, len(X)), replace=False))
            curve = bezier_points(a, m, b, t)  # (points * K) networks
            loss = mlp_loss(curve, X[batch], y[batch]).view(points, k).mean(dim=0).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return [p.detach() for p in m]
