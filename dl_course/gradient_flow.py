"""Vanishing and exploding gradients: measure them, predict them, clip them (chapter 8).

Backpropagation multiplies the gradient by one layer Jacobian after another, so
its size changes by a roughly constant factor per layer. This module measures
that factor in real PyTorch MLPs and predicts it without running a network:

- :func:`scaled_mlp` builds a bias-free MLP with weights ``N(0, gain**2 / fan_in)``
  (through :func:`dl_course.mlp.build_mlp`), and :func:`layer_gradients` measures
  the gradient at every layer, the activation derivatives and the weight factors
  that predict it (:class:`LayerGradients`).
- :func:`mean_field` predicts the per-layer factor from the activation alone, by
  following the pre-activation variance through the layers (:class:`MeanField`).
- :func:`layer_jacobians` and :func:`chain_product` write the gradient as the
  product of layer Jacobians; :func:`power_norms`, :func:`spectral_radius` and
  :func:`largest_singular_value` separate the two "sizes" of a matrix.
- :func:`clip_by_norm` and :func:`clip_by_value` (NumPy) implement gradient
  clipping with the semantics of ``torch.nn.utils.clip_grad_norm_`` and
  ``clip_grad_value_``; :func:`clip_grad_norm_` and :func:`clip_grad_value_`
  apply them in place to a torch model's ``.grad``, and :func:`train_with_clipping`
  uses them in a training loop.

The NumPy parts (:func:`mean_field`, the matrix functions, the clipping
functions) do not need torch; torch is imported by the functions that use it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dl_course._checks import (
    as_float_array,
    as_labels,
    check_int,
    check_module,
    check_real,
    check_seed,
)
from dl_course._threads import limited_threads
from dl_course.activations import Activation, get
from dl_course.training import DIVERGENCE_FACTOR, batches

#: The activations whose networks this module builds and measures.
ACTIVATIONS = ("sigmoid", "tanh", "relu")

# ------------------------------------------------------------------ a fitted per-layer factor


def per_layer_factor(norms) -> float:
    """The average factor by which a gradient's norm changes per layer, going backward.

    ``norms[l]`` is the gradient's norm at layer ``l + 1`` (first layer first), so
    the gradient at index ``l`` has passed through ``len(norms) - l`` layers on its
    way down from the top. Returns ``exp(slope)`` of the least-squares line through
    ``log(norms)`` against that count: < 1 means the gradient vanishes toward the
    input, > 1 that it explodes. Taught in chapter 8.

    Examples
    --------
    >>> round(per_layer_factor([0.125, 0.25, 0.5, 1.0]), 6)
    0.5
    """
    norms = as_float_array(norms, "norms", ndim=1)
    if norms.size < 2:
        raise ValueError(f"norms must hold at least two layers, got {norms.size}")
    if np.any(norms <= 0):
        raise ValueError("norms must be positive: a zero gradient has no log-slope")
    passed = np.arange(norms.size, 0, -1)
    return float(np.exp(np.polyfit(passed, np.log(norms), 1)[0]))


# ------------------------------------------------------------------------- mean-field theory

#: Standard-normal midpoint grid for Gaussian expectations. Zero is a cell boundary, so the
#: kink of ReLU and the jump of its derivative are integrated exactly.
_GRID_STEP = 0.005
_GRID = (np.arange(-2400, 2400) + 0.5) * _GRID_STEP
_GRID_WEIGHTS = np.exp(-(_GRID**2) / 2)
_GRID_WEIGHTS /= _GRID_WEIGHTS.sum()


def gaussian_mean(fn, variance: float) -> float:
    """``E[fn(z)]`` for ``z ~ N(0, variance)``, by a midpoint rule on +-12 standard deviations.

    Taught in chapter 8.
    """
    variance = check_real(variance, "variance", low=0.0)
    return float(np.sum(_GRID_WEIGHTS * fn(math.sqrt(variance) * _GRID)))


@dataclass(frozen=True)
class MeanField:
    """The per-layer quantities that :func:`mean_field` predicts.

    Attributes
    ----------
    activation : str
    gain : float
    variances : ndarray of shape (depth,)
        ``q_l``, the variance of a pre-activation in hidden layer ``l`` (first first).
    chi : ndarray of shape (depth,)
        ``chi_l = gain**2 * E[f'(z_l)**2]``: the factor by which the gradient's
        *squared* norm is multiplied on its way from hidden layer ``l + 1`` (or the
        output) back through ``W_{l+1}`` and hidden layer ``l``'s derivatives.
    """

    activation: str
    gain: float
    variances: np.ndarray
    chi: np.ndarray

    @property
    def factors(self) -> np.ndarray:
        """``sqrt(chi)``, the predicted factor on the gradient's norm, layer by layer."""
        return np.sqrt(self.chi)

    @property
    def norms(self) -> np.ndarray:
        """Predicted gradient norm at each hidden layer (first first), relative to the output's:
        the product of :attr:`factors` from the top down to that layer."""
        return np.cumprod(self.factors[::-1])[::-1]

    @property
    def per_layer_factor(self) -> float:
        """:func:`per_layer_factor` of :attr:`norms`: the prediction for the fitted factor."""
        return per_layer_factor(self.norms)


def mean_field(activation, gain: float, depth: int, input_variance: float = 1.0) -> MeanField:
    """Predict how the gradient's norm changes per layer in a wide random MLP.

    For weights ``N(0, gain**2 / n)`` (``n`` the fan-in), a pre-activation of layer
    ``l + 1`` is a sum of ``n`` independent terms, so for a wide layer it is close to
    Gaussian with variance

        ``q_{l+1} = gain**2 * E[f(z)**2]``,  ``z ~ N(0, q_l)``,  ``q_1 = gain**2 * input_variance``,

    and backpropagating through ``W^T`` and ``diag(f'(z_l))`` multiplies the squared
    norm of the gradient, on average, by ``chi_l = gain**2 * E[f'(z_l)**2]``. (The
    average treats the weights seen by the backward pass as independent of those of
    the forward pass: the "gradient independence" approximation, accurate for wide
    layers.) The expectations are computed with :func:`gaussian_mean`.
    Taught in chapter 8.

    Parameters
    ----------
    activation : str or Activation
        A name from :data:`dl_course.activations.ACTIVATIONS`.
    gain : float
        Weight scale, > 0 (1 is LeCun's variance ``1 / n``, ``sqrt(2)`` He's).
    depth : int
        Number of hidden layers, 1 to 10,000.
    input_variance : float
        Mean square of an input coordinate, > 0.

    Returns
    -------
    MeanField
    """
    act = activation if isinstance(activation, Activation) else get(activation)
    gain = check_real(gain, "gain", low=0.0, low_open=True)
    depth = check_int(depth, "depth", low=1, high=10_000)
    q = gain**2 * check_real(input_variance, "input_variance", low=0.0, low_open=True)
    variances, chi = np.empty(depth), np.empty(depth)
    for layer in range(depth):
        variances[layer] = q
        chi[layer] = gain**2 * gaussian_mean(lambda z: act.derivative(z) ** 2, q)
        with np.errstate(over="ignore"):
            q = gain**2 * gaussian_mean(lambda z: act.function(z) ** 2, q)
        if not math.isfinite(q):
            raise ValueError(
                f"the pre-activation variance overflows float64 at layer {layer + 2}: "
                f"use a smaller gain or depth (got gain={gain}, depth={depth})"
            )
    return MeanField(act.name, gain, variances, chi)


# ----------------------------------------------------------------------------- torch networks


def scaled_mlp(
    activation: str,
    depth: int,
    width: int = 128,
    gain: float = 1.0,
    *,
    n_in: int | None = None,
    n_out: int = 10,
    bias: bool = False,
    seed: int = 0,
    dtype: str = "float64",
):
    """An MLP with ``depth`` hidden layers of ``width`` units and weights ``N(0, gain**2 / fan_in)``.

    Built by :func:`dl_course.mlp.build_mlp` with LeCun's initialization (variance
    ``1 / fan_in``, gain 1), then every weight matrix is multiplied by ``gain``:
    ``gain = sqrt(2)`` is He's initialization. Biases (if any) start at zero.
    ``dtype="float64"`` keeps gradients of ``1e-40`` measurable; ``"float32"`` is
    what training normally uses. Taught in chapter 8.

    Returns
    -------
    torch.nn.Sequential
        ``Linear, act, Linear, act, ..., Linear``.
    """
    import torch

    from dl_course.mlp import build_mlp

    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    depth = check_int(depth, "depth", low=1, high=1000)
    width = check_int(width, "width", low=1, high=4096)
    gain = check_real(gain, "gain", low=0.0, low_open=True)
    n_in = width if n_in is None else check_int(n_in, "n_in", low=1)
    n_out = check_int(n_out, "n_out", low=1)
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    sizes = [n_in] + [width] * depth + [n_out]
    model = build_mlp(sizes, activation, init="lecun", bias=bias, seed=seed)
    model = model.to(getattr(torch, dtype))
    with torch.no_grad():
        for layer in model:
            if isinstance(layer, torch.nn.Linear):
                layer.weight.mul_(gain)
    return model


def _chain_layers(model) -> tuple[list, list]:
    """Split ``Linear, act, ..., Linear`` into its linear layers and its activations."""
    from torch import nn

    if not isinstance(model, nn.Sequential):
        raise TypeError(f"model must be a torch.nn.Sequential, got {type(model).__name__}")
    layers = list(model)
    linears, acts = layers[0::2], layers[1::2]
    ok = len(layers) % 2 == 1 and all(isinstance(m, nn.Linear) for m in linears)
    elementwise = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.ELU, nn.GELU, nn.SiLU)
    ok = ok and all(isinstance(m, elementwise) for m in acts)
    if not ok:
        raise ValueError(
            "model must alternate Linear layers and elementwise activations "
            "(Linear, act, ..., Linear), as build_mlp makes without norm or dropout; got "
            + ", ".join(type(m).__name__ for m in layers)
        )
    return linears, acts


@dataclass(frozen=True)
class LayerGradients:
    """What :func:`layer_gradients` measured in one network on one batch.

    Attributes
    ----------
    grad_norms : ndarray of shape (depth,)
        Root mean square over the batch of ``||dL/dz_l||``, the gradient with
        respect to hidden layer ``l``'s pre-activations (first layer first).
    output_grad_norm : float
        The same for the output (the logits).
    weight_grad_norms : ndarray of shape (depth + 1,)
        Frobenius norm of ``dL/dW_l`` for every linear layer, for the loss summed
        over the batch.
    mean_sq_derivative : ndarray of shape (depth,)
        Mean over the batch and the units of ``f'(z_l)**2``.
    weight_factors : ndarray of shape (depth + 1,)
        ``||W_l||_F**2 / fan_out = fan_in * mean(W_l**2)``: the factor by which
        ``W_l^T`` multiplies the squared norm of a random vector, on average.
    """

    grad_norms: np.ndarray
    output_grad_norm: float
    weight_grad_norms: np.ndarray
    mean_sq_derivative: np.ndarray
    weight_factors: np.ndarray

    @property
    def factors(self) -> np.ndarray:
        """``sqrt(weight_factors[l + 1] * mean_sq_derivative[l])``: the predicted factor from
        the layer above (or the output) down to hidden layer ``l``."""
        return np.sqrt(self.weight_factors[1:] * self.mean_sq_derivative)

    @property
    def predicted_norms(self) -> np.ndarray:
        """The output's gradient norm times the product of :attr:`factors` down to each layer."""
        return self.output_grad_norm * np.cumprod(self.factors[::-1])[::-1]

    @property
    def per_layer_factor(self) -> float:
        """:func:`per_layer_factor` of the measured :attr:`grad_norms`."""
        return per_layer_factor(self.grad_norms)


def layer_gradients(model, X, y) -> LayerGradients:
    """Backpropagate the summed cross-entropy of ``(X, y)`` and measure every layer.

    ``model`` is a ``torch.nn.Sequential`` that alternates ``Linear`` layers and
    elementwise activations (as :func:`scaled_mlp` and :func:`dl_course.mlp.build_mlp`
    without normalization or dropout make). One forward pass keeps every hidden
    pre-activation ``z_l``; ``torch.autograd.grad`` returns ``dL/dz_l`` and
    ``dL/dW_l`` without touching the parameters' ``.grad``, and one more backward
    pass, through the activations alone, gives the derivatives ``f'(z_l)``. Taught in
    chapter 8.

    Parameters
    ----------
    model : torch.nn.Sequential
    X : array or tensor of shape (batch, n_in)
    y : integer labels of shape (batch,)

    Returns
    -------
    LayerGradients
    """
    import torch

    linears, acts = _chain_layers(model)
    dtype = linears[0].weight.dtype
    X = torch.as_tensor(as_float_array(X, "X", ndim=2), dtype=dtype)
    if X.shape[1] != linears[0].in_features:
        raise ValueError(f"X must have {linears[0].in_features} columns, got {X.shape[1]}")
    y = torch.as_tensor(
        as_labels(np.asarray(y), "y", n=X.shape[0], allowed=range(linears[-1].out_features))
    )
    work = X.shape[0] * max(linear.weight.numel() for linear in linears)
    with limited_threads(work):  # a chain of small matrix products: one thread is fastest
        return _layer_gradients(linears, acts, X, y)


def _per_tensor(tensors, reduce) -> np.ndarray:
    """``reduce`` (which maps a stack of tensors to one number each) applied to each tensor:
    one call on the whole stack when their shapes agree."""
    import torch

    if len({tuple(t.shape) for t in tensors}) == 1:
        return reduce(torch.stack(tensors)).numpy()
    return np.array([reduce(t[None]).item() for t in tensors])


def _derivatives(acts, pre) -> list:
    """``f'(z_l)`` for every layer: for an elementwise ``f``, the gradient of ``sum f(z)`` is
    ``f'(z)``, so one backward pass through the activations gives them all."""
    import torch

    pre = [z.detach().requires_grad_() for z in pre]
    with torch.enable_grad():
        total = sum(act(z).sum() for act, z in zip(acts, pre, strict=True))
        return list(torch.autograd.grad(total, pre))


def _layer_gradients(linears, acts, X, y) -> LayerGradients:
    """The measurement of :func:`layer_gradients` (inputs already validated)."""
    import torch

    pre, h = [], X
    for linear, act in zip(linears[:-1], acts, strict=True):
        pre.append(linear(h))
        h = act(pre[-1])
    logits = linears[-1](h)
    loss = torch.nn.functional.cross_entropy(logits, y, reduction="sum")
    weights = [linear.weight for linear in linears]
    grads = torch.autograd.grad(loss, [*pre, logits, *weights])
    depth = len(pre)
    with torch.no_grad():
        slopes = _derivatives(acts, pre)
        norms = _per_tensor(grads[: depth + 1], lambda g: g.pow(2).sum(-1).mean(-1).sqrt())
        return LayerGradients(
            grad_norms=norms[:depth],
            output_grad_norm=float(norms[depth]),
            weight_grad_norms=_per_tensor(
                grads[depth + 1 :], lambda g: g.pow(2).sum((-2, -1)).sqrt()
            ),
            mean_sq_derivative=_per_tensor(slopes, lambda d: d.pow(2).mean((-2, -1))),
            weight_factors=_per_tensor(weights, lambda w: w.pow(2).sum((-2, -1)) / w.shape[-2]),
        )


def _random_batch(width: int, batch: int, n_out: int, seed: int):
    rng = np.random.default_rng(seed + 1)
    return rng.standard_normal((batch, width)), rng.integers(0, n_out, size=batch)


def gradient_profile(
    activation: str,
    depth: int,
    gain: float = 1.0,
    *,
    width: int = 128,
    batch: int = 64,
    n_out: int = 10,
    seed: int = 0,
) -> LayerGradients:
    """:func:`layer_gradients` of a fresh :func:`scaled_mlp` on standard normal inputs.

    The inputs have ``width`` coordinates and random labels, all drawn from
    ``seed`` (the network's weights too), in float64. Taught in chapter 8.
    """
    seed = check_seed(seed)
    batch = check_int(batch, "batch", low=1)
    model = scaled_mlp(activation, depth, width, gain, n_out=n_out, seed=seed)
    return layer_gradients(model, *_random_batch(model[0].in_features, batch, n_out, seed))


@dataclass(frozen=True)
class GainSweep:
    """What :func:`gain_sweep` measured.

    Attributes
    ----------
    activation : str
    gains : ndarray of shape (n_gains,)
    profiles : list of list of LayerGradients
        ``profiles[s][k]``: seed ``s`` at gain ``gains[k]``.
    """

    activation: str
    gains: np.ndarray
    profiles: list

    @property
    def factors(self) -> np.ndarray:
        """Measured :func:`per_layer_factor`, shape (n_seeds, n_gains)."""
        return np.array([[p.per_layer_factor for p in row] for row in self.profiles])


def gain_sweep(
    activation: str,
    gains,
    depth: int,
    *,
    width: int = 64,
    batch: int = 32,
    n_seeds: int = 5,
) -> GainSweep:
    """:func:`gradient_profile` over a grid of gains and seeds ``0..n_seeds - 1``.

    Each seed's network is built once and its weights rescaled from gain to gain,
    so every gain sees the same random directions and the same batch: the curves
    differ only by the scale. Taught in chapter 8.
    """
    import torch

    gains = as_float_array(gains, "gains", ndim=1)
    if np.any(gains <= 0):
        raise ValueError(f"gains must be positive, got {gains.tolist()}")
    n_seeds = check_int(n_seeds, "n_seeds", low=1)
    batch = check_int(batch, "batch", low=1)
    profiles = []
    for seed in range(n_seeds):
        model = scaled_mlp(activation, depth, width, 1.0, seed=seed)
        X, y = _random_batch(width, batch, model[-1].out_features, seed)
        row, current = [], 1.0
        for gain in gains:
            with torch.no_grad():
                for layer in model[0::2]:
                    layer.weight.mul_(gain / current)
            current = gain
            row.append(layer_gradients(model, X, y))
        profiles.append(row)
    return GainSweep(activation, gains, profiles)


# ------------------------------------------------------------------------- Jacobian products


def layer_jacobians(model, x) -> list:
    """The Jacobian of every block of ``model`` at every example of ``x``.

    A block is a ``Linear`` layer followed by its activation (the last block is the
    output ``Linear`` alone), so block ``l`` has Jacobian ``J_l = diag(f'(z_l)) W_l``.
    Computed with ``torch.func.vmap(torch.func.jacrev(block))``: one call per block,
    vectorized over the examples. Taught in chapter 8.

    Returns
    -------
    list of torch.Tensor
        ``J_l`` of shape (batch, fan_out, fan_in), first block first.
    """
    import torch
    from torch import nn

    linears, acts = _chain_layers(model)
    x = torch.as_tensor(as_float_array(x, "x", ndim=2), dtype=linears[0].weight.dtype)
    blocks = [nn.Sequential(lin, act) for lin, act in zip(linears[:-1], acts, strict=True)]
    blocks.append(linears[-1])
    jacobians, h = [], x
    with torch.no_grad():
        for block in blocks:
            jacobians.append(torch.func.vmap(torch.func.jacrev(block))(h))
            h = block(h)
    return jacobians


def chain_product(jacobians: Sequence) -> object:
    """``J_L ... J_2 J_1`` for Jacobians listed first block first (batched: (batch, m, n)).

    Works for NumPy arrays and torch tensors alike (``@`` broadcasts over the batch).
    Taught in chapter 8.
    """
    if isinstance(jacobians, str | bytes) or not isinstance(jacobians, Sequence) or not jacobians:
        raise ValueError("jacobians must be a non-empty list of matrices, first layer first")
    product = jacobians[0]
    for k, J in enumerate(jacobians[1:], start=1):
        if J.shape[-1] != product.shape[-2]:
            raise ValueError(
                f"jacobians[{k}] has {J.shape[-1]} columns but the product below it has "
                f"{product.shape[-2]} rows"
            )
        product = J @ product
    return product


# ------------------------------------------------------------------ spectral radius vs norm


def _square(A, name: str = "A") -> np.ndarray:
    A = as_float_array(A, name, ndim=2)
    if A.shape[0] != A.shape[1]:
        raise ValueError(f"{name} must be square, got shape {A.shape}")
    return A


def spectral_radius(A) -> float:
    """``rho(A) = max |lambda_i(A)|``, the largest eigenvalue magnitude of a square matrix.

    Taught in chapter 8.
    """
    return float(np.max(np.abs(np.linalg.eigvals(_square(A)))))


def largest_singular_value(A) -> float:
    """``sigma_max(A) = max ||A v|| / ||v||``, the spectral norm (any rectangular matrix).

    Taught in chapter 8.
    """
    return float(np.linalg.norm(as_float_array(A, "A", ndim=2), 2))


def power_norms(A, k_max: int) -> np.ndarray:
    """``||A^k||_2`` for ``k = 0, 1, ..., k_max`` (``||A^0|| = 1``).

    The powers are rescaled as they are formed, so the norms stay accurate far
    below and above the floating-point range of ``A^k`` itself (values that leave
    float64 become 0 or inf). Taught in chapter 8.
    """
    A = _square(A)
    k_max = check_int(k_max, "k_max", low=0, high=100_000)
    log_norms = np.zeros(k_max + 1)
    P, log_scale = np.eye(A.shape[0]), 0.0
    for k in range(1, k_max + 1):
        P = A @ P
        size = np.linalg.norm(P, 2)
        if size == 0:
            log_norms[k:] = -np.inf
            break
        log_scale += math.log(size)
        P /= size
        log_norms[k] = log_scale
    with np.errstate(over="ignore"):
        return np.exp(log_norms)


# ---------------------------------------------------------------------------- IEEE 754 counts


def nonfinite_counts(values) -> dict[str, int]:
    """How many entries of ``values`` (an array, a tensor, or a list of them) are finite, inf, NaN.

    Taught in chapter 8.
    """
    arrays = values if isinstance(values, list | tuple) else [values]
    counts = {"finite": 0, "inf": 0, "nan": 0}
    for value in arrays:
        a = _plain_array(value, "values")
        counts["nan"] += int(np.isnan(a).sum())
        counts["inf"] += int(np.isinf(a).sum())
        counts["finite"] += int(np.isfinite(a).sum())
    return counts


def module_outputs(model, X) -> list[np.ndarray]:
    """The output of every module of a ``torch.nn.Sequential`` on ``X``, as NumPy arrays.

    No gradient is recorded and NaN or inf values pass through untouched, so the
    list shows where a forward pass first overflows. Taught in chapter 8.
    """
    import torch
    from torch import nn

    if not isinstance(model, nn.Sequential):
        raise TypeError(f"model must be a torch.nn.Sequential, got {type(model).__name__}")
    dtype = next(model.parameters()).dtype
    h = torch.as_tensor(as_float_array(X, "X", ndim=2), dtype=dtype)
    outputs = []
    with torch.no_grad():
        for module in model:
            h = module(h)
            outputs.append(h.numpy().copy())
    return outputs


# --------------------------------------------------------------------------- gradient clipping


def _plain_array(value, name: str) -> np.ndarray:
    """A NumPy view of an array or a CPU tensor; NaN and inf are allowed (they are the subject)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    a = np.asarray(value)
    if a.dtype == bool or not np.issubdtype(a.dtype, np.floating):
        raise TypeError(f"{name} must hold floating-point arrays, got dtype {a.dtype}")
    return a


def _grad_list(grads, name: str = "grads") -> list[np.ndarray]:
    if isinstance(grads, np.ndarray) or hasattr(grads, "detach"):
        grads = [grads]
    if isinstance(grads, str | bytes) or not isinstance(grads, Sequence):
        raise TypeError(f"{name} must be an array or a list of arrays, got {type(grads).__name__}")
    return [_plain_array(g, f"{name}[{k}]") for k, g in enumerate(grads)]


def _norm_type(norm_type) -> float:
    if isinstance(norm_type, bool) or not isinstance(norm_type, numbers.Real):
        raise TypeError(f"norm_type must be a real number or inf, got {norm_type!r}")
    norm_type = float(norm_type)
    if not norm_type > 0:
        raise ValueError(f"norm_type must be > 0 (1, 2, ..., or inf), got {norm_type}")
    return norm_type


def global_norm(grads, norm_type: float = 2.0) -> float:
    """The norm of all gradients joined into one vector, as ``clip_grad_norm_`` computes it.

    That is the ``norm_type``-norm of the per-array norms (for ``inf``, the
    largest magnitude anywhere). NaN or inf entries give a NaN or inf result.
    Computed in float64. Taught in chapter 8.
    """
    return _global_norm(_grad_list(grads), _norm_type(norm_type))


def _global_norm(arrays: list[np.ndarray], p: float) -> float:
    """:func:`global_norm` of already validated arrays."""
    if not arrays:
        return 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        flat = [a.ravel().astype(np.float64) for a in arrays]
        if p == 2.0:  # the common case, as one sum of squares
            return math.sqrt(sum(float(x @ x) for x in flat))
        norms = np.array([np.linalg.norm(x, p) if x.size else 0.0 for x in flat])
        return float(np.linalg.norm(norms, p))


def _clip_scale(max_norm: float, total: float) -> float:
    """torch's factor ``min(1, max_norm / (total + 1e-6))`` (NaN for a NaN total)."""
    if math.isnan(total):
        return math.nan
    return min(1.0, max_norm / (total + 1e-6))


def clip_by_norm(grads, max_norm: float, norm_type: float = 2.0) -> tuple[list[np.ndarray], float]:
    """Rescale all gradients together so that their :func:`global_norm` is at most ``max_norm``.

    Every array is multiplied by ``min(1, max_norm / (total + 1e-6))``, as
    ``torch.nn.utils.clip_grad_norm_`` does (with its default
    ``error_if_nonfinite=False``): the direction of the joint gradient is kept, only
    its length is capped. If the total norm is inf, the factor is 0 and inf entries
    become NaN, as in torch: clipping cannot repair a gradient that has already
    overflowed. One difference: the total is computed in float64, so float32
    gradients whose squares overflow float32 (entries beyond about ``1e19``) are
    still clipped to ``max_norm``, where torch's float32 total is inf and the
    gradient is zeroed. Taught in chapter 8.

    Parameters
    ----------
    grads : array or list of arrays (NumPy, or CPU torch tensors, read only)
    max_norm : float
        Largest allowed norm, > 0.
    norm_type : float
        The p of the p-norm, > 0, or ``math.inf``.

    Returns
    -------
    clipped : list of ndarray
        New arrays, in the dtype of the inputs.
    total : float
        The norm before clipping.
    """
    arrays = _grad_list(grads)
    max_norm = check_real(max_norm, "max_norm", low=0.0, low_open=True)
    total = global_norm(arrays, norm_type)
    scale = _clip_scale(max_norm, total)
    with np.errstate(invalid="ignore"):
        return [a * a.dtype.type(scale) for a in arrays], total


def clip_by_value(grads, clip_value: float) -> list[np.ndarray]:
    """Clamp every gradient entry into ``[-clip_value, clip_value]``, as ``clip_grad_value_`` does.

    Unlike :func:`clip_by_norm` this changes the gradient's direction: large
    entries are cut, small ones kept. NaN entries stay NaN. Taught in chapter 8.
    """
    arrays = _grad_list(grads)
    c = check_real(clip_value, "clip_value", low=0.0, low_open=True)
    return [np.clip(a, -c, c) for a in arrays]


def _grad_views(parameters) -> list[np.ndarray]:
    """NumPy views (shared memory) of the ``.grad`` of torch parameters or of a module."""
    import torch

    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    elif isinstance(parameters, torch.nn.Module):
        parameters = list(parameters.parameters())
    elif isinstance(parameters, str | bytes) or not hasattr(parameters, "__iter__"):
        raise TypeError(
            "parameters must be a module, a tensor or an iterable of tensors, got "
            f"{type(parameters).__name__}"
        )
    else:
        parameters = list(parameters)
    for k, p in enumerate(parameters):
        if not isinstance(p, torch.Tensor):
            raise TypeError(f"parameters[{k}] must be a torch tensor, got {type(p).__name__}")
        if p.device.type != "cpu":
            raise ValueError(f"parameters[{k}] must live on the CPU, got {p.device}")
    views = [p.grad.detach().numpy() for p in parameters if p.grad is not None]
    for k, v in enumerate(views):
        _plain_array(v, f"gradient {k}")
    return views


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0) -> float:
    """:func:`clip_by_norm` applied in place to the ``.grad`` of torch parameters (or a module).

    Same contract as ``torch.nn.utils.clip_grad_norm_``: parameters without a
    gradient are skipped, and the total norm before clipping is returned (here as
    a float). Taught in chapter 8.
    """
    views = _grad_views(parameters)
    max_norm = check_real(max_norm, "max_norm", low=0.0, low_open=True)
    return _clip_views_by_norm(views, max_norm, _norm_type(norm_type))


def _clip_views_by_norm(views: list[np.ndarray], max_norm: float, p: float) -> float:
    """Scale the arrays in place as :func:`clip_by_norm` does; return the total norm."""
    total = _global_norm(views, p)
    scale = _clip_scale(max_norm, total)
    with np.errstate(invalid="ignore"):
        for v in views:
            np.multiply(v, v.dtype.type(scale), out=v)
    return total


def clip_grad_value_(parameters, clip_value: float) -> None:
    """:func:`clip_by_value` applied in place to the ``.grad`` of torch parameters (or a module).

    Same contract as ``torch.nn.utils.clip_grad_value_``. Taught in chapter 8.
    """
    views = _grad_views(parameters)
    c = check_real(clip_value, "clip_value", low=0.0, low_open=True)
    for v in views:
        np.clip(v, -c, c, out=v)


# ---------------------------------------------------------------------------------- training


@dataclass(frozen=True)
class ClippedRun:
    """What :func:`train_with_clipping` recorded.

    Attributes
    ----------
    losses : ndarray
        The mini-batch loss of every step taken (a diverged run ends with the
        step whose loss was non-finite or exploded).
    grad_norms : ndarray
        The global gradient norm of every step, before clipping.
    diverged : bool
        True if the loss became NaN or infinite, or exceeded
        :data:`dl_course.training.DIVERGENCE_FACTOR` times the initial loss.
    initial_loss : float
        The loss on the whole training set before the first step.
    """

    losses: np.ndarray
    grad_norms: np.ndarray
    diverged: bool
    initial_loss: float


def train_with_clipping(
    model,
    X,
    y,
    *,
    lr: float,
    steps: int,
    batch_size: int = 64,
    max_norm: float | None = None,
    clip_value: float | None = None,
    seed: int = 0,
) -> ClippedRun:
    """Train a torch classifier with plain SGD, clipping each step's gradient if asked.

    Each step draws a mini-batch (shuffled epochs from a NumPy generator seeded
    with ``seed``), backpropagates the mean cross-entropy, clips the gradient by
    global norm (``max_norm``, with :func:`clip_grad_norm_`) or by value
    (``clip_value``, with :func:`clip_grad_value_`) or not at all, and updates
    ``p -= lr * p.grad``. Training stops at the first step whose loss is NaN,
    infinite, or above ``DIVERGENCE_FACTOR`` times the initial loss. Taught in
    chapter 8.

    Returns
    -------
    ClippedRun
    """
    import torch

    check_module(model)
    params = list(model.parameters())
    dtype = params[0].dtype
    X_t = torch.as_tensor(as_float_array(X, "X", ndim=2), dtype=dtype)
    y_t = torch.as_tensor(as_labels(np.asarray(y), "y", n=X_t.shape[0]))
    lr = check_real(lr, "lr", low=0.0, low_open=True)
    steps = check_int(steps, "steps", low=1)
    batch_size = check_int(batch_size, "batch_size", low=1)
    if max_norm is not None and clip_value is not None:
        raise ValueError("give max_norm (clip by norm) or clip_value (clip by value), not both")
    if max_norm is not None:
        max_norm = check_real(max_norm, "max_norm", low=0.0, low_open=True)
    if clip_value is not None:
        clip_value = check_real(clip_value, "clip_value", low=0.0, low_open=True)
    rng = np.random.default_rng(check_seed(seed))
    with limited_threads(batch_size * sum(p.numel() for p in params)):
        losses, norms, diverged, initial = _clipped_sgd(
            model, params, X_t, y_t, lr, steps, batch_size, max_norm, clip_value, rng
        )
    return ClippedRun(np.array(losses), np.array(norms), diverged, initial)


def _clipped_sgd(model, params, X_t, y_t, lr, steps, batch_size, max_norm, clip_value, rng):
    """The step loop of :func:`train_with_clipping` (inputs already validated)."""
    import torch

    loss_fn = torch.nn.functional.cross_entropy
    with torch.no_grad():
        initial = loss_fn(model(X_t), y_t).item()
    for p in params:  # gradient buffers that stay put, so their NumPy views stay valid
        p.grad = torch.zeros_like(p)
    views = _grad_views(params)
    losses, norms, diverged, order = [], [], False, []
    for _ in range(steps):
        if not order:
            order = batches(len(y_t), batch_size, rng)[::-1]
        index = order.pop()
        loss = loss_fn(model(X_t[index]), y_t[index])
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g in zip(params, grads, strict=True):
                p.grad.copy_(g)
        losses.append(loss.item())
        if max_norm is not None:
            norms.append(_clip_views_by_norm(views, max_norm, 2.0))
        else:
            norms.append(_global_norm(views, 2.0))
            for v in views if clip_value is not None else []:
                np.clip(v, -clip_value, clip_value, out=v)
        if not math.isfinite(losses[-1]) or losses[-1] > DIVERGENCE_FACTOR * initial:
            diverged = True
            break
        with torch.no_grad():
            for p in params:
                p.sub_(p.grad, alpha=lr)
    for p in params:
        p.grad = None
    return losses, norms, diverged, initial
