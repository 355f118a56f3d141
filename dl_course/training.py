"""Training loops and what they record (chapter 5 onward).

:func:`train_classifier` trains a torch classifier with mini-batch SGD or Adam
and returns a :class:`TrainingHistory`. Training that diverges (a loss that
becomes NaN or infinite) raises :class:`DivergenceError` instead of silently
producing NaN weights, unless the caller asks to stop and report it.

Importing this module is cheap; torch is imported when a function needs it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
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


class DivergenceError(FloatingPointError):
    """Raised when a training loss becomes NaN or infinite, or explodes."""


#: An epoch loss this many times the loss at initialization counts as divergence.
DIVERGENCE_FACTOR = 100.0


def check_divergence(loss: float, epoch: int, lr: float, initial: float) -> None:
    """Raise :class:`DivergenceError` if ``loss`` is NaN, infinite or exploding.

    Exploding means more than :data:`DIVERGENCE_FACTOR` times ``initial``, the
    loss before the first update: a healthy run never gets there.
    """
    if not math.isfinite(loss) or loss > DIVERGENCE_FACTOR * initial:
        raise DivergenceError(
            f"training diverged in epoch {epoch}: the loss is {loss:.4g} (it was {initial:.4g} "
            f"at the start); try a smaller learning rate (lr = {lr:g})"
        )


def record_epoch(
    history: TrainingHistory,
    *,
    epoch: int,
    loss: float,
    lr: float,
    initial: float,
    allow_divergence: bool,
    train_accuracy: Callable[[], float],
    val_accuracy: Callable[[], float] | None,
) -> bool:
    """Check an epoch's mean loss and append it, with the accuracies, to ``history``.

    Returns False when the loss diverged and ``allow_divergence`` is set (the
    history is marked ``diverged`` and training should stop); raises
    :class:`DivergenceError` when it diverged otherwise. Shared by the training
    loops of :mod:`dl_course.training` and :mod:`dl_course.mlp`.
    """
    try:
        check_divergence(loss, epoch, lr, initial)
    except DivergenceError:
        if not allow_divergence:
            raise
        history.diverged = True
        return False
    history.train_loss.append(loss)
    history.train_accuracy.append(train_accuracy())
    if val_accuracy is not None:
        history.val_accuracy.append(val_accuracy())
    return True


@dataclass
class TrainingHistory:
    """Per-epoch record of a training run.

    Attributes
    ----------
    train_loss : list of float
        Mean training loss over the mini-batches of each epoch.
    train_accuracy : list of float
        Accuracy on the whole training set after each epoch.
    val_accuracy : list of float
        Accuracy on the validation set after each epoch (empty without one).
    diverged : bool
        True if the run stopped because the loss diverged (NaN, infinite or
        exploding); the lists then end with the last epoch before divergence.
    """

    train_loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    diverged: bool = False


def batches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Indices of one epoch of shuffled mini-batches (the last one may be smaller)."""
    order = rng.permutation(n)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def _as_tensors(X, y, name: str):
    import torch

    X = as_float_array(X, f"X{name}", ndim=2)
    y = as_labels(y, f"y{name}", n=X.shape[0])
    return torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y)


def accuracy(model, X, y) -> float:
    """Fraction of examples whose arg-max logit is the label (model in eval mode, no grad)."""
    return _accuracy(model, *_as_tensors(X, y, ""))


def _accuracy(model, X_t, y_t) -> float:
    import torch

    was_training = model.training
    model.eval()
    with torch.no_grad():
        correct = (model(X_t).argmax(dim=1) == y_t).double().mean().item()
    model.train(was_training)
    return correct


def train_classifier(
    model,
    X,
    y,
    *,
    lr: float,
    epochs: int,
    batch_size: int = 64,
    optimizer: str = "sgd",
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    X_val=None,
    y_val=None,
    seed: int = 0,
    allow_divergence: bool = False,
) -> TrainingHistory:
    """Train a torch classifier with the cross-entropy loss; returns its history.

    Mini-batches are drawn from a NumPy generator seeded with ``seed``, and
    torch's global generator (dropout masks, any other randomness in the
    model's forward pass) is seeded with ``seed`` for the run and restored
    afterwards, so runs are reproducible and leave the caller's random stream
    alone. ``optimizer`` is ``"sgd"`` (with optional ``momentum``) or ``"adam"``
    (``torch.optim`` implementations; chapter 6 builds them from scratch).

    The loss before the first update (the reference for divergence) is
    evaluated in eval mode, so it neither draws dropout masks nor updates
    BatchNorm statistics. Training runs in train mode; the model's mode is
    restored at the end. Labels must be class indices ``0 .. C - 1`` for a
    model with ``C`` outputs (else ``ValueError``). If the loss becomes NaN or
    infinite, or explodes (see :func:`check_divergence`), raises
    :class:`DivergenceError`, or, with ``allow_divergence=True``, stops and sets
    ``history.diverged``.
    Taught in chapter 5; used throughout the book.
    """
    import torch

    X_t, y_t = _as_tensors(X, y, "")
    has_val = X_val is not None or y_val is not None
    if (X_val is None) != (y_val is None):
        raise ValueError("X_val and y_val go together: give both or neither")
    if has_val:
        X_v, y_v = _as_tensors(X_val, y_val, "_val")
    lr = check_real(lr, "lr", low=0.0, low_open=True)
    epochs = check_int(epochs, "epochs", low=1)
    batch_size = check_int(batch_size, "batch_size", low=1)
    momentum = check_real(momentum, "momentum", low=0.0, high=1.0, high_open=True)
    weight_decay = check_real(weight_decay, "weight_decay", low=0.0)
    allow_divergence = check_bool(allow_divergence, "allow_divergence")
    seed = check_seed(seed)
    rng = np.random.default_rng(seed)
    if optimizer == "sgd":
        opt = torch.optim.SGD(
            model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay
        )
    elif optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    else:
        raise ValueError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}")

    was_training = model.training
    work = batch_size * sum(p.numel() for p in model.parameters())
    with limited_threads(work), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            labels = {"y": y_t} | ({"y_val": y_v} if has_val else {})
            initial = _initial_loss(model, X_t, labels)
            return _train(
                model,
                opt,
                X_t,
                y_t,
                (X_v, y_v) if has_val else None,
                epochs,
                batch_size,
                lr,
                rng,
                allow_divergence,
                initial,
            )
        finally:
            model.train(was_training)


def _initial_loss(model, X_t, labels: dict) -> float:
    """The loss on ``X_t`` before training, in eval mode.

    Checks every label array in ``labels`` (by argument name; ``"y"`` is the
    one of ``X_t``) against the number of outputs of the model.
    """
    import torch

    model.eval()
    with torch.no_grad():
        logits = model(X_t)
    if logits.ndim != 2 or logits.shape[0] != len(X_t):
        raise ValueError(
            f"model must map X of shape (N, d) to logits of shape (N, C); for X of shape "
            f"{tuple(X_t.shape)} it returned shape {tuple(logits.shape)}"
        )
    n_classes = logits.shape[1]
    for name, y in labels.items():
        bad = y[(y < 0) | (y >= n_classes)]
        if len(bad):
            raise ValueError(
                f"{name} must hold class indices 0 .. {n_classes - 1} (the model has "
                f"{n_classes} outputs), found {sorted(set(bad.tolist()))[:5]}"
            )
    return torch.nn.functional.cross_entropy(logits, labels["y"]).item()


def _train(model, opt, X_t, y_t, val, epochs, batch_size, lr, rng, allow_divergence, initial):
    """The epoch loop of :func:`train_classifier` (inputs already validated)."""
    import torch

    history = TrainingHistory()
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    for epoch in range(1, epochs + 1):
        total, count = 0.0, 0
        for index in batches(len(y_t), batch_size, rng):
            opt.zero_grad()
            loss = loss_fn(model(X_t[index]), y_t[index])
            loss.backward()
            opt.step()
            total += loss.item() * len(index)
            count += len(index)
        if not record_epoch(
            history,
            epoch=epoch,
            loss=total / count,
            lr=lr,
            initial=initial,
            allow_divergence=allow_divergence,
            train_accuracy=lambda: _accuracy(model, X_t, y_t),
            val_accuracy=None if val is None else lambda: _accuracy(model, *val),
        ):
            break
    return history
