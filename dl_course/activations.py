"""Activation functions, their derivatives, and how gradients flow through them (chapter 3).

Every activation comes as a pair of NumPy functions, the value and the
derivative, computed in ``float64`` without overflow for any finite input:

========================  ==========================================  ==============
name                      value                                       derivative at 0
========================  ==========================================  ==============
``sigmoid``               ``1 / (1 + exp(-x))``                       0.25
``tanh``                  ``tanh(x)``                                 1
``relu``                  ``max(0, x)``                               0 (convention)
``leaky_relu``            ``x`` if ``x > 0`` else ``alpha * x``       ``alpha``
``prelu``                 same as leaky ReLU, ``alpha`` is learned    ``alpha``
``elu``                   ``x`` if ``x > 0`` else ``alpha (e^x - 1)``  ``alpha``
``gelu``                  ``x * Phi(x)``, ``Phi`` the normal CDF      0.5
``silu`` (swish)          ``x * sigmoid(x)``                          0.5
``identity``              ``x`` (no activation)                       1
========================  ==========================================  ==============

At a kink (``x = 0`` for the piecewise-linear functions) the derivative is
taken from the negative side, as PyTorch's autograd does. In particular
``relu_derivative(0) == 0``; some texts set it to 1 instead. Any value in
[0, 1] is a valid subgradient, and since a pre-activation is almost never
exactly zero the choice rarely matters.

:data:`ACTIVATIONS` collects the element-wise activations as :class:`Activation`
records (function, derivative, properties, and where else they run); :func:`get`
looks one up by name. It is the book's one list of activations: :func:`names`
gives the names a backend offers (``"numpy"``, ``"engine"`` for
:mod:`dl_course.autograd`, ``"torch"`` for :func:`dl_course.mlp.build_mlp`), and
:func:`check_name` validates an ``activation`` argument against it. The registry
also holds ``identity`` (no activation, chapter 2's linear collapse).
:func:`maxout` is not element-wise: it takes the maximum of several affine
functions of a vector. :func:`gradient_flow` measures how the gradient shrinks
or grows on its way back through a deep random network.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from dl_course._checks import as_float_array, check_int, check_real, check_seed

#: How an activation's derivative behaves for large ``|x|``: it tends to 0 on both sides,
#: on one side only, or on neither.
SATURATION_TYPES = ("saturating", "half-saturating", "non-saturating")

_SQRT_2 = math.sqrt(2.0)
_SQRT_2PI = math.sqrt(2.0 * math.pi)
_GELU_TANH_C = math.sqrt(2.0 / math.pi)
_GELU_TANH_A = 0.044715


def _input(x) -> np.ndarray:
    return as_float_array(x, "x")


def _logistic_parts(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``sigmoid(x)`` and ``sigmoid'(x)`` from ``e = exp(-|x|)``, which never overflows."""
    e = np.exp(-np.abs(x))
    value = np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    return value, e / (1.0 + e) ** 2


def sigmoid(x) -> np.ndarray:
    """The logistic sigmoid ``1 / (1 + exp(-x))``, with values in (0, 1).

    Computed from ``exp(-|x|)`` so that no exponential overflows. Taught in chapter 3.

    Examples
    --------
    >>> sigmoid([0.0, 50.0]).tolist()
    [0.5, 1.0]
    """
    return _logistic_parts(_input(x))[0]


def sigmoid_derivative(x) -> np.ndarray:
    """``sigmoid'(x) = sigmoid(x) (1 - sigmoid(x))``, at most 1/4 (reached at ``x = 0``).

    Computed as ``e / (1 + e)**2`` with ``e = exp(-|x|)``, which keeps full
    relative accuracy in the tails, where ``s * (1 - s)`` rounds to 0 once
    ``sigmoid(x)`` rounds to 1 (beyond ``x`` of about 37 in float64).
    Taught in chapter 3.
    """
    return _logistic_parts(_input(x))[1]


def tanh(x) -> np.ndarray:
    """The hyperbolic tangent, with values in (-1, 1); ``tanh(x) = 2 sigmoid(2x) - 1``.

    Taught in chapter 3.
    """
    return np.tanh(_input(x))


def tanh_derivative(x) -> np.ndarray:
    """``tanh'(x) = 1 - tanh(x)**2 = 1 / cosh(x)**2``, at most 1 (reached at ``x = 0``).

    Computed as ``4 e / (1 + e)**2`` with ``e = exp(-2|x|)``: accurate in the
    tails and free of overflow. Taught in chapter 3.
    """
    e = np.exp(-2.0 * np.abs(_input(x)))
    return 4.0 * e / (1.0 + e) ** 2


def relu(x) -> np.ndarray:
    """The rectified linear unit ``max(0, x)``. Taught in chapter 3."""
    return np.maximum(_input(x), 0.0)


def relu_derivative(x) -> np.ndarray:
    """1 where ``x > 0``, else 0; **the derivative at 0 is taken to be 0**, as in PyTorch.

    The derivative is exactly zero on the whole negative half-line: ReLU's
    *dying region*. Taught in chapter 3.
    """
    return (_input(x) > 0).astype(np.float64)


def _slope(alpha, name: str = "alpha", *, low: float | None = 0.0) -> float:
    return check_real(alpha, name, low=low)


def leaky_relu(x, alpha: float = 0.01) -> np.ndarray:
    """Leaky ReLU: ``x`` for ``x > 0`` and ``alpha * x`` otherwise (``alpha >= 0``).

    For ``alpha <= 1`` this is ``max(alpha * x, x)``. Taught in chapter 3.
    """
    x, alpha = _input(x), _slope(alpha)
    return np.where(x > 0, x, alpha * x)


def leaky_relu_derivative(x, alpha: float = 0.01) -> np.ndarray:
    """1 where ``x > 0``, else ``alpha`` (also at 0, as in PyTorch). Taught in chapter 3."""
    x, alpha = _input(x), _slope(alpha)
    return np.where(x > 0, 1.0, alpha)


def prelu(x, alpha: float) -> np.ndarray:
    """Parametric ReLU: leaky ReLU whose negative slope ``alpha`` is a learned parameter.

    ``alpha`` may be any real number (training can move it anywhere). PyTorch
    initializes it to 0.25. Taught in chapter 3.
    """
    x, alpha = _input(x), _slope(alpha, low=None)
    return np.where(x > 0, x, alpha * x)


def prelu_derivative(x, alpha: float) -> np.ndarray:
    """Derivative of :func:`prelu` with respect to ``x``: 1 for ``x > 0``, else ``alpha``.

    Taught in chapter 3.
    """
    x, alpha = _input(x), _slope(alpha, low=None)
    return np.where(x > 0, 1.0, alpha)


def prelu_alpha_derivative(x, alpha: float) -> np.ndarray:
    """Derivative of :func:`prelu` with respect to ``alpha``: ``min(x, 0)`` element-wise.

    Only inputs on the negative side teach the slope anything; the gradient of a
    loss with respect to ``alpha`` sums this times the upstream gradient over all
    inputs that share the slope. ``alpha`` is validated but does not enter the
    result. Taught in chapter 3.
    """
    x = _input(x)
    _slope(alpha, low=None)
    return np.minimum(x, 0.0)


def elu(x, alpha: float = 1.0) -> np.ndarray:
    """Exponential linear unit: ``x`` for ``x > 0``, ``alpha * (exp(x) - 1)`` otherwise.

    Bounded below by ``-alpha``; smooth at 0 when ``alpha = 1``. Uses
    ``expm1`` of ``min(x, 0)``, so large inputs cannot overflow. Taught in chapter 3.
    """
    x, alpha = _input(x), _slope(alpha)
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))


def elu_derivative(x, alpha: float = 1.0) -> np.ndarray:
    """1 for ``x > 0``, ``alpha * exp(x)`` otherwise (``alpha`` at 0, as in PyTorch).

    Taught in chapter 3.
    """
    x, alpha = _input(x), _slope(alpha)
    return np.where(x > 0, 1.0, alpha * np.exp(np.minimum(x, 0.0)))


def _gelu_approximate(approximate) -> str:
    if approximate not in ("none", "tanh"):
        raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
    return approximate


def _normal_cdf(x: np.ndarray) -> np.ndarray:
    from scipy.special import erfc

    # erfc keeps full relative accuracy in the left tail, where 1 + erf(.) cancels.
    return 0.5 * erfc(-x / _SQRT_2)


def _gelu_tanh_parts(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """``u``, ``du/dx`` and ``(sigmoid(2u), sigmoid'(2u))`` for the tanh form.

    ``0.5 (1 + tanh(u)) = sigmoid(2u)`` avoids the cancellation of ``1 + tanh(u)``
    for very negative ``x``.
    """
    u = _GELU_TANH_C * (x + _GELU_TANH_A * x**3)
    du = _GELU_TANH_C * (1.0 + 3.0 * _GELU_TANH_A * x**2)
    return u, du, _logistic_parts(2.0 * u)


def gelu(x, approximate: str = "none") -> np.ndarray:
    """Gaussian error linear unit ``x * Phi(x)``, with ``Phi`` the standard normal CDF.

    ``approximate="tanh"`` gives the cheaper form used by early Transformers and
    by ``torch.nn.functional.gelu(x, approximate="tanh")``:
    ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x**3)))``; it differs from the
    exact GELU by less than 5e-4. Taught in chapter 3.
    """
    x, approximate = _input(x), _gelu_approximate(approximate)
    if approximate == "tanh":
        return x * _gelu_tanh_parts(x)[2][0]
    return x * _normal_cdf(x)


def gelu_derivative(x, approximate: str = "none") -> np.ndarray:
    """``Phi(x) + x phi(x)`` (``phi`` the normal density): 0.5 at 0, slightly negative below -0.75.

    With ``approximate="tanh"``, the derivative of the tanh form. Taught in chapter 3.
    """
    x, approximate = _input(x), _gelu_approximate(approximate)
    if approximate == "tanh":
        _, du, (s, ds) = _gelu_tanh_parts(x)
        return s + x * 2.0 * ds * du
    return _normal_cdf(x) + x * np.exp(-0.5 * x * x) / _SQRT_2PI


def silu(x) -> np.ndarray:
    """SiLU, also called swish: ``x * sigmoid(x)``. Its minimum is about -0.278 near
    ``x = -1.278``. Taught in chapter 3.
    """
    x = _input(x)
    return x * _logistic_parts(x)[0]


def silu_derivative(x) -> np.ndarray:
    """``sigmoid(x) + x sigmoid'(x)``: 0.5 at 0, negative below about -1.278.

    Taught in chapter 3.
    """
    x = _input(x)
    value, slope = _logistic_parts(x)
    return value + x * slope


def identity(x) -> np.ndarray:
    """``f(x) = x``: no activation, so the layer stays affine (chapter 2's linear collapse).

    Returns a new array. Taught in chapters 2 and 3.
    """
    return np.array(_input(x), copy=True)


def identity_derivative(x) -> np.ndarray:
    """1 everywhere. Taught in chapters 2 and 3."""
    return np.ones_like(_input(x))


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Activation:
    """An element-wise activation: its function, its derivative and its properties.

    Attributes
    ----------
    name : str
        The key in :data:`ACTIVATIONS`.
    function, derivative : callable
        ``array -> array``, with the default hyperparameters filled in.
    derivative_at_zero : float
        ``derivative(0)``, with the convention of this module at kinks.
    saturation : str
        One of :data:`SATURATION_TYPES`: does the derivative tend to 0 for large
        ``|x|`` on both sides, on one side, or on neither?
    dying : bool
        True if the derivative is *exactly* zero on a whole interval (ReLU's
        negative half), so that a unit stuck there receives no gradient at all.
    engine : bool
        True if :class:`dl_course.autograd.Tensor` has a method of this name, so
        that the engine :class:`dl_course.mlp.MLP` offers it.
    torch_module : str or None
        The ``torch.nn`` module class with the same function and defaults (used by
        :func:`dl_course.mlp.build_mlp`), or None if the torch builder does not offer it.
    """

    name: str
    function: Callable[..., np.ndarray]
    derivative: Callable[..., np.ndarray]
    derivative_at_zero: float
    saturation: str
    dying: bool
    engine: bool = False
    torch_module: str | None = None

    def __call__(self, x) -> np.ndarray:
        return self.function(x)

    @property
    def backends(self) -> tuple[str, ...]:
        """The entries of :data:`BACKENDS` that offer this activation (always ``"numpy"``)."""
        offered = {"numpy": True, "engine": self.engine, "torch": self.torch_module is not None}
        return tuple(b for b in BACKENDS if offered[b])


#: PReLU's slope in the registry: PyTorch's initial value for the learned ``alpha``.
PRELU_INIT = 0.25

#: Where an activation can run: this module's NumPy functions (every entry), the engine
#: MLP on :mod:`dl_course.autograd` (``"engine"``), and :func:`dl_course.mlp.build_mlp`
#: (``"torch"``).
BACKENDS = ("numpy", "engine", "torch")

#: The element-wise activations of chapter 3, with default hyperparameters
#: (leaky ReLU ``alpha = 0.01``, PReLU ``alpha = 0.25``, ELU ``alpha = 1``, exact GELU),
#: and ``identity`` (no activation). The one list of activations in the book.
ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation(
            "sigmoid", sigmoid, sigmoid_derivative, 0.25, "saturating", False,
            engine=True, torch_module="Sigmoid",
        ),
        Activation(
            "tanh", tanh, tanh_derivative, 1.0, "saturating", False,
            engine=True, torch_module="Tanh",
        ),
        Activation(
            "relu", relu, relu_derivative, 0.0, "half-saturating", True,
            engine=True, torch_module="ReLU",
        ),
        Activation(
            "leaky_relu", leaky_relu, leaky_relu_derivative, 0.01, "non-saturating", False,
            torch_module="LeakyReLU",
        ),
        Activation(
            "prelu",
            partial(prelu, alpha=PRELU_INIT),
            partial(prelu_derivative, alpha=PRELU_INIT),
            PRELU_INIT,
            "non-saturating",
            False,
        ),
        Activation(
            "elu", elu, elu_derivative, 1.0, "half-saturating", False, torch_module="ELU"
        ),
        Activation(
            "gelu", gelu, gelu_derivative, 0.5, "half-saturating", False, torch_module="GELU"
        ),
        Activation(
            "silu", silu, silu_derivative, 0.5, "half-saturating", False, torch_module="SiLU"
        ),
        Activation(
            "identity", identity, identity_derivative, 1.0, "non-saturating", False,
            torch_module="Identity",
        ),
    )
}  # fmt: skip

_ALIASES = {"swish": "silu"}


def get(name: str) -> Activation:
    """Return the :class:`Activation` called ``name`` (``"swish"`` is accepted for ``"silu"``).

    Raises ``ValueError`` listing the valid names if there is no such activation.
    Taught in chapter 3.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {type(name).__name__} {name!r}")
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in ACTIVATIONS:
        valid = ", ".join(sorted([*ACTIVATIONS, *_ALIASES]))
        raise ValueError(f"unknown activation {name!r}; valid names are: {valid}")
    return ACTIVATIONS[key]


def _backend(backend) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return backend


def names(backend: str = "numpy") -> tuple[str, ...]:
    """The names of the activations that ``backend`` offers, in the order of :data:`ACTIVATIONS`.

    Parameters
    ----------
    backend : {"numpy", "engine", "torch"}
        ``"numpy"``: every entry of the registry; ``"engine"``: those the engine
        :class:`dl_course.mlp.MLP` runs; ``"torch"``: those :func:`dl_course.mlp.build_mlp`
        offers.

    Examples
    --------
    >>> names("engine")
    ('sigmoid', 'tanh', 'relu')

    Taught in chapter 3.
    """
    backend = _backend(backend)
    return tuple(name for name, act in ACTIVATIONS.items() if backend in act.backends)


def check_name(activation, backend: str = "numpy", argname: str = "activation") -> str:
    """Return ``activation`` if ``backend`` offers it, else raise ``ValueError`` listing what does.

    The exact name is required (no aliases, no other case), so that a model records
    the name it was built with. Used by :mod:`dl_course.expressivity` and
    :mod:`dl_course.mlp` to validate their ``activation`` arguments.

    Examples
    --------
    >>> check_name("gelu", "engine")
    Traceback (most recent call last):
        ...
    ValueError: activation must be one of ('sigmoid', 'tanh', 'relu'), got 'gelu'
    """
    allowed = names(backend)
    if not isinstance(activation, str) or activation not in allowed:
        raise ValueError(f"{argname} must be one of {allowed}, got {activation!r}")
    return activation


# --------------------------------------------------------------------------- maxout


def _maxout_inputs(x, W, b) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = as_float_array(x, "x", ndim=(1, 2))
    W = as_float_array(W, "W", ndim=2)
    b = as_float_array(b, "b", ndim=1)
    k, d = W.shape
    if x.shape[-1] != d:
        raise ValueError(
            f"x must have {d} features (the number of columns of W), got {x.shape[-1]}"
        )
    if b.shape[0] != k:
        raise ValueError(f"b must have length {k} (one offset per row of W), got {b.shape[0]}")
    return x, W, b


def maxout(x, W, b) -> tuple[np.ndarray, np.ndarray]:
    """One maxout unit: the largest of ``k`` affine functions, ``max_j (W[j] @ x + b[j])``.

    Parameters
    ----------
    x : array of shape (d,) or (n, d)
        One input or a batch of inputs.
    W : array of shape (k, d)
        One row of weights per affine piece.
    b : array of shape (k,)
        One offset per piece.

    Returns
    -------
    values : ndarray of shape () or (n,)
        The unit's output.
    winners : integer ndarray of shape () or (n,)
        Which piece attains the maximum; ties go to the lowest index, as with
        :func:`numpy.argmax` and ``torch.max(..., dim)``.

    Examples
    --------
    ReLU is the maxout of the pieces ``0`` and ``x``:

    >>> values, winners = maxout([[-2.0], [3.0]], W=[[0.0], [1.0]], b=[0.0, 0.0])
    >>> values.tolist(), winners.tolist()
    ([0.0, 3.0], [0, 1])

    Taught in chapter 3.
    """
    x, W, b = _maxout_inputs(x, W, b)
    pieces = x @ W.T + b
    winners = np.argmax(pieces, axis=-1)
    values = np.take_along_axis(pieces, winners[..., None], axis=-1)[..., 0]
    return values, winners


def maxout_gradients(x, W, b) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of one maxout unit's output, for each input separately.

    The output is the winning piece ``W[j] @ x + b[j]``, so its gradient with
    respect to ``x`` is ``W[j]``, with respect to ``W`` it is ``x`` in row ``j``
    and zero elsewhere, and with respect to ``b`` it is the indicator of ``j``.
    Pieces that never win receive no gradient. Taught in chapter 3.

    Returns
    -------
    grad_x : ndarray of shape (d,) or (n, d)
    grad_W : ndarray of shape (k, d) or (n, k, d)
    grad_b : ndarray of shape (k,) or (n, k)
    """
    x, W, b = _maxout_inputs(x, W, b)
    winners = maxout(x, W, b)[1]
    grad_b = (np.arange(W.shape[0]) == winners[..., None]).astype(np.float64)
    grad_W = grad_b[..., :, None] * x[..., None, :]
    return W[winners], grad_W, grad_b


# --------------------------------------------------------------------------- gradient flow


def _activation(activation) -> Activation:
    if isinstance(activation, Activation):
        return activation
    return get(activation)


def backprop_chain(activation, x, weights, readout) -> tuple[np.ndarray, np.ndarray]:
    """Forward and backward pass through deep bias-free networks, many at once.

    Network ``t`` maps its input ``h_0 = x[t]`` through ``z_l = W_l h_{l-1}`` and
    ``h_l = f(z_l)`` for ``l = 1..L`` (``W_l = weights[t, l - 1]``), and the loss
    is the linear readout ``readout[t] @ h_L``. Backpropagation then gives
    ``dloss/dz_l = f'(z_l) * (W_{l+1}^T dloss/dz_{l+1})``. Taught in chapter 3.

    Parameters
    ----------
    activation : str or Activation
        A name from :data:`ACTIVATIONS`.
    x : array of shape (trials, width)
    weights : array of shape (trials, depth, width, width)
    readout : array of shape (trials, width)

    Returns
    -------
    pre_activations : ndarray of shape (trials, depth, width)
        ``z_l`` for ``l = 1..depth``.
    grads : ndarray of shape (trials, depth, width)
        ``dloss/dz_l``, the signal from which layer ``l``'s weights learn
        (``dloss/dW_l`` is its outer product with ``h_{l-1}``).
    """
    act = _activation(activation)
    x = as_float_array(x, "x", ndim=2)
    weights = as_float_array(weights, "weights", ndim=4)
    readout = as_float_array(readout, "readout", ndim=2)
    trials, width = x.shape
    if weights.shape[0] != trials or weights.shape[2:] != (width, width):
        raise ValueError(
            f"weights must have shape ({trials}, depth, {width}, {width}) to match x of shape "
            f"{x.shape}, got {weights.shape}"
        )
    if readout.shape != x.shape:
        raise ValueError(f"readout must have shape {x.shape} like x, got {readout.shape}")
    depth = weights.shape[1]
    pre = np.empty((trials, depth, width))
    h = x
    for layer in range(depth):
        pre[:, layer] = np.einsum("tij,tj->ti", weights[:, layer], h)
        h = act.function(pre[:, layer])
    slopes = act.derivative(pre)
    grads = np.empty_like(pre)
    upstream = readout  # dloss/dh_L
    for layer in range(depth - 1, -1, -1):
        grads[:, layer] = slopes[:, layer] * upstream
        upstream = np.einsum("tij,ti->tj", weights[:, layer], grads[:, layer])
    return pre, grads


@dataclass(frozen=True)
class GradientFlow:
    """What :func:`gradient_flow` measured.

    Attributes
    ----------
    activation : str
    gain : float
    grad_norms : ndarray of shape (trials, depth)
        ``||dloss/dz_l||`` for layers ``l = 1..depth`` (column 0 is the first
        layer), for a readout of unit norm: the size of the gradient after it has
        passed through ``depth - l + 1`` activation derivatives.
    derivatives : ndarray of shape (trials, depth, width)
        ``f'(z_l)`` at every unit of every layer.
    """

    activation: str
    gain: float
    grad_norms: np.ndarray
    derivatives: np.ndarray

    @property
    def depth(self) -> int:
        return self.grad_norms.shape[1]

    @property
    def mean_log_norms(self) -> np.ndarray:
        """Mean over trials of ``log ||dloss/dz_l||``, one value per layer (first layer first).

        ``-inf`` where the gradient was exactly zero in some trial (every unit of a
        layer in ReLU's dying region, say).
        """
        with np.errstate(divide="ignore"):
            return np.log(self.grad_norms).mean(axis=0)

    @property
    def log_slope(self) -> float:
        """Least-squares slope of :attr:`mean_log_norms` against the number of derivatives the
        gradient has passed through: the average log factor per layer (< 0 means it shrinks).

        Raises ``ValueError`` if the gradient was exactly zero somewhere (no finite slope).
        """
        logs = self.mean_log_norms
        if not np.all(np.isfinite(logs)):
            raise ValueError("the gradient is exactly zero in some layer: no finite log-slope")
        if self.depth < 2:
            raise ValueError("a log-slope needs depth >= 2")
        factors = np.arange(self.depth, 0, -1)
        return float(np.polyfit(factors, logs, 1)[0])

    @property
    def predicted_norms(self) -> np.ndarray:
        """``gain**(depth - l) * prod_{m >= l} rms_m f'``, one value per layer (first layer first).

        The norm each layer's gradient would have if every weight matrix scaled the
        gradient by exactly ``gain`` and every activation layer by the root-mean-square of
        its derivatives ``rms_m`` (over trials and units).
        """
        rms = np.sqrt(np.mean(self.derivatives**2, axis=(0, 2)))
        above = np.arange(self.depth - 1, -1, -1)  # weight matrices above layer l
        return self.gain**above * np.cumprod(rms[::-1])[::-1]

    @property
    def predicted_log_slope(self) -> float:
        """``log(gain) + mean_l log(rms_l f')``: the slope expected if each layer scales the
        gradient's norm by the gain times the root-mean-square of its derivatives."""
        rms = np.sqrt(np.mean(self.derivatives**2, axis=(0, 2)))
        return float(np.log(self.gain) + np.mean(np.log(rms)))


def gradient_flow(
    activation,
    depth: int,
    width: int = 64,
    trials: int = 16,
    gain: float = 1.0,
    seed: int = 0,
) -> GradientFlow:
    """Measure the gradient's norm at every layer of random deep networks.

    Draws ``trials`` bias-free networks of ``depth`` square layers of ``width``
    units with weights ``N(0, gain**2 / width)``, a standard normal input and a
    random unit readout, and backpropagates with :func:`backprop_chain`. With
    ``gain = 1`` a weight matrix preserves a vector's length on average, so what
    is left is the effect of the activation's derivatives. The same ``seed``
    draws the same weights for every activation. Taught in chapter 3 (the right
    gain for each activation is the subject of chapter 9).

    Parameters
    ----------
    activation : str or Activation
    depth, width, trials : int
        At least 1, 1 and 1.
    gain : float
        Scale of the weights, > 0.
    seed : int

    Returns
    -------
    GradientFlow
    """
    act = _activation(activation)
    depth = check_int(depth, "depth", low=1, high=1000)
    width = check_int(width, "width", low=1, high=4096)
    trials = check_int(trials, "trials", low=1)
    gain = check_real(gain, "gain", low=0.0, low_open=True)
    rng = np.random.default_rng(check_seed(seed))
    if trials * depth * width * width > 20_000_000:
        raise ValueError(
            "trials * depth * width**2 must be at most 20,000,000 (memory), got "
            f"{trials * depth * width * width:,}"
        )
    x = rng.standard_normal((trials, width))
    weights = rng.standard_normal((trials, depth, width, width)) * (gain / math.sqrt(width))
    readout = rng.standard_normal((trials, width))
    readout /= np.linalg.norm(readout, axis=1, keepdims=True)
    pre, grads = backprop_chain(act, x, weights, readout)
    return GradientFlow(
        activation=act.name,
        gain=gain,
        grad_norms=np.linalg.norm(grads, axis=2),
        derivatives=act.derivative(pre),
    )
