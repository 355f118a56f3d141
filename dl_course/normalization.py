"""Normalization layers from scratch: BatchNorm, LayerNorm and RMSNorm (chapter 10).

The NumPy part needs nothing but NumPy:

- :func:`batch_norm` (training mode, statistics over the batch axis 0),
  :func:`layer_norm` and :func:`rms_norm` (statistics over the last axis) agree
  with ``torch.nn.functional.batch_norm(..., training=True)``, ``layer_norm`` and
  ``rms_norm`` given the same ``eps``;
- :func:`batch_norm_backward`, :func:`layer_norm_backward` and
  :func:`rms_norm_backward` are their closed-form gradients with respect to the
  input and the learnable scale and shift;
- :class:`BatchNorm` is the layer with running statistics, equal to
  ``torch.nn.BatchNorm1d`` in train and eval mode (momentum included).

The torch part (torch is imported by the functions that use it):

- :func:`build_normalized_mlp` builds an MLP with a BatchNorm, LayerNorm or
  RMSNorm layer after every hidden linear layer;
- :func:`train_together` trains many such networks of one architecture side by
  side, as one stacked computation: for each network it does exactly what
  :func:`dl_course.training.train_classifier` does, several times faster for
  the seed and learning-rate sweeps of chapter 10;
- :func:`layer_statistics` (how alike different examples look at each layer, and
  how much one example depends on its batch) and :func:`train_eval_gap` (how far
  BatchNorm's training-mode outputs are from its eval-mode ones) measure what the
  normalizations do inside a network, leaving it untouched.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from dl_course._checks import (
    as_float_array,
    as_labels,
    check_bool,
    check_int,
    check_real,
    check_seed,
)
from dl_course._threads import limited_threads

#: The normalizations :func:`build_normalized_mlp` offers (``None``: no normalization).
NORMS = (None, "batch", "layer", "rms")
#: Default ``eps`` of each normalization, as in :mod:`torch.nn` (RMSNorm: the API's 1e-6).
DEFAULT_EPS = {"batch": 1e-5, "layer": 1e-5, "rms": 1e-6}


# -- NumPy: the three normalizations -----------------------------------------------------------


def _check_eps(eps) -> float:
    eps = check_real(eps, "eps", low=0.0, low_open=True)
    return eps


def _check_input(x, name: str, *, batch: bool) -> np.ndarray:
    """``x`` as a finite float array: 2-D (batch, features) for BatchNorm, >= 1-D otherwise."""
    if batch:
        x = as_float_array(x, name, ndim=2)
        if x.shape[0] < 2:
            raise ValueError(
                f"{name} must hold a batch of at least 2 examples for batch_norm in training "
                f"mode, got shape {x.shape}: with one example every feature's batch variance is "
                f"0, x - mean is 0 and the output is beta whatever the input (torch's "
                f"BatchNorm1d refuses this too: 'Expected more than 1 value per channel when "
                f"training'). Use layer_norm or rms_norm, or a BatchNorm in eval mode."
            )
        return x
    x = as_float_array(x, name)
    if x.ndim < 1:
        raise ValueError(f"{name} must be at least 1-D (..., features), got a scalar")
    return x


def _check_param(value, name: str, n_features: int) -> np.ndarray:
    """A per-feature parameter (``gamma``, ``beta``) of shape ``(n_features,)``."""
    value = as_float_array(value, name)
    if value.shape != (n_features,):
        raise ValueError(
            f"{name} must have shape ({n_features},), one entry per feature of x (its last "
            f"axis), got shape {value.shape}"
        )
    return value


def _check_grad(dy, x: np.ndarray) -> np.ndarray:
    dy = as_float_array(dy, "dy")
    if dy.shape != x.shape:
        raise ValueError(f"dy must have the shape of x, {x.shape}, got {dy.shape}")
    return dy


def _standardize(x: np.ndarray, axis: int, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """``(x - mean) / sqrt(var + eps)`` along ``axis`` (biased variance) and that denominator."""
    mean = x.mean(axis=axis, keepdims=True)
    centered = x - mean
    scale = np.sqrt((centered**2).mean(axis=axis, keepdims=True) + eps)
    return centered / scale, scale


def _rms_scale(x: np.ndarray, eps: float) -> np.ndarray:
    """``sqrt(mean(x**2) + eps)`` over the last axis (kept)."""
    return np.sqrt((x**2).mean(axis=-1, keepdims=True) + eps)


def batch_norm(x, gamma, beta, eps: float = 1e-5) -> np.ndarray:
    """Batch normalization in training mode: standardize each feature over the batch.

    For a batch ``x`` of shape ``(N, C)`` and each feature ``j``,

    ``y[i, j] = gamma[j] * (x[i, j] - mu[j]) / sqrt(var[j] + eps) + beta[j]``,

    with ``mu`` and ``var`` the mean and the *biased* variance (divisor ``N``) of
    column ``j``. Equal to ``torch.nn.functional.batch_norm(x, None, None, gamma,
    beta, training=True, eps=eps)``.

    Parameters
    ----------
    x : array_like of shape (N, C)
        A batch of ``N >= 2`` examples with ``C`` features. With ``N = 1`` the batch
        variance is 0 and the output would be ``beta`` whatever ``x`` is, so this is
        a ``ValueError`` (torch raises for it too).
    gamma, beta : array_like of shape (C,)
        The learnable scale and shift.
    eps : float
        Added to the variance before the square root; must be > 0.

    Returns
    -------
    ndarray of shape (N, C)
        Taught in chapter 10.
    """
    x = _check_input(x, "x", batch=True)
    gamma = _check_param(gamma, "gamma", x.shape[1])
    beta = _check_param(beta, "beta", x.shape[1])
    x_hat, _ = _standardize(x, 0, _check_eps(eps))
    return gamma * x_hat + beta


def layer_norm(x, gamma, beta, eps: float = 1e-5) -> np.ndarray:
    """Layer normalization: standardize each example over its features (the last axis).

    ``y = gamma * (x - mu) / sqrt(var + eps) + beta`` with the mean ``mu`` and
    biased variance ``var`` of each example's ``C`` features; independent of the
    other examples in the batch. Equal to ``torch.nn.functional.layer_norm(x,
    (C,), gamma, beta, eps)``.

    Parameters
    ----------
    x : array_like of shape (..., C)
        One example (1-D) or any batch of them.
    gamma, beta : array_like of shape (C,)
        The learnable scale and shift.
    eps : float
        Added to the variance before the square root; must be > 0.

    Returns
    -------
    ndarray of the shape of ``x``
        Taught in chapter 10.
    """
    x = _check_input(x, "x", batch=False)
    gamma = _check_param(gamma, "gamma", x.shape[-1])
    beta = _check_param(beta, "beta", x.shape[-1])
    x_hat, _ = _standardize(x, -1, _check_eps(eps))
    return gamma * x_hat + beta


def rms_norm(x, gamma, eps: float = 1e-6) -> np.ndarray:
    """Root-mean-square normalization: rescale each example by the RMS of its features.

    ``y = gamma * x / sqrt(mean(x**2) + eps)`` over the last axis: no mean is
    subtracted and there is no shift. Equal to ``torch.nn.functional.rms_norm(x,
    (C,), gamma, eps)``.

    Parameters
    ----------
    x : array_like of shape (..., C)
        One example (1-D) or any batch of them.
    gamma : array_like of shape (C,)
        The learnable scale.
    eps : float
        Added to the mean square before the square root; must be > 0.

    Returns
    -------
    ndarray of the shape of ``x``
        Taught in chapter 10.
    """
    x = _check_input(x, "x", batch=False)
    gamma = _check_param(gamma, "gamma", x.shape[-1])
    return gamma * x / _rms_scale(x, _check_eps(eps))


# -- NumPy: closed-form gradients --------------------------------------------------------------


def _standardize_backward(
    dx_hat: np.ndarray, x_hat: np.ndarray, scale: np.ndarray, axis: int
) -> np.ndarray:
    """Gradient through ``x_hat = (x - mean) / scale`` along ``axis`` (chapter 10, eq. bn-dx)."""
    mean_dx_hat = dx_hat.mean(axis=axis, keepdims=True)
    mean_dx_hat_x_hat = (dx_hat * x_hat).mean(axis=axis, keepdims=True)
    return (dx_hat - mean_dx_hat - x_hat * mean_dx_hat_x_hat) / scale


def _leading_sum(values: np.ndarray) -> np.ndarray:
    """Sum over every axis but the last (the per-feature parameter gradients)."""
    return values.reshape(-1, values.shape[-1]).sum(axis=0)


def batch_norm_backward(dy, x, gamma, eps: float = 1e-5) -> tuple[np.ndarray, ...]:
    """The gradients of :func:`batch_norm` (training mode), in closed form.

    Given ``dy``, the gradient of a loss with respect to the output ``y =
    batch_norm(x, gamma, beta, eps)``, returns ``(dx, dgamma, dbeta)``:

    ``dx = (dx_hat - mean(dx_hat) - x_hat * mean(dx_hat * x_hat)) / sqrt(var + eps)``

    with ``dx_hat = gamma * dy``, means over the batch axis, ``dgamma =
    sum(dy * x_hat)`` and ``dbeta = sum(dy)`` over the batch. The output does
    not depend on ``beta``, so it is not an argument. Taught in chapter 10,
    where it is checked against torch's autograd.
    """
    x = _check_input(x, "x", batch=True)
    dy = _check_grad(dy, x)
    gamma = _check_param(gamma, "gamma", x.shape[1])
    x_hat, scale = _standardize(x, 0, _check_eps(eps))
    dx = _standardize_backward(gamma * dy, x_hat, scale, 0)
    return dx, (dy * x_hat).sum(axis=0), dy.sum(axis=0)


def layer_norm_backward(dy, x, gamma, eps: float = 1e-5) -> tuple[np.ndarray, ...]:
    """The gradients ``(dx, dgamma, dbeta)`` of :func:`layer_norm`, in closed form.

    The formula of :func:`batch_norm_backward` with the means taken over the
    last axis (the features of one example) instead of the batch; ``dgamma`` and
    ``dbeta`` sum over every other axis. Taught in chapter 10.
    """
    x = _check_input(x, "x", batch=False)
    dy = _check_grad(dy, x)
    gamma = _check_param(gamma, "gamma", x.shape[-1])
    x_hat, scale = _standardize(x, -1, _check_eps(eps))
    dx = _standardize_backward(gamma * dy, x_hat, scale, -1)
    return dx, _leading_sum(dy * x_hat), _leading_sum(dy)


def rms_norm_backward(dy, x, gamma, eps: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """The gradients ``(dx, dgamma)`` of :func:`rms_norm`, in closed form.

    With ``r = sqrt(mean(x**2) + eps)``, ``x_hat = x / r`` and ``dx_hat = gamma *
    dy``: ``dx = (dx_hat - x_hat * mean(dx_hat * x_hat)) / r`` (means over the last
    axis) and ``dgamma = sum(dy * x_hat)`` over the other axes. Taught in chapter 10.
    """
    x = _check_input(x, "x", batch=False)
    dy = _check_grad(dy, x)
    gamma = _check_param(gamma, "gamma", x.shape[-1])
    scale = _rms_scale(x, _check_eps(eps))
    x_hat = x / scale
    dx_hat = gamma * dy
    dx = (dx_hat - x_hat * (dx_hat * x_hat).mean(axis=-1, keepdims=True)) / scale
    return dx, _leading_sum(dy * x_hat)


# -- NumPy: the BatchNorm layer with running statistics ------------------------------------------


@dataclass
class BatchNorm:
    """A batch-normalization layer with running statistics, like ``torch.nn.BatchNorm1d``.

    In training mode (the default) a call normalizes with the batch's own mean
    and biased variance (:func:`batch_norm`) and updates the running estimates,

    ``running_mean = (1 - momentum) * running_mean + momentum * mean``,
    ``running_var = (1 - momentum) * running_var + momentum * var_unbiased``,

    where ``var_unbiased`` divides by ``N - 1``: torch normalizes with the biased
    variance but tracks the unbiased one. With ``momentum=None`` the running
    statistics are the plain averages over all batches seen (torch's cumulative
    moving average). In eval mode (:meth:`eval`) a call normalizes with the
    running statistics, so an example's output no longer depends on the batch,
    and a batch of one example is fine.

    Parameters
    ----------
    num_features : int
        The number of features ``C`` of the inputs ``(N, C)``.
    eps : float
        Added to the variance before the square root; > 0.
    momentum : float or None
        Weight of the newest batch in the running statistics, in (0, 1]; ``None``
        for the cumulative average.

    Attributes
    ----------
    gamma, beta : ndarray of shape (C,)
        Scale and shift, initialized to ones and zeros (as in torch).
    running_mean, running_var : ndarray of shape (C,)
        Start at zeros and ones (as in torch).
    num_batches_tracked : int
        Training-mode calls so far.
    training : bool

    Taught in chapter 10.
    """

    num_features: int
    eps: float = 1e-5
    momentum: float | None = 0.1
    gamma: np.ndarray = field(init=False)
    beta: np.ndarray = field(init=False)
    running_mean: np.ndarray = field(init=False)
    running_var: np.ndarray = field(init=False)
    num_batches_tracked: int = field(init=False, default=0)
    training: bool = field(init=False, default=True)

    def __post_init__(self):
        self.num_features = check_int(self.num_features, "num_features", low=1)
        self.eps = _check_eps(self.eps)
        if self.momentum is not None:
            self.momentum = check_real(self.momentum, "momentum", low=0.0, high=1.0, low_open=True)
        self.gamma = np.ones(self.num_features)
        self.beta = np.zeros(self.num_features)
        self.running_mean = np.zeros(self.num_features)
        self.running_var = np.ones(self.num_features)

    def train(self, mode: bool = True) -> BatchNorm:
        """Switch to training mode (or to eval mode with ``mode=False``); returns the layer."""
        self.training = check_bool(mode, "mode")
        return self

    def eval(self) -> BatchNorm:
        """Switch to eval mode: normalize with the running statistics; returns the layer."""
        return self.train(False)

    def __call__(self, x) -> np.ndarray:
        """Normalize the batch ``x`` of shape ``(N, C)`` (``N >= 2`` in training mode)."""
        x = (
            _check_input(x, "x", batch=self.training)
            if self.training
            else as_float_array(x, "x", ndim=2)
        )
        if x.shape[1] != self.num_features:
            raise ValueError(
                f"x must have {self.num_features} features (columns), got shape {x.shape}"
            )
        if not self.training:
            x_hat = (x - self.running_mean) / np.sqrt(self.running_var + self.eps)
            return self.gamma * x_hat + self.beta
        self.num_batches_tracked += 1
        weight = 1.0 / self.num_batches_tracked if self.momentum is None else self.momentum
        n = x.shape[0]
        mean, var = x.mean(axis=0), x.var(axis=0)
        self.running_mean = (1 - weight) * self.running_mean + weight * mean
        self.running_var = (1 - weight) * self.running_var + weight * var * n / (n - 1)
        return batch_norm(x, self.gamma, self.beta, self.eps)


# -- torch: networks with normalization layers -----------------------------------------------


def build_normalized_mlp(
    sizes: Sequence[int],
    norm: str | None = "batch",
    *,
    activation: str = "relu",
    init: str = "he",
    bias: bool = True,
    seed: int = 0,
):
    """An MLP with a normalization layer between each hidden linear layer and its activation.

    ``Linear -> norm -> activation`` blocks and a final ``Linear``, with ``norm``
    one of :data:`NORMS`: ``"batch"`` (``nn.BatchNorm1d``, eps 1e-5), ``"layer"``
    (``nn.LayerNorm``, eps 1e-5), ``"rms"`` (``nn.RMSNorm``, eps 1e-6) or ``None``.
    The linear layers are those of :func:`dl_course.mlp.build_mlp` with the same
    arguments, so networks that differ only in ``norm`` start from the same weights.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths, input first and output last.
    norm : {"batch", "layer", "rms", None}
    activation, init, bias, seed
        As in :func:`dl_course.mlp.build_mlp` (``init="torch"`` keeps
        ``nn.Linear``'s own initialization, biases included).

    Returns
    -------
    torch.nn.Sequential
        Taught in chapter 10.
    """
    from torch import nn

    from dl_course.mlp import build_mlp

    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if norm in (None, "batch", "layer"):
        return build_mlp(sizes, activation, init=init, norm=norm, bias=bias, seed=seed)
    plain = build_mlp(sizes, activation, init=init, norm=None, bias=bias, seed=seed)
    layers = []
    for k, module in enumerate(plain):
        layers.append(module)
        if isinstance(module, nn.Linear) and k < len(plain) - 1:
            layers.append(nn.RMSNorm(module.out_features, eps=DEFAULT_EPS["rms"]))
    return nn.Sequential(*layers)


# -- torch: many networks trained side by side ---------------------------------------------------

_ELEMENTWISE = ("ReLU", "Tanh", "Sigmoid", "LeakyReLU", "ELU", "GELU", "SiLU", "Identity")


@dataclass
class _Layer:
    """One layer of a stack of identical networks: its kind and stacked tensors."""

    kind: str  # "linear", "batch", "layer", "rms" or "act"
    params: list  # stacked parameters (leading axis: the network), or []
    buffers: list = field(default_factory=list)  # BatchNorm running mean and var
    module: object = None  # the first network's module (activations, options)


def _stack_layers(models: Sequence) -> list[_Layer]:
    """Check that ``models`` share one architecture; stack their parameters layer by layer."""
    import torch
    from torch import nn

    first = models[0]
    if not isinstance(first, nn.Sequential):
        raise TypeError(f"models must be torch.nn.Sequential networks, got {type(first).__name__}")
    for k, model in enumerate(models):
        same = isinstance(model, nn.Sequential) and len(model) == len(first)
        if not same or any(
            type(a) is not type(b)
            or a.state_dict().keys() != b.state_dict().keys()
            or any(a.state_dict()[n].shape != b.state_dict()[n].shape for n in a.state_dict())
            for a, b in zip(model, first, strict=True)
        ):
            raise ValueError(f"models[{k}] does not have the architecture of models[0]")

    layers = []
    for i, module in enumerate(first):

        def stack(name, i=i):
            return torch.stack([getattr(m[i], name).detach() for m in models]).requires_grad_()

        def buffer(name, i=i):
            return torch.stack([getattr(m[i], name).detach() for m in models]).clone()

        if isinstance(module, nn.Linear):
            names = ["weight"] + (["bias"] if module.bias is not None else [])
            layers.append(_Layer("linear", [stack(n) for n in names], module=module))
        elif isinstance(module, nn.BatchNorm1d):
            if module.momentum is None or not module.affine or not module.track_running_stats:
                raise ValueError(
                    "BatchNorm1d layers must be affine, track running statistics and have "
                    "a float momentum"
                )
            params = [stack("weight"), stack("bias")]
            buffers = [buffer("running_mean"), buffer("running_var")]
            layers.append(_Layer("batch", params, buffers, module))
        elif isinstance(module, nn.LayerNorm | nn.RMSNorm):
            if len(module.normalized_shape) != 1:
                raise ValueError("LayerNorm and RMSNorm must normalize over the last axis only")
            names = [n for n in ("weight", "bias") if getattr(module, n, None) is not None]
            kind = "layer" if isinstance(module, nn.LayerNorm) else "rms"
            layers.append(_Layer(kind, [stack(n) for n in names], module=module))
        elif type(module).__name__ in _ELEMENTWISE:
            layers.append(_Layer("act", [], module=module))
        else:
            raise ValueError(
                f"train_together handles Linear, BatchNorm1d, LayerNorm, RMSNorm and "
                f"elementwise activations {_ELEMENTWISE}, got {type(module).__name__}"
            )
    return layers


def _forward(layers: list[_Layer], h, training: bool, outputs: list | None = None):
    """Run the stacked networks on ``h`` of shape ``(S, B, d)`` or a shared ``(B, d)``.

    If ``outputs`` is a list, the output of every activation layer is appended to it.
    """
    import torch
    import torch.nn.functional as F

    for layer in layers:
        if layer.kind == "linear":
            h = torch.matmul(h, layer.params[0].mT)
            if len(layer.params) > 1:
                h = h + layer.params[1][:, None, :]
        elif layer.kind == "batch":  # one BatchNorm over the S * C channels of the stack
            n_models, n, width = h.shape
            flat = h.transpose(0, 1).reshape(n, n_models * width)
            weight, shift = (p.view(-1) for p in layer.params)
            mean, var = (b.view(-1) for b in layer.buffers)
            module = layer.module
            flat = F.batch_norm(
                flat, mean, var, weight, shift, training, module.momentum, module.eps
            )
            h = flat.view(n, n_models, width).transpose(0, 1)
        elif layer.kind in ("layer", "rms"):
            shape, eps = layer.module.normalized_shape, layer.module.eps
            if layer.kind == "layer":
                h = F.layer_norm(h, shape, None, None, eps)
            else:
                h = F.rms_norm(h, shape, None, eps)
            if layer.params:
                h = h * layer.params[0][:, None, :]
            if len(layer.params) > 1:
                h = h + layer.params[1][:, None, :]
        else:
            h = layer.module(h)
            if outputs is not None:
                outputs.append(h)
    return h


def _random_batches(n: int, batch_size: int, n_batches: int, seed: int, probe: bool):
    """``n_batches`` index rows of ``batch_size`` distinct examples (example 0 first if ``probe``)."""
    rng = np.random.default_rng(seed)
    if probe:
        others = [
            rng.choice(np.arange(1, n), batch_size - 1, replace=False) for _ in range(n_batches)
        ]
        return np.array([np.concatenate([[0], row]) for row in others])
    return np.array([rng.choice(n, batch_size, replace=False) for _ in range(n_batches)])


def _check_batches(X, batch_size, n_batches, seed, name: str = "X"):
    import torch

    X = as_float_array(X, name, ndim=2)
    batch_size = check_int(batch_size, "batch_size", low=2, high=X.shape[0])
    n_batches = check_int(n_batches, "n_batches", low=2)
    seed = check_seed(seed)
    return torch.as_tensor(X, dtype=torch.float32), batch_size, n_batches, seed


@dataclass
class LayerStatistics:
    """What the hidden layers of a network do to batches of inputs (:func:`layer_statistics`).

    Attributes (one entry per hidden activation layer, mean over the batches)
    ----------
    rms : ndarray
        Root mean square of the activations.
    cosine : ndarray
        Mean cosine similarity between the representations of two different
        examples of a batch (1: every example looks the same).
    probe_spread : ndarray
        How much the representation of one fixed example (``X[0]``, put in every
        batch) changes from batch to batch: the standard deviation over batches,
        averaged over units, divided by the RMS of its mean representation. Zero
        (up to round-off) for networks whose layers treat examples separately.
    """

    rms: np.ndarray
    cosine: np.ndarray
    probe_spread: np.ndarray


def layer_statistics(model, X, *, batch_size: int = 64, n_batches: int = 16, seed: int = 0):
    """Push random batches of ``X`` through ``model`` in training mode; summarize each hidden layer.

    Each of the ``n_batches`` batches holds ``X[0]`` (the probe) and
    ``batch_size - 1`` other rows of ``X`` drawn at random. BatchNorm layers use
    the statistics of each batch, as in training; the model, its mode and its
    running statistics are left untouched. ``model`` is a ``torch.nn.Sequential``
    of the kind :func:`train_together` accepts. Returns :class:`LayerStatistics`.
    Taught in chapter 10 (representation collapse, batch dependence).
    """
    import torch

    X_t, batch_size, n_batches, seed = _check_batches(X, batch_size, n_batches, seed)
    layers = _stack_layers([model] * n_batches)
    index = torch.as_tensor(_random_batches(len(X_t), batch_size, n_batches, seed, True))
    with torch.no_grad(), limited_threads(0):
        return _summarize(_forward_outputs(layers, X_t[index]), batch_size)


def _forward_outputs(layers, h) -> list:
    outputs: list = []
    _forward(layers, h, True, outputs)
    return outputs


def _summarize(outputs: list, batch_size: int) -> LayerStatistics:
    """:class:`LayerStatistics` of the activations ``(n_batches, batch_size, width)``."""
    rms, cosine, spread = [], [], []
    for h in outputs:  # (n_batches, batch_size, width)
        rms.append(h.pow(2).mean().sqrt().item())
        unit = h / h.norm(dim=-1, keepdim=True).clamp_min(1e-30)
        total = unit.sum(dim=1).pow(2).sum(dim=-1)  # |sum u_i|^2 = B + sum_{i != k} u_i . u_k
        norms = unit.pow(2).sum(dim=-1).sum(dim=1)  # B, or fewer for all-zero rows
        cosine.append(((total - norms).mean() / (batch_size * (batch_size - 1))).item())
        probe = h[:, 0, :].double()
        scale = probe.mean(dim=0).pow(2).mean().sqrt().clamp_min(1e-30)
        spread.append((probe.std(dim=0, correction=0).mean() / scale).item())
    return LayerStatistics(np.array(rms), np.array(cosine), np.array(spread))


def train_eval_gap(model, X, batch_sizes, *, n_batches: int = 32, seed: int = 0) -> np.ndarray:
    """How far training-mode outputs are from eval-mode outputs, for each batch size.

    For a batch size ``B``, ``n_batches`` random batches of ``B`` distinct rows of
    ``X`` go through ``model`` in training mode (BatchNorm with the batch's own
    statistics) and in eval mode (running statistics). The gap is the mean
    distance between the two outputs of an example divided by the mean norm of
    the eval-mode outputs. Zero for a model without BatchNorm, whose two modes
    agree. The model, its mode and its running statistics are left untouched.

    Returns
    -------
    ndarray
        One relative gap per batch size. Taught in chapter 10.
    """
    import torch

    if isinstance(batch_sizes, numbers.Integral):
        batch_sizes = [batch_sizes]
    gaps = []
    for k, size in enumerate(batch_sizes):
        X_t, size, n_batches, seed = _check_batches(X, size, n_batches, seed)
        layers = _stack_layers([model] * n_batches)
        index = torch.as_tensor(_random_batches(len(X_t), size, n_batches, seed + k, False))
        with torch.no_grad(), limited_threads(0):
            evaluated = _forward(layers, X_t[index], False)  # first: training mode
            train = _forward(layers, X_t[index], True)  # updates the stack's running stats
        distance = (train - evaluated).norm(dim=-1).mean()
        gaps.append((distance / evaluated.norm(dim=-1).mean()).item())
    return np.array(gaps)


def _write_back(layers: list[_Layer], models: Sequence, which: Sequence[int], steps) -> None:
    """Copy network ``s``'s slice of the stacked tensors into ``models[s]`` for ``s`` in ``which``."""
    import torch
    from torch import nn

    with torch.no_grad():
        for s in which:
            modules = [m for m in models[s] if not isinstance(m, tuple(_activation_types()))]
            for layer, module in zip(
                [la for la in layers if la.kind != "act"], modules, strict=True
            ):
                names = [n for n in ("weight", "bias") if getattr(module, n, None) is not None]
                for name, stacked in zip(names, layer.params, strict=True):
                    getattr(module, name).copy_(stacked[s])
                if isinstance(module, nn.BatchNorm1d):
                    module.running_mean.copy_(layer.buffers[0][s])
                    module.running_var.copy_(layer.buffers[1][s])
                    module.num_batches_tracked += int(steps[s])


def _activation_types() -> list[type]:
    from torch import nn

    return [getattr(nn, name) for name in _ELEMENTWISE]


def _per_model(value, name: str, n_models: int, check) -> list:
    """A scalar or one value per network, as a list of ``n_models`` checked values."""
    if isinstance(value, numbers.Number) or np.ndim(value) == 0:
        return [check(value, name)] * n_models
    values = list(value)
    if len(values) != n_models:
        raise ValueError(
            f"{name} must be one value or one per model ({n_models}), got {len(values)}"
        )
    return [check(v, f"{name}[{k}]") for k, v in enumerate(values)]


def train_together(
    models: Sequence,
    X,
    y,
    *,
    lr,
    epochs: int,
    batch_size: int = 64,
    momentum: float = 0.0,
    seeds=None,
    X_val=None,
    y_val=None,
    allow_divergence: bool = False,
    max_steps: int | None = None,
) -> list:
    """Train several networks of one architecture with SGD at once; one history per network.

    For each network ``models[s]`` this does what
    ``dl_course.training.train_classifier(models[s], X, y, lr=lr[s], epochs=epochs,
    batch_size=batch_size, seed=seeds[s])`` does (plain SGD, cross-entropy, the same
    shuffled mini-batches, the same per-epoch history and divergence rule, the
    same final parameters and BatchNorm statistics up to float32 round-off), but
    all networks run as one stacked computation (batched matrix products, one
    BatchNorm over all networks' channels), which for the small networks of
    chapter 10 is several times faster than a loop over them.

    Parameters
    ----------
    models : sequence of torch.nn.Sequential
        Networks with identical architectures, made of ``Linear``, ``BatchNorm1d``,
        ``LayerNorm``, ``RMSNorm`` and elementwise activation layers (for example
        from :func:`build_normalized_mlp`). They are trained in place.
    X, y : array_like
        Training inputs ``(N, d)`` and class labels ``0 .. C - 1``.
    lr : float or sequence of float
        One learning rate for all networks or one per network (> 0).
    epochs, batch_size : int
        As in :func:`dl_course.training.train_classifier`.
    momentum : float
        Heavy-ball momentum in [0, 1), as in ``torch.optim.SGD`` (no dampening).
    seeds : sequence of int, optional
        The mini-batch seed of each network; default ``0, 1, ..., len(models) - 1``.
    X_val, y_val : array_like, optional
        A validation set whose accuracy is recorded after every epoch.
    allow_divergence : bool
        If False, a network whose loss diverges raises
        :class:`dl_course.training.DivergenceError`; if True it is stopped (its
        parameters stay as they were at the end of that epoch), its history is
        marked ``diverged`` and the others go on.
    max_steps : int, optional
        Stop every network after this many SGD steps, even in the middle of an
        epoch (that epoch is recorded with the steps it had), so that runs with
        different batch sizes can be given the same number of updates.

    Returns
    -------
    list of dl_course.training.TrainingHistory
        Taught in chapter 10.
    """
    from dl_course.training import DivergenceError, batches

    if isinstance(models, str) or not isinstance(models, Sequence) or not models:
        raise ValueError("models must be a non-empty sequence of torch networks")
    layers = _stack_layers(models)
    n_models = len(models)
    X_t, y_t = _tensors(X, y, "")
    if (X_val is None) != (y_val is None):
        raise ValueError("X_val and y_val go together: give both or neither")
    val = None if X_val is None else _tensors(X_val, y_val, "_val")
    lrs = _per_model(lr, "lr", n_models, lambda v, n: check_real(v, n, low=0.0, low_open=True))
    epochs = check_int(epochs, "epochs", low=1)
    batch_size = check_int(batch_size, "batch_size", low=1)
    momentum = check_real(momentum, "momentum", low=0.0, high=1.0, high_open=True)
    seeds = list(range(n_models)) if seeds is None else seeds
    seeds = _per_model(seeds, "seeds", n_models, check_seed)
    allow_divergence = check_bool(allow_divergence, "allow_divergence")
    if max_steps is not None:
        max_steps = check_int(max_steps, "max_steps", low=1)
    rngs = [np.random.default_rng(seed) for seed in seeds]
    work = batch_size * sum(p.numel() for p in models[0].parameters())
    with limited_threads(work):
        run = _Run(layers, models, X_t, y_t, val, lrs, momentum, allow_divergence)
        taken = 0
        for epoch in range(1, epochs + 1):
            orders = [batches(len(y_t), batch_size, rng) for rng in rngs]
            if max_steps is not None:
                orders = [order[: max_steps - taken] for order in orders]
            taken += len(orders[0])
            losses = run.epoch(orders)
            stopped = run.record(epoch, losses, DivergenceError)
            _write_back(layers, models, stopped, run.steps)
            run.silence(stopped)
            if not run.active.any() or taken == max_steps:
                break
        _write_back(layers, models, np.flatnonzero(run.active.numpy()), run.steps)
    return run.histories


def _no_grad():
    """``torch.no_grad()``, importing torch only when called."""
    import torch

    return torch.no_grad()


def _tensors(X, y, suffix: str):
    import torch

    X = as_float_array(X, f"X{suffix}", ndim=2)
    y = as_labels(y, f"y{suffix}", n=X.shape[0])
    return torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y)


class _Run:
    """The state of :func:`train_together`: stacked tensors, histories, who is still training."""

    def __init__(self, layers, models, X_t, y_t, val, lrs, momentum, allow_divergence):
        import torch

        from dl_course.training import TrainingHistory

        self.layers, self.models, self.X_t, self.y_t, self.val = layers, models, X_t, y_t, val
        self.params = [p for layer in layers for p in layer.params]
        self.lrs = torch.tensor(lrs, dtype=torch.float32)
        self.lr_list = lrs
        self.momentum = momentum
        self.velocity = [None] * len(self.params)
        self.allow_divergence = allow_divergence
        self.histories = [TrainingHistory() for _ in models]
        self.active = torch.ones(len(models), dtype=torch.bool)
        self.steps = np.zeros(len(models), dtype=np.int64)
        logits = self.logits(X_t)
        n_classes = logits.shape[-1]
        for name, labels in (("y", y_t),) + ((("y_val", val[1]),) if val else ()):
            bad = labels[(labels < 0) | (labels >= n_classes)]
            if len(bad):
                raise ValueError(
                    f"{name} must hold class indices 0 .. {n_classes - 1} (the models have "
                    f"{n_classes} outputs), found {sorted(set(bad.tolist()))[:5]}"
                )
        self.initial = self.loss(logits, y_t).tolist()

    def logits(self, X_t):
        """Eval-mode outputs ``(S, N, C)`` of every network on the shared inputs ``X_t``."""
        import torch

        with torch.no_grad():
            return _forward(self.layers, X_t.expand(len(self.models), *X_t.shape), False)

    @staticmethod
    def loss(logits, labels):
        """Mean cross-entropy of each network, shape ``(S,)``; ``labels`` ``(N,)`` or ``(S, N)``."""
        import torch.nn.functional as F

        n_models, n, n_classes = logits.shape
        labels = labels.expand(n_models, n)
        per_example = F.cross_entropy(
            logits.reshape(-1, n_classes), labels.reshape(-1), reduction="none"
        )
        return per_example.view(n_models, n).mean(dim=1)

    def epoch(self, orders):
        """One epoch of SGD steps; returns each network's mean training loss."""
        import torch

        total = torch.zeros(len(self.models), dtype=torch.float64)
        count = 0
        rates = [self.lrs.view((-1,) + (1,) * (p.ndim - 1)) for p in self.params]
        for step in range(len(orders[0])):
            index = torch.as_tensor(np.stack([o[step] for o in orders]))
            losses = self.loss(_forward(self.layers, self.X_t[index], True), self.y_t[index])
            live = torch.where(self.active, losses, torch.zeros_like(losses))
            grads = torch.autograd.grad(live.sum(), self.params)
            with torch.no_grad():  # stopped networks have rate 0 (see silence)
                for k, (p, g, rate) in enumerate(zip(self.params, grads, rates, strict=True)):
                    p.addcmul_(rate, self._momentum(k, g), value=-1.0)
            total += losses.detach().double() * index.shape[1]
            count += index.shape[1]
            self.steps += self.active.numpy()
        return (total / count).tolist()

    def silence(self, stopped: Sequence[int]) -> None:
        """Take stopped networks out of training (after their state was written back).

        Their learning rate becomes 0 and their stacked parameters, momentum and
        BatchNorm statistics are reset to harmless finite values, so that a
        diverged network's NaNs cannot reach an update: every stacked operation
        acts on each network separately, and 0 times a finite gradient is 0.
        """
        if not stopped:
            return
        with _no_grad():
            for s in stopped:
                self.lrs[s] = 0.0
                for layer in self.layers:
                    for p in layer.params:
                        p[s] = 0.0
                    for b, value in zip(layer.buffers, (0.0, 1.0), strict=False):
                        b[s] = value
                for v in self.velocity:
                    if v is not None:
                        v[s] = 0.0

    def _momentum(self, k: int, g):
        """The step direction of parameter ``k``: torch.optim.SGD's momentum buffer."""
        if self.momentum == 0:
            return g
        if self.velocity[k] is None:
            self.velocity[k] = g.clone()
        else:
            self.velocity[k].mul_(self.momentum).add_(g)
        return self.velocity[k]

    def record(self, epoch, losses, divergence_error) -> list[int]:
        """Append the epoch to each active history; returns the networks that just stopped."""
        from dl_course.training import record_epoch

        train_acc = self.accuracy(self.X_t, self.y_t)
        val_acc = None if self.val is None else self.accuracy(*self.val)
        stopped = []
        for s in np.flatnonzero(self.active.numpy()):
            try:
                kept = record_epoch(
                    self.histories[s],
                    epoch=epoch,
                    loss=losses[s],
                    lr=self.lr_list[s],
                    initial=self.initial[s],
                    allow_divergence=self.allow_divergence,
                    train_accuracy=lambda s=s: train_acc[s],
                    val_accuracy=None if val_acc is None else (lambda s=s: val_acc[s]),
                )
            except divergence_error as error:
                raise divergence_error(f"models[{s}]: {error}") from None
            if not kept:
                self.active[s] = False
                stopped.append(int(s))
        return stopped

    def accuracy(self, X_t, y_t) -> list[float]:
        """Eval-mode accuracy of every network on ``(X_t, y_t)``."""
        correct = self.logits(X_t).argmax(dim=-1) == y_t
        return correct.double().mean(dim=1).tolist()
