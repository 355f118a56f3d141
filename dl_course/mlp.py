"""Multilayer perceptrons: one on our own autograd engine, and a torch builder.

- :class:`MLP` and :func:`fit` run on :mod:`dl_course.autograd`, so every
  gradient is computed by code written in this book (chapters 2 and 5).
- :func:`build_mlp` returns a ``torch.nn.Sequential`` with a chosen activation,
  initialization, normalization and dropout, for the later chapters that train
  larger models with PyTorch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dl_course import activations, initialization
from dl_course._checks import (
    as_float_array,
    as_labels,
    check_bool,
    check_int,
    check_real,
    check_seed,
)
from dl_course._threads import limited_threads
from dl_course.autograd import Tensor, cross_entropy
from dl_course.training import TrainingHistory, batches, record_epoch

#: Activations the engine MLP offers (the ``"engine"`` entries of dl_course.activations).
ENGINE_ACTIVATIONS = activations.names("engine")


def _check_sizes(sizes) -> list[int]:
    if isinstance(sizes, str | bytes) or not isinstance(sizes, Sequence) or len(sizes) < 2:
        raise ValueError(
            f"sizes must list at least two layer widths (input, ..., output), got {sizes!r}"
        )
    return [check_int(s, f"sizes[{k}]", low=1) for k, s in enumerate(sizes)]


class MLP:
    """A fully connected network ``x -> act(W1 x + b1) -> ... -> WL h + bL`` on the engine.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths, input first and output last, e.g. ``(64, 32, 10)``.
    activation : str
        One of :data:`ENGINE_ACTIVATIONS`: the nonlinearity between layers (none
        after the last layer: it outputs logits).
    seed : int
        Seed of the weight initialization: He (std sqrt(2 / fan_in)) for ReLU and
        Xavier (std sqrt(2 / (fan_in + fan_out))) otherwise; biases start at zero.

    Attributes
    ----------
    weights : list of Tensor
        ``weights[l]`` has shape ``(sizes[l + 1], sizes[l])``, (out, in) as in
        ``torch.nn.Linear.weight`` and in the math of chapter 2 (``z = W a + b``):
        row ``i`` holds the weights into unit ``i``.
    biases : list of Tensor
        ``biases[l]`` has shape ``(sizes[l + 1],)``.

    Rows of the input are examples, so a layer computes ``X @ W.T + b``, exactly
    what ``torch.nn.Linear`` computes with the same ``weight`` and ``bias``.
    Taught in chapters 2 and 5.
    """

    def __init__(self, sizes: Sequence[int], activation: str = "relu", seed: int = 0):
        self.sizes = _check_sizes(sizes)
        self.activation = activations.check_name(activation, "engine")
        rng = np.random.default_rng(check_seed(seed))
        self.weights, self.biases = [], []
        for fan_in, fan_out in zip(self.sizes[:-1], self.sizes[1:], strict=True):
            var = 2.0 / fan_in if activation == "relu" else 2.0 / (fan_in + fan_out)
            # drawn in (in, out) order and stored transposed, so that a seed gives the
            # same network as before the switch to the (out, in) layout
            draw = rng.normal(0.0, np.sqrt(var), size=(fan_in, fan_out))
            self.weights.append(Tensor(np.ascontiguousarray(draw.T)))
            self.biases.append(Tensor(np.zeros(fan_out)))

    def parameters(self) -> list[Tensor]:
        """All weights and biases, layer by layer."""
        return [p for pair in zip(self.weights, self.biases, strict=True) for p in pair]

    def _input(self, X) -> Tensor:
        if isinstance(X, Tensor):
            return X
        X = as_float_array(X, "X", ndim=2)
        if X.shape[1] != self.sizes[0]:
            raise ValueError(f"X must have {self.sizes[0]} columns, got {X.shape[1]}")
        return Tensor(X)

    def layer_outputs(self, X) -> list[Tensor]:
        """The output of every layer: hidden activations, then the logits."""
        h = self._input(X)
        outputs = []
        last = len(self.weights) - 1
        for k, (W, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = h @ W.T + b
            if k < last:
                h = getattr(h, self.activation)()
            outputs.append(h)
        return outputs

    def __call__(self, X) -> Tensor:
        """The logits, shape (n, sizes[-1])."""
        return self.layer_outputs(X)[-1]

    def predict(self, X) -> np.ndarray:
        """The predicted class of each row (arg-max of the logits)."""
        return self(X).data.argmax(axis=1)


@dataclass
class FitResult:
    """The trained engine model and its per-epoch history (see :func:`fit`)."""

    model: MLP
    history: TrainingHistory


def fit(
    model: MLP,
    X,
    y,
    *,
    lr: float = 0.1,
    epochs: int = 20,
    batch_size: int = 32,
    seed: int = 0,
    X_val=None,
    y_val=None,
    allow_divergence: bool = False,
) -> FitResult:
    """Train ``model`` in place with mini-batch SGD on the cross-entropy loss, using the engine.

    Each step: forward pass, :func:`dl_course.autograd.cross_entropy`,
    ``loss.backward()``, then ``p.data -= lr * p.grad`` for every parameter.
    The history records the mean training loss and the training accuracy of
    every epoch, and the accuracy on ``(X_val, y_val)`` if given. If the loss
    becomes NaN or infinite or explodes, raises
    :class:`dl_course.training.DivergenceError`, or, with
    ``allow_divergence=True``, stops and sets ``history.diverged``.
    Taught in chapter 5.
    """
    if not isinstance(model, MLP):
        raise TypeError(f"model must be an MLP, got {type(model).__name__}")
    X = as_float_array(X, "X", ndim=2)
    classes = range(model.sizes[-1])
    y = as_labels(y, "y", n=X.shape[0], allowed=classes)
    if (X_val is None) != (y_val is None):
        raise ValueError("X_val and y_val go together: give both or neither")
    val = None
    if X_val is not None:
        X_val = as_float_array(X_val, "X_val", ndim=2)
        val = (X_val, as_labels(y_val, "y_val", n=X_val.shape[0], allowed=classes))
    lr = check_real(lr, "lr", low=0.0, low_open=True)
    epochs = check_int(epochs, "epochs", low=1)
    batch_size = check_int(batch_size, "batch_size", low=1)
    allow_divergence = check_bool(allow_divergence, "allow_divergence")
    rng = np.random.default_rng(check_seed(seed))
    params = model.parameters()
    with limited_threads(batch_size * sum(p.data.size for p in params)):
        history = _fit(model, params, X, y, val, lr, epochs, batch_size, rng, allow_divergence)
    return FitResult(model, history)


def _fit(model, params, X, y, val, lr, epochs, batch_size, rng, allow_divergence):
    """The epoch loop of :func:`fit` (inputs already validated)."""
    history = TrainingHistory()
    initial = float(cross_entropy(model(X), y).data)
    for epoch in range(1, epochs + 1):
        total = 0.0
        for index in batches(len(y), batch_size, rng):
            loss = cross_entropy(model(X[index]), y[index])
            for p in params:
                p.zero_grad()
            loss.backward()
            for p in params:
                p.data -= lr * p.grad
            total += float(loss.data) * len(index)
        if not record_epoch(
            history,
            epoch=epoch,
            loss=total / len(y),
            lr=lr,
            initial=initial,
            allow_divergence=allow_divergence,
            train_accuracy=lambda: float(np.mean(model.predict(X) == y)),
            val_accuracy=None
            if val is None
            else lambda: float(np.mean(model.predict(val[0]) == val[1])),
        ):
            break
    return history


# -- PyTorch ----------------------------------------------------------------------------------

#: Activations :func:`build_mlp` offers (the ``"torch"`` entries of dl_course.activations).
TORCH_ACTIVATIONS = activations.names("torch")
#: Weight initializations :func:`build_mlp` offers (biases start at zero except with "torch").
INITS = ("he", "xavier", "lecun", "torch")
NORMS = (None, "batch", "layer")


def build_mlp(
    sizes: Sequence[int],
    activation: str = "relu",
    *,
    init: str = "he",
    norm: str | None = None,
    dropout: float = 0.0,
    bias: bool = True,
    seed: int = 0,
):
    """Build ``Linear -> [norm] -> activation -> [dropout]`` blocks and a final ``Linear``.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths, input first and output last.
    activation : str
        One of :data:`TORCH_ACTIVATIONS`.
    init : {"he", "xavier", "lecun", "torch"}
        Weight initialization: normal with variance 2 / fan_in (He), 2 / (fan_in +
        fan_out) (Xavier / Glorot), 1 / fan_in (LeCun), or PyTorch's default
        ``nn.Linear`` init (uniform, variance 1 / (3 fan_in), which is not He), as
        :func:`dl_course.initialization.scheme_variance` gives them (chapter 9).
    norm : {None, "batch", "layer"}
        Normalization after each hidden linear layer.
    dropout : float
        Dropout probability after each hidden activation, in [0, 1).
    bias : bool
        Whether the linear layers have biases.
    seed : int
        Seed of the initialization; the global torch random state is left untouched.

    Returns
    -------
    torch.nn.Sequential
        Taught in chapter 5; used from chapter 7 on.
    """
    import torch
    from torch import nn

    sizes = _check_sizes(sizes)
    activation = activations.check_name(activation, "torch")
    module = getattr(nn, activations.get(activation).torch_module)
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    dropout = check_real(dropout, "dropout", low=0.0, high=1.0, high_open=True)
    bias = check_bool(bias, "bias")
    seed = check_seed(seed)
    layers: list[nn.Module] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for k, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            linear = nn.Linear(fan_in, fan_out, bias=bias, dtype=torch.float32)
            if init != "torch":  # "torch" keeps nn.Linear's own init (initialization.torch_default_)
                initialization.scheme_normal_(linear.weight, init)
                if bias:
                    with torch.no_grad():
                        linear.bias.zero_()
            layers.append(linear)
            if k == len(sizes) - 2:
                break
            if norm == "batch":
                layers.append(nn.BatchNorm1d(fan_out))
            elif norm == "layer":
                layers.append(nn.LayerNorm(fan_out))
            layers.append(module())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)
