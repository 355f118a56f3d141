"""The neural tangent kernel: empirical, infinite-width, and what training does to it.

Chapter 18 studies the kernel

    Theta(x, x') = < grad_theta f(x; theta), grad_theta f(x'; theta) >

of a scalar-output network ``f`` with three kinds of tool:

- :func:`empirical_ntk` computes it for a torch model. For an ``nn.Sequential``
  of ``nn.Linear`` layers and elementwise activations it uses the per-layer
  structure (``method="structured"``): a Linear layer ``y = W a + b`` contributes
  ``(B1 B2^T) * (A1 A2^T + 1)``, with ``A`` the layer inputs and ``B`` the backward
  signals ``df/dy`` of all examples, which one backward pass of ``sum_i f(x_i)``
  delivers (the examples do not interact). Other models go through
  ``torch.func`` (``method="jacobian"``: per-example Jacobians by ``vmap(jacrev)``,
  then a contraction). :func:`ntk_method` says which one ``"auto"`` picks.
  :func:`ntk_mlp` builds networks in the *NTK parametrization* (standard normal
  weights, explicit ``1 / sqrt(fan_in)`` multipliers) that the structured path
  understands.
- :func:`relu_ntk` is the infinite-width NTK of the two-layer ReLU network
  ``f(x) = m^{-1/2} sum_j v_j relu(d^{-1/2} w_j . x)`` (arc-cosine kernels of
  degree 0 and 1, Cho and Saul 2009; Jacot et al. 2018).
- :func:`train_two_layer` trains many such two-layer networks at once (seeds and
  output scales ``alpha`` as batch axes, full-batch gradient descent on the
  centred, ``alpha``-scaled model of Chizat and Bach 2019);
  :func:`two_layer_ntk` is their empirical NTK in closed form and
  :func:`kernel_gd_predict` the prediction of the linearized model (kernel
  regression with a fixed kernel, after the same number of gradient steps).

torch is imported inside the functions that need it; :func:`relu_ntk` and
:func:`kernel_gd_predict` are NumPy only. Taught in chapter 18.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
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
from dl_course._threads import limited_threads

#: The ways :func:`empirical_ntk` can compute the kernel.
METHODS = ("auto", "structured", "jacobian")
#: Elementwise activation modules the structured path accepts (by class name in torch.nn).
ELEMENTWISE = (
    "ReLU", "LeakyReLU", "Tanh", "Sigmoid", "GELU", "SiLU", "ELU", "SELU", "CELU", "Softplus",
    "Mish", "Hardtanh", "Hardswish", "Hardsigmoid", "ReLU6", "Softsign", "Tanhshrink",
    "Identity",
)  # fmt: skip
#: Activations of :func:`ntk_mlp`.
ACTIVATIONS = ("relu", "tanh", "linear")
#: Largest ``seeds * width`` trained at once by :func:`train_two_layer`.
MAX_UNITS = 2**21


# -- the empirical NTK of a torch model ---------------------------------------------------------


def _is_elementwise(module) -> bool:
    import torch

    if getattr(module, "elementwise", False) is True:  # e.g. the Scale layers of ntk_mlp
        return True
    return type(module).__name__ in ELEMENTWISE and type(module) is getattr(
        torch.nn, type(module).__name__, None
    )


def _structured_reason(model) -> str | None:
    """Why the structured path cannot handle ``model`` (None if it can)."""
    import torch

    if not isinstance(model, torch.nn.Sequential):
        return f"it is a {type(model).__name__}, not an nn.Sequential"
    linears = 0
    for k, module in enumerate(model):
        if isinstance(module, torch.nn.Linear):
            linears += 1
        elif not _is_elementwise(module):
            return f"layer {k} ({type(module).__name__}) is neither nn.Linear nor elementwise"
    if linears == 0:
        return "it has no nn.Linear layer"
    own = {id(p) for m in model if isinstance(m, torch.nn.Linear) for p in m.parameters()}
    if any(p.requires_grad and id(p) not in own for p in model.parameters()):
        return "a trainable parameter lives outside its nn.Linear layers"
    return None


def ntk_method(model) -> str:
    """The path ``empirical_ntk(model, x1, x2, method="auto")`` takes (chapter 18).

    Parameters
    ----------
    model : torch.nn.Module
        A scalar-output model.

    Returns
    -------
    str
        ``"structured"`` for an ``nn.Sequential`` of ``nn.Linear`` layers and
        elementwise activations (:data:`ELEMENTWISE`, or modules with an attribute
        ``elementwise = True``), ``"jacobian"`` otherwise.
    """
    _check_model(model)
    return "structured" if _structured_reason(model) is None else "jacobian"


def _check_model(model) -> None:
    check_module(model)
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError("model has no trainable parameters (requires_grad=True): its NTK is 0")


def _check_inputs(x1, x2):
    import torch

    for name, x in (("x1", x1), ("x2", x2)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim < 2 or x.shape[0] == 0:
            raise ValueError(
                f"{name} must have shape (n, ...) with n >= 1 examples along axis 0, got shape "
                f"{tuple(x.shape)} (reshape a single example to (1, d))"
            )
        if not torch.is_floating_point(x):
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x1.dtype != x2.dtype or x1.device != x2.device:
        raise TypeError(
            f"x1 and x2 must share dtype and device, got {x1.dtype} on {x1.device} and "
            f"{x2.dtype} on {x2.device}"
        )
    if x1.shape[1:] != x2.shape[1:]:
        raise ValueError(
            f"x1 and x2 must hold examples of one shape, got {tuple(x1.shape[1:])} for x1 and "
            f"{tuple(x2.shape[1:])} for x2"
        )


def _scalar(out, n: int, name: str):
    if out.shape not in ((n,), (n, 1)):
        raise ValueError(
            f"the model must return one number per example (shape ({n},) or ({n}, 1)) for "
            f"{name}, got output shape {tuple(out.shape)}: the NTK here is for scalar outputs"
        )
    return out.reshape(n)


def _layer_signals(model, x, name: str):
    """Inputs ``A`` and backward signals ``B = df/dy`` of every Linear layer, for all examples."""
    import torch

    h = x.detach().requires_grad_(True)
    inputs, outputs = [], []
    for module in model:
        if isinstance(module, torch.nn.Linear):
            inputs.append(h.detach())
            h = module(h)
            outputs.append(h)
        else:
            h = module(h)
    f = _scalar(h, x.shape[0], name)
    # sum_i f(x_i): example i's output depends only on example i's signals
    signals = torch.autograd.grad(f.sum(), outputs)
    return inputs, [s.detach() for s in signals]


def _structured(model, x1, x2):
    import torch

    if x2 is x1:
        a1, b1 = _layer_signals(model, x1, "x1")
        a2, b2 = a1, b1
    else:  # one forward and one backward pass for both sets of inputs
        _scalar(model(x1[:1].detach()), 1, "x1")  # name the culprit of a non-scalar output
        a, b = _layer_signals(model, torch.cat([x1, x2]), "x1 and x2")
        n1 = x1.shape[0]
        a1, a2 = [t[:n1] for t in a], [t[n1:] for t in a]
        b1, b2 = [t[:n1] for t in b], [t[n1:] for t in b]
    layers = [m for m in model if isinstance(m, torch.nn.Linear)]
    kernel = torch.zeros(x1.shape[0], x2.shape[0], dtype=b1[0].dtype, device=b1[0].device)
    for layer, a_1, b_1, a_2, b_2 in zip(layers, a1, b1, a2, b2, strict=True):
        weight = layer.weight.requires_grad
        bias = layer.bias is not None and layer.bias.requires_grad
        if not (weight or bias):
            continue
        inner = a_1 @ a_2.T if weight else torch.zeros_like(kernel)
        kernel += (b_1 @ b_2.T) * (inner + 1.0 if bias else inner)
    return kernel


def _jacobian(model, x1, x2):
    import torch
    from torch.func import functional_call, jacrev, vmap

    trainable = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    fixed = {n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}
    fixed.update(dict(model.named_buffers()))

    def f(params, x):
        out = functional_call(model, (params, fixed), (x.unsqueeze(0),))
        return out.reshape(())

    def jac(x, name):
        _scalar(model(x[:1].detach()), 1, name)  # a clear error for non-scalar outputs
        rows = vmap(jacrev(f), in_dims=(None, 0))(trainable, x.detach())
        return torch.cat([j.reshape(x.shape[0], -1) for j in rows.values()], dim=1)

    j1 = jac(x1, "x1")
    j2 = j1 if x2 is x1 else jac(x2, "x2")
    return j1 @ j2.T


def empirical_ntk(model, x1, x2, *, method: str = "auto"):
    """The empirical neural tangent kernel of a scalar-output torch model (chapter 18).

    ``K[i, j] = < grad_theta f(x1[i]), grad_theta f(x2[j]) >``, the gradient taken
    over every parameter with ``requires_grad=True`` at its current value: the
    Gram matrix of the per-example gradients.

    Parameters
    ----------
    model : torch.nn.Module
        Maps a batch of shape (n, ...) to n numbers (output shape (n,) or (n, 1)),
        each example on its own (no batch-coupling layers such as BatchNorm in
        training mode).
    x1, x2 : torch.Tensor
        Floating-point inputs of shapes (n1, ...) and (n2, ...) with the same
        example shape. Passing the same tensor twice computes its gradients once.
    method : {"auto", "structured", "jacobian"}
        ``"structured"``: for an ``nn.Sequential`` of ``nn.Linear`` layers and
        elementwise activations, sum over Linear layers ``y = W a + b`` of
        ``(B1 B2^T) * (A1 A2^T + 1)``, where ``A`` holds the layer's inputs and
        ``B`` the backward signals ``df/dy``, obtained for all examples from one
        backward pass of ``sum_i f(x_i)`` (the ``+ 1`` is the bias). No per-example
        gradient is ever stored. ``"jacobian"``: per-example Jacobians with
        ``torch.func.vmap(jacrev)``, flattened and contracted; works for any
        model that treats examples independently, at the cost of an (n, P)
        matrix. ``"auto"`` picks ``"structured"`` when the model allows it and
        ``"jacobian"`` otherwise; :func:`ntk_method` tells which.

    Returns
    -------
    torch.Tensor
        Shape (n1, n2), detached, in the model's dtype.

    Raises
    ------
    TypeError
        If ``model`` is not a module or an input not a floating-point tensor.
    ValueError
        If the example shapes differ, the output is not one number per example,
        ``method`` is unknown, or ``"structured"`` is asked of a model it cannot handle.

    Notes
    -----
    The parameters, their ``.grad`` and ``requires_grad`` flags and the model's
    training mode are left as they were.

    Examples
    --------
    >>> import torch
    >>> net = ntk_mlp([3, 64, 1], seed=0)
    >>> x = torch.randn(5, 3, dtype=torch.float64)
    >>> empirical_ntk(net, x, x).shape, ntk_method(net)
    (torch.Size([5, 5]), 'structured')
    """
    import torch

    _check_model(model)
    _check_inputs(x1, x2)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    reason = _structured_reason(model)
    if method == "structured" and reason is not None:
        raise ValueError(
            f"method='structured' needs an nn.Sequential of nn.Linear layers and elementwise "
            f"activations, but {reason}; use method='jacobian' (or 'auto')"
        )
    use = method if method != "auto" else ("structured" if reason is None else "jacobian")
    with torch.enable_grad():
        kernel = _structured(model, x1, x2) if use == "structured" else _jacobian(model, x1, x2)
    return kernel.detach()


@functools.cache
def _scale_class():
    import torch

    class Scale(torch.nn.Module):
        """Multiply by a constant: the explicit ``1 / sqrt(fan_in)`` of the NTK parametrization."""

        elementwise = True

        def __init__(self, factor: float):
            super().__init__()
            self.factor = float(factor)

        def forward(self, x):
            return x * self.factor

        def extra_repr(self) -> str:
            return f"factor={self.factor:.6g}"

    return Scale


def ntk_mlp(sizes: Sequence[int], *, activation: str = "relu", bias: bool = False, seed: int = 0):
    """An MLP in the NTK parametrization, as an ``nn.Sequential`` (chapter 18).

    Layer ``l`` computes ``h_l = W_l (n_{l-1}^{-1/2} a_{l-1}) + b_l`` with every entry of
    ``W_l`` and ``b_l`` standard normal: the ``1 / sqrt(fan_in)`` is a fixed
    multiplier (a ``Scale`` layer before each Linear), not part of the weights.
    The forward pass is the same function as He/LeCun-style initialization, but
    the gradients, and hence the NTK and the training dynamics, are not: in this
    parametrization the NTK has a finite limit as the widths grow (Jacot et al. 2018).

    Parameters
    ----------
    sizes : sequence of int
        ``[d_in, n_1, ..., 1]``: at least two entries, all >= 1, the last 1.
    activation : {"relu", "tanh", "linear"}
        Between Linear layers (none after the last).
    bias : bool
        Whether the Linear layers have (standard normal) biases.
    seed : int
        Seed of the initialization.

    Returns
    -------
    torch.nn.Sequential
        In float64. ``empirical_ntk`` takes its structured path on it.
    """
    import torch

    if isinstance(sizes, str | bytes) or not isinstance(sizes, Sequence) or len(sizes) < 2:
        raise ValueError(f"sizes must be a sequence [d_in, ..., 1] of >= 2 integers, got {sizes!r}")
    sizes = [check_int(s, f"sizes[{k}]", low=1) for k, s in enumerate(sizes)]
    if sizes[-1] != 1:
        raise ValueError(f"sizes must end with 1 (a scalar output), got {sizes[-1]}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    bias = check_bool(bias, "bias")
    seed = check_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    scale, layers = _scale_class(), []
    for k, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        if k > 0 and activation != "linear":
            layers.append(torch.nn.ReLU() if activation == "relu" else torch.nn.Tanh())
        linear = torch.nn.Linear(fan_in, fan_out, bias=bias, dtype=torch.float64)
        with torch.no_grad():
            for p in linear.parameters():
                p.copy_(torch.randn(p.shape, generator=generator, dtype=torch.float64))
        layers += [scale(1.0 / math.sqrt(fan_in)), linear]
    return torch.nn.Sequential(*layers)


# -- the infinite-width limit -------------------------------------------------------------------


def _angles(X1: np.ndarray, X2: np.ndarray):
    n1 = np.linalg.norm(X1, axis=1)
    n2 = np.linalg.norm(X2, axis=1)
    if np.any(n1 == 0) or np.any(n2 == 0):
        raise ValueError("inputs must be nonzero: the arc-cosine kernels need an angle")
    cos = np.clip((X1 @ X2.T) / np.outer(n1, n2), -1.0, 1.0)
    return n1, n2, np.arccos(cos), cos


def arccos_kernel(X1, X2, degree: int) -> np.ndarray:
    """``E_w[relu(w.x)^k relu(w.x')^k]`` for ``w ~ N(0, I)``, k = ``degree`` in {0, 1} (chapter 18).

    Degree 0 (``relu^0`` is the step function): ``(pi - t) / (2 pi)``; degree 1:
    ``|x| |x'| (sin t + (pi - t) cos t) / (2 pi)``, where ``t`` is the angle between
    ``x`` and ``x'``. These are Cho and Saul's arc-cosine kernels divided by 2.

    Parameters
    ----------
    X1, X2 : array_like
        Shapes (n1, d) and (n2, d); no zero rows.
    degree : {0, 1}

    Returns
    -------
    ndarray
        Shape (n1, n2).
    """
    X1 = as_float_array(X1, "X1", ndim=2)
    X2 = as_float_array(X2, "X2", ndim=2)
    if X1.shape[1] != X2.shape[1]:
        raise ValueError(f"X1 and X2 need the same dimension, got {X1.shape[1]} and {X2.shape[1]}")
    degree = check_int(degree, "degree", low=0, high=1)
    n1, n2, t, cos = _angles(X1, X2)
    if degree == 0:
        return (np.pi - t) / (2 * np.pi)
    return np.outer(n1, n2) * (np.sin(t) + (np.pi - t) * cos) / (2 * np.pi)


def relu_ntk(X1, X2) -> np.ndarray:
    """The infinite-width NTK of a two-layer ReLU network without biases (chapter 18).

    For ``f(x) = m^{-1/2} sum_j v_j relu(u_j)`` with ``u_j = d^{-1/2} w_j . x`` and
    all weights standard normal (NTK parametrization), both layers trained,

        Theta(x, x') = k_1(u, u') + (x . x' / d) k_0(u, u'),    u = x / sqrt(d),

    with the arc-cosine kernels ``k_1, k_0`` of :func:`arccos_kernel`: the first
    term comes from the output weights ``v``, the second from the hidden weights ``w``.
    The empirical NTK of a width-``m`` network converges to it as ``m -> infinity``.

    Parameters
    ----------
    X1, X2 : array_like
        Shapes (n1, d) and (n2, d); no zero rows.

    Returns
    -------
    ndarray
        Shape (n1, n2).
    """
    X1 = as_float_array(X1, "X1", ndim=2)
    X2 = as_float_array(X2, "X2", ndim=2)
    d = X1.shape[1]
    U1, U2 = X1 / math.sqrt(d), X2 / math.sqrt(d)
    return arccos_kernel(U1, U2, 1) + (U1 @ U2.T) * arccos_kernel(U1, U2, 0)


# -- many two-layer networks at once ------------------------------------------------------------


@dataclass(frozen=True)
class TwoLayerRun:
    """Two-layer networks trained by :func:`train_two_layer`; leading axes (alphas, seeds).

    ``W0, v0`` and ``W, v`` are the initial and final weights (torch float64, shapes
    (A, S, m, d) and (A, S, m)); ``alphas`` (A,), ``lrs`` (A,) the learning rates
    used; ``losses`` (steps + 1, A, S) the training loss after each step.
    """

    alphas: np.ndarray
    seeds: tuple
    lrs: np.ndarray
    W0: object
    v0: object
    W: object
    v: object
    losses: np.ndarray

    def predict(self, X, *, initial: bool = False) -> np.ndarray:
        """The centred, scaled outputs ``alpha (f(x) - f_0(x))`` on ``X``: shape (A, S, n)."""
        import torch

        X = torch.as_tensor(as_float_array(X, "X", ndim=2))
        W, v = (self.W0, self.v0) if initial else (self.W, self.v)
        centred = two_layer_forward(W, v, X) - two_layer_forward(self.W0, self.v0, X)
        alpha = torch.as_tensor(self.alphas)[:, None, None]
        return (alpha * centred).numpy()

    def feature_change(self) -> np.ndarray:
        """``||W - W0||_F / ||W0||_F`` of the hidden layer: how far the features moved, (A, S)."""
        change = (self.W - self.W0).flatten(2).norm(dim=2) / self.W0.flatten(2).norm(dim=2)
        return change.numpy()


def two_layer_forward(W, v, X):
    """``f(x) = m^{-1/2} sum_j v_j relu(d^{-1/2} w_j . x)`` for stacked weights (chapter 18).

    ``W`` has shape (..., m, d), ``v`` (..., m), ``X`` (n, d) (all torch); returns (..., n).
    """
    import torch

    m, d = W.shape[-2], W.shape[-1]
    hidden = torch.relu(torch.einsum("...md,nd->...mn", W, X) / math.sqrt(d))
    return torch.einsum("...m,...mn->...n", v, hidden) / math.sqrt(m)


def two_layer_ntk(W, v, X1, X2):
    """The empirical NTK of the networks of :func:`two_layer_forward`, in closed form (chapter 18).

    ``(1/m) sum_j [relu(u_j) relu(u'_j) + v_j^2 step(u_j) step(u'_j) x.x'/d]`` with
    ``u_j = d^{-1/2} w_j . x``: the output-layer and hidden-layer terms of the
    gradient inner product. Shapes as in :func:`two_layer_forward`; returns (..., n1, n2).
    """
    import torch

    m, d = W.shape[-2], W.shape[-1]
    u1 = torch.einsum("...md,nd->...mn", W, X1) / math.sqrt(d)
    u2 = torch.einsum("...md,nd->...mn", W, X2) / math.sqrt(d)
    outer = torch.einsum("...mi,...mj->...ij", torch.relu(u1), torch.relu(u2))
    gates1 = (u1 > 0).to(W.dtype) * v[..., None]
    gates2 = (u2 > 0).to(W.dtype) * v[..., None]
    inner = torch.einsum("...mi,...mj->...ij", gates1, gates2) * (X1 @ X2.T / d)
    return (outer + inner) / m


def _init(width: int, d: int, seed: int, antisymmetric: bool):
    import torch

    generator = torch.Generator().manual_seed(seed)
    if not antisymmetric:
        W = torch.randn(width, d, generator=generator, dtype=torch.float64)
        return W, torch.randn(width, generator=generator, dtype=torch.float64)
    half = width // 2
    W = torch.randn(half, d, generator=generator, dtype=torch.float64)
    v = torch.randn(half, generator=generator, dtype=torch.float64)
    return torch.cat([W, W]), torch.cat([v, -v])


def init_two_layer(width: int, d: int, seeds: Sequence[int], *, antisymmetric: bool = True):
    """Standard normal weights of two-layer networks, one per seed: (S, m, d) and (S, m).

    With ``antisymmetric=True`` (``width`` even) the hidden units come in pairs
    ``(w, v)`` and ``(w, -v)``, so that ``f_0 = 0`` exactly while the NTK keeps its
    infinite-width limit. Taught in chapter 18.
    """
    import torch

    width = check_int(width, "width", low=2 if antisymmetric else 1)
    d = check_int(d, "d", low=1)
    antisymmetric = check_bool(antisymmetric, "antisymmetric")
    if antisymmetric and width % 2:
        raise ValueError(f"width must be even for an antisymmetric initialization, got {width}")
    seeds = _seeds(seeds)
    pairs = [_init(width, d, s, antisymmetric) for s in seeds]
    return torch.stack([W for W, _ in pairs]), torch.stack([v for _, v in pairs])


def _seeds(seeds) -> tuple:
    if isinstance(seeds, str | bytes) or np.ndim(seeds) != 1 or len(seeds) == 0:
        raise ValueError(f"seeds must be a non-empty 1-D sequence of seeds, got {seeds!r}")
    return tuple(check_seed(s, f"seeds[{k}]") for k, s in enumerate(seeds))


def train_two_layer(
    X,
    y,
    *,
    width: int,
    seeds: Sequence[int],
    alphas: Sequence[float] = (1.0,),
    lr: float = 1.0,
    steps: int = 1000,
) -> TwoLayerRun:
    """Full-batch gradient descent on centred, scaled two-layer ReLU networks (chapter 18).

    Every (alpha, seed) pair trains its own network ``g(x) = alpha (f(x; theta) - f(x; theta_0))``
    (:func:`two_layer_forward`, antisymmetric standard normal init, both layers
    trained) on the loss of Chizat and Bach,

        L(theta) = (1 / (2 n alpha^2)) sum_i (g(x_i) - y_i)^2,

    with the learning rate ``lr * min(1, alpha)``. The ``1 / alpha^2`` makes the
    function move at the same speed at the start whatever ``alpha``; the ``min``
    keeps small ``alpha`` (large parameter moves) stable. All pairs run as one
    batched computation.

    Parameters
    ----------
    X : array_like, shape (n, d)
    y : array_like, shape (n,)
    width : int
        Hidden units ``m`` (even).
    seeds : sequence of int
        One network per seed (the same initial weights for every alpha).
    alphas : sequence of float
        Output scales, each > 0.
    lr : float
        Base learning rate, > 0.
    steps : int
        Gradient steps, >= 0.

    Returns
    -------
    TwoLayerRun
    """
    import torch

    X = as_float_array(X, "X", ndim=2)
    y = as_float_array(y, "y", ndim=1)
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"y must have one value per row of X ({X.shape[0]}), got {y.shape[0]}")
    width = check_int(width, "width", low=2)
    seeds = _seeds(seeds)
    alphas = as_float_array(alphas, "alphas", ndim=1)
    if np.any(alphas <= 0):
        raise ValueError(f"alphas must be > 0, got {alphas.min():g}")
    if width * len(seeds) * len(alphas) > MAX_UNITS:
        raise ValueError(f"width * len(seeds) * len(alphas) must be <= {MAX_UNITS}")
    lr = check_real(lr, "lr", low=0.0, low_open=True)
    steps = check_int(steps, "steps", low=0)
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    W0, v0 = init_two_layer(width, X.shape[1], seeds)
    A = len(alphas)
    W0, v0 = W0.expand(A, *W0.shape).clone(), v0.expand(A, *v0.shape).clone()
    alpha = torch.as_tensor(alphas)[:, None, None]
    lrs = lr * np.minimum(1.0, alphas)
    rate = torch.as_tensor(lrs)[:, None, None]
    f0 = two_layer_forward(W0, v0, Xt)
    W, v = W0.clone(), v0.clone()
    losses = np.empty((steps + 1, A, len(seeds)))
    n, m, d = X.shape[0], width, X.shape[1]
    Xs = Xt.T / math.sqrt(d)  # the 1/sqrt(d) of the hidden layer, folded into the inputs
    with limited_threads(A * len(seeds) * m * n * (d + 4)):
        _descend(W, v, Xs, f0, yt, alpha, rate, losses)
    return TwoLayerRun(alphas, seeds, lrs, W0, v0, W.detach(), v.detach(), losses)


def _descend(W, v, Xs, f0, yt, alpha, rate, losses) -> None:
    """Gradient descent in place on the stacked weights; writes the losses (see train_two_layer)."""
    import torch

    A, m, (d, n) = W.shape[0], W.shape[-2], Xs.shape
    steps = losses.shape[0] - 1
    for t in range(steps + 1):  # a hand-written backward pass: half the cost of autograd here
        pre = (W.reshape(-1, d) @ Xs).reshape(A, -1, m, n)
        hidden = torch.relu(pre)
        out = (v[..., None, :] @ hidden)[..., 0, :] / math.sqrt(m)
        residual = alpha * (out - f0) - yt
        losses[t] = ((residual**2).mean(dim=-1) / (2 * alpha[..., 0] ** 2)).numpy()
        if t == steps:
            break
        g_out = residual / (n * alpha * math.sqrt(m))  # dL/df, with the 1/sqrt(m) of f
        g_v = (hidden @ g_out[..., None])[..., 0]
        g_pre = hidden.gt_(0).mul_(v[..., None]).mul_(g_out[:, :, None, :])
        g_W = (g_pre.reshape(-1, n) @ Xs.T).reshape(W.shape)
        W -= rate[..., None] * g_W
        v -= rate * g_v


# -- the linearized model -----------------------------------------------------------------------


def kernel_gd_predict(K_train, K_test, y, *, lr: float, steps: int) -> np.ndarray:
    """Predictions of the linearized model after ``steps`` gradient steps (chapter 18).

    Gradient descent with rate ``lr`` on ``(1/(2n)) sum_i (g(x_i) - y_i)^2`` for a model
    that is linear in its parameters with kernel ``K`` and starts at ``g_0 = 0``
    moves the training outputs by ``g_{t+1} = g_t - (lr/n) K (g_t - y)``, so

        g_t(x) = K(x, X) K^{-1} (I - (I - lr K / n)^t) y,

    computed from the eigendecomposition of ``K_train`` (eigenvalues below
    ``1e-12`` times the largest contribute their limit ``t lr / n`` instead of dividing by 0).
    As ``t -> infinity`` this is kernel regression (interpolation) with ``K``.

    Parameters
    ----------
    K_train : array_like, shape (..., n, n)
        Symmetric positive semi-definite; leading axes are batch axes.
    K_test : array_like, shape (..., n_test, n)
    y : array_like, shape (n,)
    lr : float
        > 0.
    steps : int
        >= 0.

    Returns
    -------
    ndarray
        Shape (..., n_test).
    """
    K_train = np.asarray(as_float_array(K_train, "K_train"))
    K_test = np.asarray(as_float_array(K_test, "K_test"))
    y = as_float_array(y, "y", ndim=1)
    n = y.shape[0]
    if K_train.ndim < 2 or K_train.shape[-2:] != (n, n):
        raise ValueError(f"K_train must have shape (..., {n}, {n}), got {K_train.shape}")
    if K_test.ndim < 2 or K_test.shape[-1] != n:
        raise ValueError(f"K_test must have shape (..., n_test, {n}), got {K_test.shape}")
    lr = check_real(lr, "lr", low=0.0, low_open=True)
    steps = check_int(steps, "steps", low=0)
    lam, Q = np.linalg.eigh(K_train)
    lam = np.clip(lam, 0.0, None)
    small = lam <= 1e-12 * lam.max(axis=-1, keepdims=True)
    safe = np.where(small, 1.0, lam)
    shrink = np.where(small, steps * lr / n, (1 - (1 - lr * safe / n) ** steps) / safe)
    coef = Q @ (shrink * np.einsum("...ji,j->...i", Q, y))[..., None]
    return (K_test @ coef)[..., 0]
