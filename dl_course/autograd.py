"""A reverse-mode automatic-differentiation engine on NumPy arrays (chapter 5).

It reads like micrograd: one value class, :class:`Tensor`. Every operation
creates a new tensor that remembers its parents (:attr:`Tensor.parents`), the
name of the operation (:attr:`Tensor.op`) and a small closure, ``_backward``,
that adds the operation's local vector-Jacobian product to the parents'
``.grad``. :meth:`Tensor.backward` sorts the graph topologically and
runs those closures from the output back to the inputs, which is the chain rule
applied in reverse topological order.

Unlike micrograd, values are arrays with NumPy broadcasting: when an operand was
broadcast in the forward pass, its gradient is summed back to its own shape
(:func:`unbroadcast`).

>>> x = Tensor([1.0, 2.0, 3.0])
>>> loss = (x * x).sum()
>>> loss.backward()
>>> x.grad
array([2., 4., 6.])
"""

from __future__ import annotations

import numbers
from collections.abc import Callable

import numpy as np

from dl_course._checks import as_labels
from dl_course.losses import softmax_cross_entropy_with_grad


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` over the axes that broadcasting added or stretched to reach ``shape``.

    When NumPy broadcast an operand of shape ``shape`` in the forward pass, each
    of its entries was copied and every copy contributed to the output, so its
    gradient is the sum of the copies' gradients. Raises ``ValueError`` if
    ``shape`` does not broadcast to ``grad.shape``. Taught in chapter 5.

    Examples
    --------
    >>> unbroadcast(np.ones((4, 3)), (3,))  # a bias added to 4 rows
    array([4., 4., 4.])
    """
    if not isinstance(shape, tuple):
        raise TypeError(f"shape must be a tuple of ints, got {type(shape).__name__}")
    grad = np.asarray(grad)
    trailing = zip(shape[::-1], grad.shape[::-1], strict=False)  # zip stops at the shorter
    if len(shape) > grad.ndim or any(s not in (1, g) for s, g in trailing):
        raise ValueError(f"shape {shape} does not broadcast to the gradient's shape {grad.shape}")
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and grad.shape[axis] != 1:
            grad = grad.sum(axis=axis, keepdims=True)
    return grad


class Tensor:
    """A NumPy array that records how it was computed, so that gradients can flow back.

    Parameters
    ----------
    data : array_like
        The value; stored as a float64 array in ``.data``.

    Attributes
    ----------
    data : ndarray
        The value.
    grad : ndarray
        d(output)/d(this tensor) after :meth:`backward`, same shape as ``data``;
        zeros before. Gradients accumulate over calls, as in PyTorch: reset them
        with :meth:`zero_grad`.

    Taught in chapter 5.
    """

    __array_priority__ = 100  # so that ndarray <op> Tensor defers to Tensor

    def __init__(self, data, _parents: tuple[Tensor, ...] = (), _op: str = ""):
        if isinstance(data, Tensor):
            raise TypeError("data must be an array or number, not a Tensor (use tensor.data)")
        try:
            self.data = np.array(data, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise TypeError(f"data must be numeric: {error}") from None
        self.grad = np.zeros_like(self.data)
        self._parents = _parents
        self._op = _op
        self._backward: Callable[[], None] = lambda: None

    # -- basic properties ------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def op(self) -> str:
        """The operation that produced this tensor: ``"+"``, ``"@"``, ``"relu"``, ...

        ``""`` for a leaf: an input, a parameter or a constant. Read-only.
        """
        return self._op

    @property
    def parents(self) -> tuple[Tensor, ...]:
        """The tensors this one was computed from, in operand order; ``()`` for a leaf.

        Together with :attr:`op` this is the computational graph that
        :meth:`backward` runs through. Read-only. Taught in chapter 5.
        """
        return self._parents

    def __repr__(self) -> str:
        op = f", op={self._op!r}" if self._op else ""
        return f"Tensor({np.array2string(self.data, precision=4, threshold=8)}{op})"

    def zero_grad(self) -> None:
        """Reset ``.grad`` to zeros."""
        self.grad = np.zeros_like(self.data)

    # -- building the graph ----------------------------------------------------------------

    @staticmethod
    def _lift(other) -> Tensor:
        """Wrap a number or array as a constant tensor."""
        if isinstance(other, Tensor):
            return other
        if isinstance(other, numbers.Number | np.ndarray | list | tuple):
            return Tensor(other)
        raise TypeError(f"unsupported operand of type {type(other).__name__}")

    def __add__(self, other) -> Tensor:
        other = self._lift(other)
        out = Tensor(self.data + other.data, (self, other), "+")

        def _backward():
            self.grad += unbroadcast(out.grad, self.shape)
            other.grad += unbroadcast(out.grad, other.shape)

        out._backward = _backward
        return out

    def __mul__(self, other) -> Tensor:
        other = self._lift(other)
        out = Tensor(self.data * other.data, (self, other), "*")

        def _backward():
            self.grad += unbroadcast(out.grad * other.data, self.shape)
            other.grad += unbroadcast(out.grad * self.data, other.shape)

        out._backward = _backward
        return out

    def __pow__(self, exponent) -> Tensor:
        if isinstance(exponent, bool) or not isinstance(exponent, numbers.Real):
            raise TypeError(f"exponent must be a real number, got {type(exponent).__name__}")
        out = Tensor(self.data**exponent, (self,), f"**{exponent}")

        def _backward():
            self.grad += out.grad * exponent * self.data ** (exponent - 1)

        out._backward = _backward
        return out

    def __matmul__(self, other) -> Tensor:
        other = self._lift(other)
        if self.ndim == 0 or other.ndim == 0:
            raise ValueError("matmul needs operands with at least one dimension; use * for scalars")
        out = Tensor(self.data @ other.data, (self, other), "@")

        def _backward():
            a, b, g = self.data, other.data, out.grad
            # Treat vectors as a row (left) or a column (right) matrix, as np.matmul does.
            a2 = a[None, :] if a.ndim == 1 else a
            b2 = b[:, None] if b.ndim == 1 else b
            g2 = np.expand_dims(g, -1) if b.ndim == 1 else g
            if a.ndim == 1:
                g2 = np.expand_dims(g2, -2)
            grad_a = g2 @ np.swapaxes(b2, -1, -2)
            grad_b = np.swapaxes(a2, -1, -2) @ g2
            if a.ndim == 1:
                grad_a = grad_a.squeeze(-2)
            if b.ndim == 1:
                grad_b = grad_b.squeeze(-1)
            self.grad += unbroadcast(grad_a, self.shape)
            other.grad += unbroadcast(grad_b, other.shape)

        out._backward = _backward
        return out

    def __neg__(self) -> Tensor:
        return self * -1.0

    def __sub__(self, other) -> Tensor:
        return self + (-self._lift(other))

    def __truediv__(self, other) -> Tensor:
        return self * self._lift(other) ** -1.0

    def __radd__(self, other) -> Tensor:
        return self + other

    def __rmul__(self, other) -> Tensor:
        return self * other

    def __rsub__(self, other) -> Tensor:
        return self._lift(other) - self

    def __rtruediv__(self, other) -> Tensor:
        return self._lift(other) / self

    def __rmatmul__(self, other) -> Tensor:
        return self._lift(other) @ self

    # -- elementwise functions -------------------------------------------------------------

    def _elementwise(self, value: np.ndarray, derivative: np.ndarray, op: str) -> Tensor:
        """A tensor ``f(self)`` whose local Jacobian is ``diag(derivative)``."""
        out = Tensor(value, (self,), op)

        def _backward():
            self.grad += out.grad * derivative

        out._backward = _backward
        return out

    def relu(self) -> Tensor:
        """max(0, x); the derivative at 0 is taken as 0, as in PyTorch."""
        return self._elementwise(np.maximum(self.data, 0.0), (self.data > 0).astype(float), "relu")

    def tanh(self) -> Tensor:
        value = np.tanh(self.data)
        return self._elementwise(value, 1.0 - value**2, "tanh")

    def sigmoid(self) -> Tensor:
        value = 0.5 * (1.0 + np.tanh(0.5 * self.data))  # stable for large |x|
        return self._elementwise(value, value * (1.0 - value), "sigmoid")

    def exp(self) -> Tensor:
        value = np.exp(self.data)
        return self._elementwise(value, value, "exp")

    def log(self) -> Tensor:
        if np.any(self.data <= 0):
            raise ValueError("log needs strictly positive values")
        return self._elementwise(np.log(self.data), 1.0 / self.data, "log")

    # -- reductions and shapes -------------------------------------------------------------

    def sum(self, axis=None, keepdims: bool = False) -> Tensor:
        out = Tensor(self.data.sum(axis=axis, keepdims=keepdims), (self,), "sum")

        def _backward():
            grad = out.grad
            if axis is not None and not keepdims:
                grad = np.expand_dims(grad, axis)
            self.grad += np.broadcast_to(grad, self.shape)

        out._backward = _backward
        return out

    def mean(self, axis=None, keepdims: bool = False) -> Tensor:
        count = (
            self.data.size
            if axis is None
            else np.prod([self.shape[a] for a in np.atleast_1d(axis)])
        )
        return self.sum(axis=axis, keepdims=keepdims) * (1.0 / count)

    def reshape(self, *shape) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], tuple | list):
            shape = tuple(shape[0])
        out = Tensor(self.data.reshape(shape), (self,), "reshape")

        def _backward():
            self.grad += out.grad.reshape(self.shape)

        out._backward = _backward
        return out

    @property
    def T(self) -> Tensor:
        out = Tensor(self.data.T, (self,), "T")

        def _backward():
            self.grad += out.grad.T

        out._backward = _backward
        return out

    # -- backpropagation -------------------------------------------------------------------

    def backward(self, grad=None) -> None:
        """Fill ``.grad`` of every tensor this one depends on with d(self)/d(tensor).

        ``grad`` is the gradient flowing into this tensor; it defaults to 1 and
        must be given when the tensor is not a scalar (as in PyTorch). Leaf tensors
        (inputs and parameters) accumulate gradients over calls; intermediate
        results are recomputed from zero.
        """
        if grad is None:
            if self.data.size != 1:
                raise ValueError(
                    f"backward() on a tensor of shape {self.shape} needs a grad argument"
                )
            grad = np.ones_like(self.data)
        grad = np.asarray(grad, dtype=np.float64)
        if grad.shape != self.shape:
            raise ValueError(f"grad must have shape {self.shape}, got {grad.shape}")

        order = topological_order(self)
        for node in order:  # intermediate results start from zero on every call
            if node._parents:
                node.grad = np.zeros_like(node.data)
        self.grad = self.grad + grad
        for node in reversed(order):
            node._backward()


def topological_order(root: Tensor) -> list[Tensor]:
    """The tensors ``root`` depends on, parents before children, ``root`` last.

    :meth:`Tensor.backward` runs the local backward steps in the reverse of this
    order, so that a tensor's gradient is complete before it is passed on.
    Taught in chapter 5.
    """
    if not isinstance(root, Tensor):
        raise TypeError(f"root must be a Tensor, got {type(root).__name__}")
    order: list[Tensor] = []
    visited: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:  # iterative depth-first search: deep graphs do not hit the recursion limit
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
        elif id(node) not in visited:
            visited.add(id(node))
            stack.append((node, True))
            # reversed, so that the first parent is visited (and listed) first
            stack.extend((p, False) for p in reversed(node._parents) if id(p) not in visited)
    return order


def cross_entropy(logits: Tensor, labels) -> Tensor:
    """Mean softmax cross-entropy (natural log) of ``logits`` (N, C) against integer ``labels``.

    Computed in one stable step (log-sum-exp), with the well-known local gradient
    ``(softmax(logits) - onehot(labels)) / N``; both come from
    :func:`dl_course.losses.softmax_cross_entropy_with_grad` (chapter 4). Taught in chapter 5.
    """
    if not isinstance(logits, Tensor):
        raise TypeError(f"logits must be a Tensor, got {type(logits).__name__}")
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape (N, C), got {logits.shape}")
    n, c = logits.shape
    labels = as_labels(labels, "labels", n=n, allowed=range(c))
    value, grad = softmax_cross_entropy_with_grad(logits.data, labels)
    out = Tensor(value, (logits,), "cross_entropy")

    def _backward():
        logits.grad += out.grad * grad

    out._backward = _backward
    return out
