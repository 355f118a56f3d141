"""Training with a learning-rate schedule, watching the update-to-parameter ratio (chapter 6).

:func:`train_scheduled` trains a torch classifier with ``torch.optim.SGD``
whose rate follows a schedule step by step: the schedule is any function of
the step ``t`` (for example one of :mod:`dl_course.optim`'s ``step_decay``,
``exponential_decay``, ``inverse_time_decay``, ``cosine_annealing``), fed to
``torch.optim.lr_scheduler.LambdaLR``. With ``track_ratios=True`` it also
records, for every weight matrix and every step, the update-to-parameter
ratio ``||W_{t+1} - W_t|| / ||W_t||``: around 1e-3 is the classic sign of a
healthy learning rate, much smaller means the weights barely move, much larger
means each step rewrites them.

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


@dataclass
class ScheduledRun:
    """What :func:`train_scheduled` recorded.

    Attributes
    ----------
    lrs : ndarray of shape (steps,)
        The learning rate used at each step.
    step_loss : ndarray of shape (steps,)
        The mini-batch loss at each step (before the update).
    epoch_loss : ndarray of shape (epochs,)
        The mean mini-batch loss of each epoch.
    final_loss : float
        The cross-entropy on the whole training set after training (NaN if diverged).
    val_accuracy : ndarray of shape (epochs,)
        Accuracy on the validation set after each epoch (empty without one).
    update_ratios : dict of str to ndarray of shape (steps,)
        Per weight matrix (by parameter name), ``||W_{t+1} - W_t|| / ||W_t||``
        at each step (empty unless ``track_ratios=True``).
    diverged : bool
        True if a loss became NaN or infinite; the records stop there.
    """

    lrs: np.ndarray
    step_loss: np.ndarray
    epoch_loss: np.ndarray
    final_loss: float
    val_accuracy: np.ndarray = field(default_factory=lambda: np.zeros(0))
    update_ratios: dict = field(default_factory=dict)
    diverged: bool = False


def _tensors(X, y, name: str):
    import torch

    X = as_float_array(X, f"X{name}", ndim=2)
    y = as_labels(y, f"y{name}", n=X.shape[0])
    return torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y)


def train_scheduled(
    model,
    X,
    y,
    *,
    lr: float,
    epochs: int,
    schedule: Callable[[int], float] | None = None,
    batch_size: int = 64,
    momentum: float = 0.0,
    X_val=None,
    y_val=None,
    seed: int = 0,
    track_ratios: bool = False,
) -> ScheduledRun:
    """Train ``model`` with mini-batch SGD and a per-step learning-rate schedule.

    Parameters
    ----------
    model : torch.nn.Module
        A classifier returning logits; trained in place.
    X, y : arrays
        Training inputs (N, d) and integer labels (N,).
    lr : float
        The base rate given to ``torch.optim.SGD``, > 0.
    epochs : int
        Passes over the shuffled training set, >= 1.
    schedule : callable, optional
        ``schedule(t)`` is the rate at step ``t = 0, 1, ...`` (counted over
        mini-batches, not epochs); ``LambdaLR`` applies ``schedule(t) / lr``.
        ``None`` keeps ``lr`` constant.
    batch_size : int
    momentum : float
        SGD momentum in [0, 1).
    X_val, y_val : arrays, optional
        A validation set, scored after each epoch.
    seed : int
        Seed of the mini-batch order.
    track_ratios : bool
        Record the update-to-parameter ratio of every weight matrix at every step.

    Returns
    -------
    ScheduledRun
        A loss that becomes NaN or infinite stops training and sets ``diverged``.
    """
    import torch

    X_t, y_t = _tensors(X, y, "")
    if (X_val is None) != (y_val is None):
        raise ValueError("X_val and y_val go together: give both or neither")
    val = None if X_val is None else _tensors(X_val, y_val, "_val")
    lr = check_real(lr, "lr", low=0.0, low_open=True)
    epochs = check_int(epochs, "epochs", low=1)
    batch_size = check_int(batch_size, "batch_size", low=1)
    momentum = check_real(momentum, "momentum", low=0.0, high=1.0, high_open=True)
    track_ratios = check_bool(track_ratios, "track_ratios")
    if schedule is not None and not callable(schedule):
        raise TypeError(f"schedule must be callable or None, got {type(schedule).__name__}")
    rng = np.random.default_rng(check_seed(seed))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)

    def factor(t: int) -> float:
        rate = lr if schedule is None else schedule(t)
        if not (isinstance(rate, int | float) and math.isfinite(rate) and rate >= 0):
            raise ValueError(f"schedule({t}) must be a finite rate >= 0, got {rate!r}")
        return rate / lr

    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    weights = {n: p for n, p in model.named_parameters() if p.ndim == 2} if track_ratios else {}
    work = batch_size * sum(p.numel() for p in model.parameters())
    with limited_threads(work):
        return _loop(model, opt, scheduler, X_t, y_t, val, epochs, batch_size, rng, weights)


def _loop(model, opt, scheduler, X_t, y_t, val, epochs, batch_size, rng, weights) -> ScheduledRun:
    """The epoch loop of :func:`train_scheduled` (inputs already validated)."""
    import torch

    loss_fn = torch.nn.CrossEntropyLoss()
    lrs, step_loss, epoch_loss, val_acc = [], [], [], []
    ratios = {name: [] for name in weights}
    diverged = False
    model.train()
    for _ in range(epochs):
        order = rng.permutation(len(y_t))
        losses = []
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            before = {n: w.detach().clone() for n, w in weights.items()}
            opt.zero_grad()
            loss = loss_fn(model(X_t[index]), y_t[index])
            value = loss.item()
            if not math.isfinite(value):
                diverged = True
                break
            loss.backward()
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            scheduler.step()
            step_loss.append(value)
            losses.append(value)
            with torch.no_grad():
                for name, w in weights.items():
                    norm = before[name].norm().item()
                    ratios[name].append((w - before[name]).norm().item() / max(norm, 1e-30))
        if diverged:
            break
        epoch_loss.append(float(np.mean(losses)))
        if val is not None:
            val_acc.append(_accuracy(model, *val))
    with torch.no_grad():
        final = float("nan") if diverged else loss_fn(model(X_t), y_t).item()
    return ScheduledRun(
        lrs=np.array(lrs),
        step_loss=np.array(step_loss),
        epoch_loss=np.array(epoch_loss),
        final_loss=final,
        val_accuracy=np.array(val_acc),
        update_ratios={n: np.array(r) for n, r in ratios.items()},
        diverged=diverged,
    )


def _accuracy(model, X_t, y_t) -> float:
    import torch

    model.eval()
    with torch.no_grad():
        correct = (model(X_t).argmax(dim=1) == y_t).double().mean().item()
    model.train()
    return correct


def _linear_stack(models) -> list:
    """Check that ``models`` share one Sequential architecture of Linear and parameter-free layers."""
    import torch
    from torch import nn

    if not isinstance(models, list | tuple) or not models:
        raise TypeError("models must be a non-empty list of torch.nn.Sequential models")
    reference = models[0]
    for model in models:
        if not isinstance(model, nn.Sequential) or len(model) != len(reference):
            raise ValueError("models must be torch.nn.Sequential models of the same architecture")
        for mine, theirs in zip(model, reference, strict=True):
            if type(mine) is not type(theirs):
                raise ValueError(
                    "models must be torch.nn.Sequential models of the same architecture"
                )
            if isinstance(mine, nn.Linear):
                if mine.weight.shape != theirs.weight.shape or (mine.bias is None) != (
                    theirs.bias is None
                ):
                    raise ValueError("models must have Linear layers of the same shapes")
            elif any(True for _ in mine.parameters()) or isinstance(
                mine, nn.Dropout | nn.modules.batchnorm._BatchNorm
            ):
                raise ValueError(
                    f"train_scheduled_seeds handles Linear layers and elementwise activations, got {type(mine).__name__}"
                )
    layers = []
    for k, module in enumerate(reference):
        if isinstance(module, nn.Linear):
            weight = (
                torch.stack([m[k].weight.detach() for m in models]).clone().requires_grad_(True)
            )
            bias = None
            if module.bias is not None:
                bias = (
                    torch.stack([m[k].bias.detach() for m in models]).clone().requires_grad_(True)
                )
            layers.append((k, weight, bias))
        else:
            layers.append((k, module, None))
    return layers


def train_scheduled_seeds(
    models,
    X,
    y,
    *,
    seeds,
    lr: float,
    epochs: int,
    schedule: Callable[[int], float] | None = None,
    batch_size: int = 64,
    momentum: float = 0.0,
    X_val=None,
    y_val=None,
    track_ratios: bool = False,
) -> list[ScheduledRun]:
    """:func:`train_scheduled` for several models at once, one seed each, side by side.

    ``models[k]`` is trained with the mini-batch order of ``seeds[k]``, exactly as
    ``train_scheduled(models[k], ..., seed=seeds[k])`` would train it: SGD acts
    on every parameter separately, so stacking the models' weights into batched
    matrices and summing their losses gives each model its own gradient. The
    point is speed: one batched step costs about as much as one small step, so
    five seeds train almost as fast as one. Only ``torch.nn.Sequential`` models
    made of ``Linear`` layers and elementwise activations (what
    :func:`dl_course.mlp.build_mlp` builds without norm or dropout) are accepted.
    The models are trained in place. Returns one :class:`ScheduledRun` per model.
    Used in chapter 6 to run every configuration over five seeds.
    """
    import torch

    layers = _linear_stack(models)
    seeds = [check_seed(s) for s in seeds]
    if len(seeds) != len(models):
        raise ValueError(f"seeds must have one entry per model ({len(models)}), got {len(seeds)}")
    X_t, y_t = _tensors(X, y, "")
    if (X_val is None) != (y_val is None):
        raise ValueError("X_val and y_val go together: give both or neither")
    val = None if X_val is None else _tensors(X_val, y_val, "_val")
    lr = check_real(lr, "lr", low=0.0, low_open=True)
    epochs = check_int(epochs, "epochs", low=1)
    batch_size = check_int(batch_size, "batch_size", low=1)
    momentum = check_real(momentum, "momentum", low=0.0, high=1.0, high_open=True)
    track_ratios = check_bool(track_ratios, "track_ratios")
    if schedule is not None and not callable(schedule):
        raise TypeError(f"schedule must be callable or None, got {type(schedule).__name__}")
    params = [
        p for _, a, b in layers if isinstance(a, torch.Tensor) for p in (a, b) if p is not None
    ]
    opt = torch.optim.SGD(params, lr=lr, momentum=momentum)

    def factor(t: int) -> float:
        rate = lr if schedule is None else schedule(t)
        if not (isinstance(rate, int | float) and math.isfinite(rate) and rate >= 0):
            raise ValueError(f"schedule({t}) must be a finite rate >= 0, got {rate!r}")
        return rate / lr

    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    work = len(models) * batch_size * sum(p[0].numel() for p in params)
    with limited_threads(work):
        records = _loop_seeds(
            layers, opt, scheduler, X_t, y_t, val, epochs, batch_size, seeds, track_ratios
        )
    with torch.no_grad():  # hand the trained weights back to the models
        for k, weight, bias in layers:
            if isinstance(weight, torch.Tensor):
                for s, model in enumerate(models):
                    model[k].weight.copy_(weight[s])
                    if bias is not None:
                        model[k].bias.copy_(bias[s])
    return records


def _forward_seeds(layers, h):
    """The stacked models on inputs ``h`` of shape (S, B, d)."""
    import torch

    for _, a, b in layers:
        if isinstance(a, torch.Tensor):
            h = (
                torch.bmm(h, a.transpose(1, 2))
                if b is None
                else torch.baddbmm(b[:, None, :], h, a.transpose(1, 2))
            )
        else:
            h = a(h)
    return h


def _losses_seeds(layers, X_s, y_s):
    """The mean cross-entropy of each stacked model on its own batch: shape (S,)."""
    import torch

    logits = _forward_seeds(layers, X_s)
    per_example = torch.nn.functional.cross_entropy(
        logits.flatten(0, 1), y_s.flatten(), reduction="none"
    )
    return per_example.view(y_s.shape).mean(dim=1)


def _loop_seeds(layers, opt, scheduler, X_t, y_t, val, epochs, batch_size, seeds, track_ratios):
    """The epoch loop of :func:`train_scheduled_seeds` (inputs already validated)."""
    import torch

    n_models = len(seeds)
    rngs = [np.random.default_rng(seed) for seed in seeds]
    weights = (
        {f"{k}.weight": w for k, w, _ in layers if isinstance(w, torch.Tensor)}
        if track_ratios
        else {}
    )
    lrs, step_losses, epoch_losses, val_acc = [], [], [], []
    ratios = {name: [] for name in weights}
    for _ in range(epochs):
        orders = torch.as_tensor(np.stack([rng.permutation(len(y_t)) for rng in rngs]))
        first = len(step_losses)
        for start in range(0, len(y_t), batch_size):
            index = orders[:, start : start + batch_size]
            before = {n: w.detach().clone() for n, w in weights.items()}
            opt.zero_grad()
            losses = _losses_seeds(layers, X_t[index], y_t[index])
            losses.sum().backward()
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            scheduler.step()
            step_losses.append(losses.detach())
            with torch.no_grad():
                for name, w in weights.items():
                    change = (w - before[name]).flatten(1).norm(dim=1)
                    ratios[name].append(
                        change / before[name].flatten(1).norm(dim=1).clamp_min(1e-30)
                    )
        epoch_losses.append(torch.stack(step_losses[first:]).mean(dim=0))
        if val is not None:
            with torch.no_grad():
                logits = _forward_seeds(layers, val[0].expand(n_models, *val[0].shape))
                val_acc.append((logits.argmax(dim=2) == val[1]).double().mean(dim=1))
    with torch.no_grad():
        final = _losses_seeds(layers, X_t.expand(n_models, *X_t.shape), y_t.expand(n_models, -1))
    step_loss = torch.stack(step_losses).numpy()  # (steps, S)
    runs = []
    for s in range(n_models):
        diverged = not np.all(np.isfinite(step_loss[:, s]))
        runs.append(
            ScheduledRun(
                lrs=np.array(lrs),
                step_loss=step_loss[:, s].copy(),
                epoch_loss=np.array([e[s].item() for e in epoch_losses]),
                final_loss=float("nan") if diverged else final[s].item(),
                val_accuracy=np.array([a[s].item() for a in val_acc]),
                update_ratios={n: torch.stack(r)[:, s].numpy().copy() for n, r in ratios.items()},
                diverged=diverged,
            )
        )
    return runs
