"""Experiments on backpropagation: gradient checks, hand-derived deltas, timing (chapter 5).

- :func:`numerical_gradient`, :func:`relative_error` and :func:`gradient_check`
  compare the gradients of :mod:`dl_course.autograd` with central finite
  differences.
- :func:`sigmoid_network_gradients` computes the gradient of a two-layer sigmoid
  network with squared-error loss by the hand-derived "delta" formulas, in plain
  NumPy, so that the engine can be checked against the textbook derivation.
- :func:`time_forward_backward` measures what a forward and a backward pass cost;
  :func:`matmul_multiplications` and :class:`CallCounter` count it, which,
  unlike a timing, does not depend on how busy the machine is.
- :func:`graph_nodes` lists the computational graph behind a tensor, in
  topological order, for printing and drawing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from dl_course._checks import as_float_array, check_bool, check_int, check_real
from dl_course.activations import sigmoid
from dl_course.autograd import Tensor, topological_order

# -- gradient checks ---------------------------------------------------------------------------


def numerical_gradient(f: Callable[[np.ndarray], float], x, eps: float = 1e-6) -> np.ndarray:
    """Central finite-difference gradient of a scalar function ``f`` at ``x``.

    Entry ``i`` is ``(f(x + eps e_i) - f(x - eps e_i)) / (2 eps)``, so the
    estimate costs ``2 x.size`` evaluations of ``f``. Its error is about
    ``eps**2`` (truncation) plus ``1e-16 |f| / eps`` (round-off).

    Parameters
    ----------
    f : callable
        Maps a float64 array shaped like ``x`` to a real number (a Python
        float, a 0-d array or a one-element :class:`~dl_course.autograd.Tensor`).
    x : array_like
        The point, any shape.
    eps : float
        The step, > 0.

    Returns
    -------
    ndarray
        The estimated gradient, shaped like ``x``. Taught in chapter 5.

    Examples
    --------
    >>> numerical_gradient(lambda v: float(v @ v), [1.0, -2.0]).round(6)
    array([ 2., -4.])
    """
    if not callable(f):
        raise TypeError(f"f must be callable, got {type(f).__name__}")
    x = as_float_array(x, "x")
    eps = check_real(eps, "eps", low=0.0, low_open=True)
    grad = np.empty_like(x)
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = eps
        grad[index] = (_scalar(f(x + step)) - _scalar(f(x - step))) / (2.0 * eps)
    return grad


def _scalar(value) -> float:
    """``value`` (a number, 0-d array or one-element Tensor) as a float."""
    data = value.data if isinstance(value, Tensor) else value
    array = np.asarray(data, dtype=np.float64)
    if array.size != 1:
        raise ValueError(f"f must return a scalar, got an array of shape {array.shape}")
    return float(array.reshape(()))


def relative_error(a, b) -> float:
    """Norm-wise relative difference ``|a - b| / max(|a|, |b|)`` (0 when both are zero).

    The Euclidean norm is taken over all entries; a list of arrays (one per
    parameter) is flattened and concatenated first. Unlike an entry-wise
    ratio, the result does not blow up on entries that are nearly zero.
    Taught in chapter 5.

    Examples
    --------
    >>> relative_error([1.0, 2.0], [1.0, 2.0 + 1e-9]) < 1e-9
    True
    """
    a, b = _flat(a, "a"), _flat(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same number of entries, got {a.size} and {b.size}")
    scale = max(np.linalg.norm(a), np.linalg.norm(b))
    return 0.0 if scale == 0.0 else float(np.linalg.norm(a - b) / scale)


def _flat(value, name: str) -> np.ndarray:
    if isinstance(value, list | tuple) and value and all(np.ndim(v) > 0 for v in value):
        return np.concatenate([as_float_array(v, name).ravel() for v in value])
    return as_float_array(value, name).ravel()


@dataclass
class GradientCheck:
    """Result of :func:`gradient_check`: one array per parameter, and their agreement."""

    analytic: list[np.ndarray]
    numeric: list[np.ndarray]
    relative_error: float


def gradient_check(
    loss_fn: Callable[[], Tensor], params: Sequence[Tensor], eps: float = 1e-6
) -> GradientCheck:
    """Compare the engine's gradient of ``loss_fn()`` with central finite differences.

    ``loss_fn()`` must rebuild the graph from the tensors in ``params`` and
    return a scalar :class:`~dl_course.autograd.Tensor`. The analytic gradient
    comes from one ``backward()``; the numeric one perturbs every entry of every
    parameter by ``+-eps`` in turn (``2 P`` forward passes for ``P`` entries).
    The parameters' values are restored and their ``.grad`` is left holding the
    analytic gradient. Taught in chapter 5.
    """
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
    params = list(params) if isinstance(params, list | tuple) else None
    if not params or not all(isinstance(p, Tensor) for p in params):
        raise TypeError("params must be a non-empty list of Tensors")
    eps = check_real(eps, "eps", low=0.0, low_open=True)
    for p in params:
        p.zero_grad()
    loss = loss_fn()
    if not isinstance(loss, Tensor) or loss.data.size != 1:
        raise ValueError("loss_fn must return a scalar Tensor")
    loss.backward()
    analytic = [p.grad.copy() for p in params]
    numeric = []
    for p in params:
        original = p.data

        def loss_at(value, p=p):
            p.data = value
            return loss_fn()

        try:
            numeric.append(numerical_gradient(loss_at, original, eps))
        finally:
            p.data = original
    return GradientCheck(analytic, numeric, relative_error(analytic, numeric))


# -- the sigmoid network of the course notes ---------------------------------------------------


@dataclass
class SigmoidNetGradients:
    """Forward values, deltas and gradients of :func:`sigmoid_network_gradients`.

    Rows are examples. ``delta_out`` and ``delta_hidden`` are the derivatives of
    the loss with respect to the pre-activations of the output and hidden units.
    """

    loss: float
    hidden: np.ndarray
    output: np.ndarray
    delta_out: np.ndarray
    delta_hidden: np.ndarray
    grad_W1: np.ndarray
    grad_b1: np.ndarray
    grad_W2: np.ndarray
    grad_b2: np.ndarray


def sigmoid_network_gradients(X, T, W1, b1, W2, b2, *, half: bool = False) -> SigmoidNetGradients:
    """Gradient of a sigmoid network with squared-error loss, by the delta formulas.

    The network is ``z = sigmoid(W1 x + b1)``, ``y = sigmoid(W2 z + b2)``, and
    the loss is ``L = sum over examples and outputs of (y - t)**2``, or half of
    that with ``half=True``. Backpropagation by hand gives

    - output deltas ``delta_k = 2 y_k (1 - y_k) (y_k - t_k)`` (no 2 with ``half``),
    - hidden deltas ``delta_j = z_j (1 - z_j) sum_k W2[k, j] delta_k``,
    - gradients ``dL/dW2[k, j] = delta_k z_j`` and ``dL/dW1[j, i] = delta_j x_i``
      (summed over examples), ``dL/db = delta``.

    Parameters
    ----------
    X : array_like, shape (n, d) or (d,)
        Inputs, one example per row.
    T : array_like, shape (n, c) or (c,)
        Targets, one row per example.
    W1, b1 : array_like, shapes (h, d) and (h,)
        Hidden layer (row ``j`` holds the weights into hidden unit ``j``).
    W2, b2 : array_like, shapes (c, h) and (c,)
        Output layer.
    half : bool
        Use the loss ``0.5 * sum (y - t)**2``, whose output delta has no factor 2.

    Returns
    -------
    SigmoidNetGradients
        Taught in chapter 5.
    """
    X = np.atleast_2d(as_float_array(X, "X", ndim=(1, 2)))
    T = np.atleast_2d(as_float_array(T, "T", ndim=(1, 2)))
    W1 = as_float_array(W1, "W1", ndim=2)
    b1 = as_float_array(b1, "b1", ndim=1)
    W2 = as_float_array(W2, "W2", ndim=2)
    b2 = as_float_array(b2, "b2", ndim=1)
    half = check_bool(half, "half")
    (n, d), (h, c) = X.shape, (W1.shape[0], W2.shape[0])
    expected = {"W1": (h, d), "b1": (h,), "W2": (c, h), "b2": (c,), "T": (n, c)}
    for name, array in zip(expected, (W1, b1, W2, b2, T), strict=True):
        if array.shape != expected[name]:
            raise ValueError(
                f"{name} must have shape {expected[name]} to fit X of shape {X.shape} and "
                f"W1, W2 of shapes {W1.shape}, {W2.shape}; got {array.shape}"
            )
    Z = sigmoid(X @ W1.T + b1)  # hidden outputs z_j
    Y = sigmoid(Z @ W2.T + b2)  # network outputs y_k
    factor = 1.0 if half else 2.0
    loss = 0.5 * factor * float(np.sum((Y - T) ** 2))
    delta_out = factor * Y * (1.0 - Y) * (Y - T)
    delta_hidden = Z * (1.0 - Z) * (delta_out @ W2)
    return SigmoidNetGradients(
        loss=loss,
        hidden=Z,
        output=Y,
        delta_out=delta_out,
        delta_hidden=delta_hidden,
        grad_W1=delta_hidden.T @ X,
        grad_b1=delta_hidden.sum(axis=0),
        grad_W2=delta_out.T @ Z,
        grad_b2=delta_out.sum(axis=0),
    )


# -- cost of the two passes --------------------------------------------------------------------


@dataclass
class PassTimes:
    """Wall-clock seconds of each timed forward and backward pass (see :func:`time_forward_backward`)."""

    forward: np.ndarray
    backward: np.ndarray

    @property
    def ratio(self) -> float:
        """Median over the rounds of backward time / forward time.

        Each backward pass is compared with the forward pass timed just before
        it, so slow phases of a busy machine cancel out.
        """
        return float(np.median(self.backward / self.forward))


def time_forward_backward(
    loss_fn: Callable[[], Tensor], repeats: int = 30, warmup: int = 2, threads: int | None = 1
) -> PassTimes:
    """Time ``loss = loss_fn()`` (forward) and ``loss.backward()`` separately, ``repeats`` times.

    The two passes alternate, so a slow-down of the machine affects both alike;
    compare medians. ``warmup`` untimed rounds run first. Gradients accumulate in
    the leaves of the graph over the rounds, which does not change the cost.

    ``threads`` caps the threads of NumPy's BLAS during the timing (``None``
    leaves them alone). The default, one thread, measures the work each pass
    does rather than how well it parallelizes, and avoids the large, erratic
    slow-downs that multi-threaded BLAS suffers on a busy machine.
    Taught in chapter 5.
    """
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
    repeats = check_int(repeats, "repeats", low=1)
    warmup = check_int(warmup, "warmup", low=0)
    if threads is not None:
        threads = check_int(threads, "threads", low=1)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads, user_api="blas"):
        return _time_passes(loss_fn, repeats, warmup)


def _time_passes(loss_fn: Callable[[], Tensor], repeats: int, warmup: int) -> PassTimes:
    forward, backward = np.empty(repeats), np.empty(repeats)
    for k in range(-warmup, repeats):
        start = time.perf_counter()
        loss = loss_fn()
        middle = time.perf_counter()
        if not isinstance(loss, Tensor) or loss.data.size != 1:
            raise ValueError("loss_fn must return a scalar Tensor")
        loss.backward()
        end = time.perf_counter()
        if k >= 0:
            forward[k], backward[k] = middle - start, end - middle
    return PassTimes(forward, backward)


# -- counting instead of timing ----------------------------------------------------------------


class CallCounter:
    """A function that counts its calls, e.g. the forward passes a gradient estimate makes.

    >>> f = CallCounter(lambda v: float(v @ v))
    >>> _ = numerical_gradient(f, [1.0, 2.0, 3.0])
    >>> f.calls  # two per entry
    6

    Taught in chapter 5.
    """

    def __init__(self, fn: Callable):
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        self.fn = fn
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.fn(*args, **kwargs)


@dataclass(frozen=True)
class MatmulCount:
    """Scalar multiplications in the matrix products of one forward and one backward pass."""

    forward: int
    backward: int


def _as_matrices(a: tuple[int, ...], b: tuple[int, ...]):
    """The shapes of ``a @ b`` with vectors read as a row (left) or column (right), as np.matmul."""
    a = (1, *a) if len(a) == 1 else a
    b = (*b, 1) if len(b) == 1 else b
    return a, b


def _product_cost(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    """Multiplications of a (batched) matrix product of shapes (..., m, k) and (..., k, n)."""
    batch = np.broadcast_shapes(a[:-2], b[:-2])
    return int(np.prod(batch, dtype=np.int64)) * a[-2] * a[-1] * b[-1]


def matmul_multiplications(root: Tensor) -> MatmulCount:
    """Count the multiplications of every matrix product (``@``) in the graph behind ``root``.

    A product ``C = A @ B`` of an (m, k) and a (k, n) matrix takes ``m k n``
    multiplications. Its backward step computes the two vector-Jacobian
    products ``grad_C @ B.T`` and ``A.T @ grad_C``, each counted from its own
    operand shapes. Elementwise operations are not counted: in a dense network
    the matrix products dominate. Counts do not depend on the machine, so unlike
    timings they can be asserted.

    Parameters
    ----------
    root : Tensor
        The output of the graph, e.g. a loss.

    Returns
    -------
    MatmulCount
        ``forward`` and ``backward`` totals. Taught in chapter 5.

    Examples
    --------
    >>> from dl_course.autograd import Tensor
    >>> matmul_multiplications((Tensor(np.ones((2, 3))) @ Tensor(np.ones((3, 4)))).sum())
    MatmulCount(forward=24, backward=48)
    """
    forward = backward = 0
    for node in topological_order(root):
        if node.op != "@":
            continue
        a, b = _as_matrices(*(p.shape for p in node.parents))
        out = (*np.broadcast_shapes(a[:-2], b[:-2]), a[-2], b[-1])
        forward += _product_cost(a, b)
        backward += _product_cost(out, b[:-2] + (b[-1], b[-2]))  # grad_C @ B.T
        backward += _product_cost(a[:-2] + (a[-1], a[-2]), out)  # A.T @ grad_C
    return MatmulCount(forward, backward)


# -- the graph ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class GraphNode:
    """One tensor of a computational graph: its position, operation and parents."""

    index: int
    tensor: Tensor
    op: str
    parents: tuple[int, ...]


def graph_nodes(root: Tensor) -> list[GraphNode]:
    """The tensors ``root`` depends on, in topological order (parents before children).

    The order is the one :meth:`Tensor.backward` reverses: leaves (inputs,
    parameters and constants) have ``op == ""``, and ``root`` comes last.
    Taught in chapter 5.
    """
    order = topological_order(root)
    position = {id(t): k for k, t in enumerate(order)}
    return [
        GraphNode(k, t, t.op, tuple(position[id(p)] for p in t.parents))
        for k, t in enumerate(order)
    ]
