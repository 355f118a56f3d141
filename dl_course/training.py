"""The book's training loop and what it records (chapter 5 onward; chapter 7 in full).

:func:`train_classifier` trains a torch classifier on the cross-entropy loss
and returns a :class:`TrainingHistory`: the training and validation loss and
accuracy of every epoch, the learning rate and mini-batch loss of every step,
and whatever a ``callback`` asks to record (for example the update-to-parameter
ratios of :func:`update_ratios`). On top of plain mini-batch training it offers

- optimizers ``"sgd"``, ``"momentum"``, ``"adam"`` and ``"adamw"`` (the
  :mod:`torch.optim` implementations; chapter 6 builds them from scratch), with
  ``weight_decay``;
- a learning-rate ``schedule``, a function of the step or the epoch such as the
  schedules of :mod:`dl_course.optim`;
- early stopping: ``patience`` epochs without progress on the validation loss or
  accuracy end training, and the best epoch's weights are restored;
- on-the-fly data augmentation of each mini-batch (``augment``);
- one ``seed`` for everything random: the mini-batch order (NumPy), torch's
  generator (dropout) and the augmentation;
- divergence detection: a NaN or infinite loss stops training with a
  :class:`DivergenceError` naming the step (epoch and batch) and suggesting a
  smaller learning rate;
- a ``tqdm`` progress bar for runs longer than :data:`PROGRESS_DELAY` seconds when
  run interactively, off in the book build and under nbval (see
  :func:`progress_enabled`).

:func:`stack_models` turns K models of one architecture into a single module
whose forward pass evaluates all of them at once; :func:`train_classifier` then
trains the K members side by side (each with its own mini-batch order, learning
rate and weight decay if asked), which is several times faster than K separate
runs of small models and gives the same result to round-off. The chapters use it
to repeat experiments over seeds and to sweep hyperparameters.

Importing this module is cheap; torch and tqdm are imported when a function needs them.
"""

from __future__ import annotations

import copy
import functools
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields

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
#: Environment variable switching progress bars: "0"/"off" (the book build and
#: ``make test`` set it), "1"/"on", or unset / "auto" (on when interactive).
PROGRESS_ENV = "DL_COURSE_PROGRESS"
#: Seconds a run must last before its automatic progress bar appears.
PROGRESS_DELAY = 3.0
#: The optimizers :func:`train_classifier` offers (``torch.optim`` classes).
OPTIMIZERS = ("sgd", "momentum", "adam", "adamw")
#: What early stopping can watch.
MONITORS = ("val_loss", "val_accuracy")


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
    :class:`DivergenceError` when it diverged otherwise. Used by the engine's
    training loop, :func:`dl_course.mlp.fit`.
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
    """Per-epoch (and per-step) record of a training run.

    For a stack of K models (:func:`stack_models`) every entry is an array of
    shape (K,), one value per member, so ``np.array(history.val_accuracy)`` has
    shape (epochs, K); :meth:`member` picks out one member's history.

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
    val_loss : list of float
        Cross-entropy on the validation set after each epoch (empty without one).
    lrs : list of float
        The learning rate of each step (mini-batch update).
    step_loss : list of float
        The mini-batch loss of each step, before its update.
    records : dict of str to list
        What the ``callback`` of :func:`train_classifier` returned, by name.
    best_epoch : int or None
        With a validation set: the epoch (counted from 1) with the best
        monitored metric (``val_loss`` or ``val_accuracy``).
    stopped_epoch : int or None
        The epoch after which early stopping ended training (None if it did not).
    divergence : str or None
        When ``diverged``: what happened where (the message of the
        :class:`DivergenceError` that ``allow_divergence`` suppressed).
    """

    train_loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    diverged: bool = False
    val_loss: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    step_loss: list[float] = field(default_factory=list)
    records: dict[str, list] = field(default_factory=dict)
    best_epoch: int | None = None
    stopped_epoch: int | None = None
    divergence: str | None = None

    def member(self, k: int) -> TrainingHistory:
        """The history of member ``k`` of a stacked run (see :func:`stack_models`)."""
        k = check_int(k, "k", low=0)
        if not self.train_loss or np.ndim(self.train_loss[0]) != 1:
            raise ValueError("member() needs the history of a stack of models")
        n = len(self.train_loss[0])
        if k >= n:
            raise ValueError(f"k must be < {n} (the number of members), got {k}")

        def pick(values):
            return [v[k].item() if np.ndim(v[k]) == 0 else v[k] for v in values]

        out = TrainingHistory()
        for name in ("train_loss", "train_accuracy", "val_accuracy", "val_loss", "step_loss"):
            setattr(out, name, pick(getattr(self, name)))
        out.lrs = [float(np.broadcast_to(r, (n,))[k]) for r in self.lrs]
        out.records = {name: pick(values) for name, values in self.records.items()}
        out.diverged, out.stopped_epoch = self.diverged, self.stopped_epoch
        out.divergence = self.divergence
        if self.best_epoch is not None:
            out.best_epoch = int(np.asarray(self.best_epoch)[k])
        return out

    def __eq__(self, other) -> bool:  # entries may be arrays: compare them element-wise
        if not isinstance(other, TrainingHistory):
            return NotImplemented
        return all(
            _same(getattr(self, f.name), getattr(other, f.name)) for f in fields(TrainingHistory)
        )


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_same, a, b))
    return np.array_equal(a, b)


@dataclass(frozen=True)
class TrainingStep:
    """What a ``callback`` of :func:`train_classifier` is told about the run so far.

    Attributes
    ----------
    epoch : int
        The current epoch, counted from 1.
    step : int
        Updates made so far (over all epochs).
    loss : float or ndarray
        The last mini-batch loss (per-step callbacks) or the epoch's mean loss.
    lr : float or ndarray
        The learning rate of the last update.
    """

    epoch: int
    step: int
    loss: float | np.ndarray
    lr: float | np.ndarray


def batches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Indices of one epoch of shuffled mini-batches (the last one may be smaller)."""
    order = rng.permutation(n)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


# -- progress bars ------------------------------------------------------------------------------


def _interactive() -> bool:
    """True in a Jupyter kernel or when stderr is a terminal."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is not None and type(shell).__name__ == "ZMQInteractiveShell":
        return True
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def progress_enabled(progress: bool | None = None) -> bool:
    """Whether :func:`train_classifier` shows a progress bar.

    ``progress=True`` or ``False`` decides. ``None`` (the default) reads the
    environment variable :data:`PROGRESS_ENV`: ``"0"``, ``"off"``, ``"false"``
    or ``"no"`` switch bars off (``make book``, ``make test`` and ``make
    notebooks`` set it, since a bar in a notebook is an ipywidget, which the
    website cannot show, and stderr would be printed into the page); ``"1"``,
    ``"on"``, ``"true"`` or ``"yes"`` switch them on; unset or ``"auto"`` shows
    them when run interactively (a Jupyter kernel or a terminal), and then only
    for runs longer than :data:`PROGRESS_DELAY` seconds. Chapter 7.
    """
    if progress is not None:
        return check_bool(progress, "progress")
    setting = os.environ.get(PROGRESS_ENV, "").strip().lower()
    if setting in ("0", "off", "false", "no"):
        return False
    if setting in ("1", "on", "true", "yes"):
        return True
    if setting not in ("", "auto"):
        raise ValueError(
            f"environment variable {PROGRESS_ENV} must be one of 0, off, false, no, 1, on, "
            f"true, yes or auto, got {setting!r}"
        )
    return _interactive()


def _progress_bar(progress: bool | None, epochs: int):
    """A tqdm bar over the epochs, or None when bars are off."""
    if not progress_enabled(progress):
        return None
    from tqdm.auto import tqdm

    delay = 0.0 if progress else PROGRESS_DELAY  # an explicit request shows the bar at once
    return tqdm(total=epochs, unit="epoch", delay=delay, leave=False, file=sys.stderr)


# -- models and evaluation --------------------------------------------------------------------


def _as_tensors(X, y, name: str):
    import torch

    X = as_float_array(X, f"X{name}", ndim=2)
    y = as_labels(y, f"y{name}", n=X.shape[0])
    return torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y)


def accuracy(model, X, y) -> float | np.ndarray:
    """Fraction of examples whose arg-max logit is the label (model in eval mode, no grad).

    For a stack of models (:func:`stack_models`), one accuracy per member.
    """
    return _evaluate(model, *_as_tensors(X, y, ""))[1]


def _accuracy(model, X_t, y_t) -> float:
    return _evaluate(model, X_t, y_t)[1]


def _evaluate(model, X_t, y_t):
    """Cross-entropy and accuracy of ``model`` on ``(X_t, y_t)`` in eval mode, without grad.

    Floats for one model; arrays of shape (K,) for a stack of K models.
    """
    import torch

    was_training = model.training
    model.eval()
    with torch.no_grad():
        result = _metrics(model(X_t), y_t)
    model.train(was_training)
    return result


def _metrics(logits, y_t):
    """Mean cross-entropy and accuracy of ``logits`` (N, C), or per member of (K, N, C)."""
    import torch

    if logits.ndim == 3:  # a stack
        k, n, c = logits.shape
        losses = torch.nn.functional.cross_entropy(
            logits.reshape(k * n, c), y_t.repeat(k), reduction="none"
        )
        loss = losses.view(k, n).mean(dim=1).double().numpy()
        return loss, (logits.argmax(dim=2) == y_t).double().mean(dim=1).numpy()
    loss = torch.nn.functional.cross_entropy(logits, y_t).item()
    return loss, (logits.argmax(dim=1) == y_t).double().mean().item()


def stack_models(models: Sequence):
    """Stack K torch models of one architecture into one module (chapter 7).

    The stack's parameters are the members' parameters stacked along a new
    first axis (copies: train the stack, then call ``stack.unstack()`` to write
    the trained weights back into the member models). Its forward pass evaluates
    every member with :func:`torch.func.vmap` over :func:`torch.func.functional_call`:
    an input of shape (N, d) goes to every member, one of shape (K, N, d) gives
    member k the rows ``x[k]``; the output has shape (K, N, C).
    :func:`train_classifier` recognizes a stack and trains its members side by
    side, each on its own loss.

    Parameters
    ----------
    models : sequence of torch.nn.Module
        At least one model; all with the same parameter names and shapes, the
        same ``requires_grad`` flags, and no buffers (so no BatchNorm).

    Returns
    -------
    torch.nn.Module
        The stack; ``len(stack)`` is K and ``stack.members`` the models.
    """
    return _stack_class()(models)


def _is_stack(model) -> bool:
    return isinstance(model, _stack_class())


@functools.cache
def _stack_class():
    """The ModelStack class, defined on first use so that importing this module stays cheap."""
    import torch
    from torch.func import functional_call, vmap

    class ModelStack(torch.nn.Module):
        """K models of one architecture evaluated as one (see :func:`stack_models`)."""

        def __init__(self, models):
            super().__init__()
            if isinstance(models, torch.nn.Module) or not isinstance(models, Sequence):
                raise TypeError(
                    f"models must be a sequence of torch modules, got {type(models).__name__}"
                )
            models = list(models)
            if not models:
                raise ValueError("models must hold at least one model")
            for k, model in enumerate(models):
                if not isinstance(model, torch.nn.Module):
                    raise TypeError(
                        f"models[{k}] must be a torch module, got {type(model).__name__}"
                    )
                if any(True for _ in model.buffers()):
                    raise ValueError(
                        f"models[{k}] has buffers (BatchNorm statistics?): models with buffers "
                        "cannot be stacked"
                    )
            shapes = [
                [(n, tuple(p.shape), p.requires_grad) for n, p in m.named_parameters()]
                for m in models
            ]
            for k, spec in enumerate(shapes[1:], start=1):
                if spec != shapes[0]:
                    raise ValueError(
                        f"models[{k}] differs from models[0] in its parameters (names, shapes or "
                        "requires_grad): stacked models must share one architecture"
                    )
            self._names = [name for name, _, _ in shapes[0]]
            for name, _, requires_grad in shapes[0]:
                tensors = [dict(m.named_parameters())[name].detach() for m in models]
                stacked = torch.nn.Parameter(torch.stack(tensors).clone(), requires_grad)
                self.register_parameter(name.replace(".", "__"), stacked)
            object.__setattr__(self, "_members", models)  # not submodules: no shared parameters
            object.__setattr__(self, "_template", copy.deepcopy(models[0]).to("meta"))

        def __len__(self) -> int:
            return len(self._members)

        @property
        def members(self) -> list:
            """The member models (their weights change only through :meth:`unstack`)."""
            return list(self._members)

        def train(self, mode: bool = True):
            self._template.train(mode)
            return super().train(mode)

        def _params(self) -> dict:
            return {name: getattr(self, name.replace(".", "__")) for name in self._names}

        def forward(self, x):
            k = len(self)
            if x.ndim == 3 and x.shape[0] == k:
                in_dims = (0, 0)
            elif x.ndim == 2:
                in_dims = (0, None)
            else:
                raise ValueError(
                    f"a stack of {k} models takes inputs of shape (N, d) or ({k}, N, d), got "
                    f"shape {tuple(x.shape)}"
                )

            def one(params, inputs):
                return functional_call(self._template, params, (inputs,))

            return vmap(one, in_dims=in_dims, randomness="different")(self._params(), x)

        def unstack(self) -> list:
            """Copy the stack's weights into the member models and return them."""
            with torch.no_grad():
                for k, model in enumerate(self._members):
                    own = dict(model.named_parameters())
                    for name, stacked in self._params().items():
                        own[name].copy_(stacked[k])
            return list(self._members)

    return ModelStack


def update_ratios(model) -> Callable:
    """A ``callback`` for :func:`train_classifier` recording update-to-parameter ratios.

    For every weight matrix (parameter with two or more dimensions) it records
    ``||W_t - W_prev|| / ||W_prev||`` (Frobenius norms), where ``W_prev`` is the
    value at the previous call (at the first call: when the callback was made,
    so make it right before training). With ``callback_every="step"`` that is the
    ratio of each update; around 1e-3 is the classic sign of a healthy learning
    rate. Keys are ``"ratio:<parameter name>"``; for a stack of models each value
    is an array with one ratio per member. Chapter 7.
    """
    import torch

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch module, got {type(model).__name__}")
    stacked = _is_stack(model)
    weights = {n: p for n, p in model.named_parameters() if p.ndim >= (3 if stacked else 2)}
    if not weights:
        raise ValueError("model has no weight matrices to watch")
    previous = {n: p.detach().clone() for n, p in weights.items()}

    def norm(t):
        return t.flatten(start_dim=1).norm(dim=1) if stacked else t.norm()

    def callback(_model, _info) -> dict:
        out = {}
        with torch.no_grad():
            for name, p in weights.items():
                ratio = norm(p - previous[name]) / norm(previous[name]).clamp_min(1e-30)
                out[f"ratio:{name.replace('__', '.')}"] = (
                    ratio.double().numpy() if stacked else ratio.item()
                )
                previous[name].copy_(p)
        return out

    return callback


# -- the training loop --------------------------------------------------------------------------


@dataclass
class _Setup:
    """The validated settings of one :func:`train_classifier` run."""

    epochs: int
    batch_size: int
    optimizer: str
    lr: float | np.ndarray
    weight_decay: float | np.ndarray
    seeds: list[int]
    members: int | None  # K for a stack, None for one model
    allow_divergence: bool
    schedule: Callable | None
    schedule_unit: str
    patience: int | None
    monitor: str
    min_delta: float
    restore_best: bool
    augment: Callable | None
    callback: Callable | None
    callback_every: str
    progress: bool | None


def train_classifier(
    model,
    X,
    y,
    *,
    lr: float | Sequence[float],
    epochs: int,
    batch_size: int = 64,
    optimizer: str = "sgd",
    momentum: float | None = None,
    weight_decay: float | Sequence[float] = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
    X_val=None,
    y_val=None,
    seed: int | Sequence[int] = 0,
    allow_divergence: bool = False,
    schedule: Callable[[int], float] | None = None,
    schedule_unit: str = "step",
    patience: int | None = None,
    monitor: str = "val_loss",
    min_delta: float = 0.0,
    restore_best: bool | None = None,
    augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
    callback: Callable | None = None,
    callback_every: str = "epoch",
    progress: bool | None = None,
) -> TrainingHistory:
    """Train a torch classifier with the cross-entropy loss; returns its history.

    Parameters
    ----------
    model : torch.nn.Module
        Maps inputs of shape (N, d) to logits of shape (N, C); trained in place.
        A stack from :func:`stack_models` (logits (K, N, C)) trains its K
        members side by side, each on its own mean loss, and every entry of the
        history becomes an array of K values.
    X, y : arrays
        Training inputs (N, d) and labels, class indices ``0 .. C - 1``.
    lr : float
        The learning rate, > 0. For a stack: one rate, or one per member.
    epochs : int
        Passes over the shuffled training set, >= 1.
    batch_size : int
        Examples per mini-batch (the last batch of an epoch may be smaller).
    optimizer : {"sgd", "momentum", "adam", "adamw"}
        ``torch.optim.SGD`` (``"momentum"`` is SGD with ``momentum=0.9``
        unless given), ``Adam`` or ``AdamW`` (with ``betas``).
    momentum : float, optional
        SGD momentum in [0, 1); only for ``"sgd"`` (default 0) and
        ``"momentum"`` (default 0.9).
    weight_decay : float
        >= 0: the L2 term of SGD and Adam, the decoupled decay of AdamW. For a
        stack, one value or one per member.
    X_val, y_val : arrays, optional
        A validation set, evaluated after every epoch (loss and accuracy).
    seed : int
        Seeds the mini-batch order (NumPy), torch's global generator during the
        run (dropout; the caller's state is restored afterwards) and the
        augmentation. For a stack, one seed per member gives each member its own
        mini-batch order; a single seed gives them all the same order.
    allow_divergence : bool
        If the loss becomes NaN or infinite (checked at every step) or explodes
        (an epoch's mean loss above :data:`DIVERGENCE_FACTOR` times the loss at
        initialization), stop and set ``history.diverged`` instead of raising
        :class:`DivergenceError`. Either way the message or history says at which
        step (epoch and batch) it happened.
    schedule : callable, optional
        ``schedule(t)`` is the learning rate at step ``t = 0, 1, ...`` (or at
        epoch ``t`` with ``schedule_unit="epoch"``), for example
        ``lambda t: dl_course.optim.cosine_annealing(0.1, t, t_max=100)``. It is
        set on the optimizer before each update (what
        ``torch.optim.lr_scheduler.LambdaLR`` with factor ``schedule(t) / lr``
        does, without its round-off). For a stack it may return one rate per member.
    schedule_unit : {"step", "epoch"}
        What ``t`` counts.
    patience : int, optional
        Early stopping: end training after ``patience`` epochs in which the
        monitored validation metric did not improve by more than ``min_delta``
        (for a stack: once every member has run out of patience). Needs a
        validation set.
    monitor : {"val_loss", "val_accuracy"}
        The metric that early stopping and ``history.best_epoch`` follow.
    min_delta : float
        The smallest change that counts as an improvement, >= 0.
    restore_best : bool, optional
        Load the weights of the best epoch at the end. Default: True with
        ``patience``, False without. Needs a validation set.
    augment : callable, optional
        ``augment(X_batch, rng)`` returns a randomly transformed copy of the
        float64 array ``X_batch`` (rows are examples); applied to every
        mini-batch (the training accuracy is measured on the clean data). ``rng``
        is a NumPy generator seeded from ``seed``. For a stack of K models it
        gets the K mini-batches at once, member by member (``K * B`` rows, so
        ``X_batch.reshape(K, B, -1)[k]`` is member k's batch).
    callback : callable, optional
        ``callback(model, step)`` with a :class:`TrainingStep`, called after
        every epoch (or every update with ``callback_every="step"``); a mapping
        it returns is appended to ``history.records`` by name.
    callback_every : {"epoch", "step"}
    progress : bool, optional
        Show a tqdm progress bar; ``None`` decides by :func:`progress_enabled`.

    Returns
    -------
    TrainingHistory

    Notes
    -----
    The loss before the first update (the reference for divergence) is
    evaluated in eval mode, so it neither draws dropout masks nor updates
    BatchNorm statistics. Training runs in train mode; the model's mode is
    restored at the end. Labels outside ``0 .. C - 1`` are a ``ValueError``.
    Small models train on one thread (see :mod:`dl_course._threads`).
    Taught in chapters 5 and 7; used throughout the book.
    """
    import torch

    X_np = as_float_array(X, "X", ndim=2)
    y_np = as_labels(y, "y", n=X_np.shape[0])
    X_t, y_t = torch.as_tensor(X_np, dtype=torch.float32), torch.as_tensor(y_np)
    if (X_val is None) != (y_val is None):
        raise ValueError("X_val and y_val go together: give both or neither")
    val = None if X_val is None else _as_tensors(X_val, y_val, "_val")
    stacked = _is_stack(model)
    setup = _check_setup(
        members=len(model) if stacked else None,
        has_val=val is not None,
        lr=lr,
        epochs=epochs,
        batch_size=batch_size,
        optimizer=optimizer,
        weight_decay=weight_decay,
        seed=seed,
        allow_divergence=allow_divergence,
        schedule=schedule,
        schedule_unit=schedule_unit,
        patience=patience,
        monitor=monitor,
        min_delta=min_delta,
        restore_best=restore_best,
        augment=augment,
        callback=callback,
        callback_every=callback_every,
        progress=progress,
    )
    opt = _make_optimizer(model, setup, momentum, betas)
    was_training = model.training
    # the work per member decides: a stack's batched products are as small as its members'
    work = batch_size * sum(p.numel() for p in model.parameters()) // (len(model) if stacked else 1)
    with limited_threads(work), torch.random.fork_rng(devices=[]):
        torch.manual_seed(setup.seeds[0])
        try:
            labels = {"y": y_t} | ({"y_val": val[1]} if val is not None else {})
            initial = _initial_loss(model, X_t, labels)
            return _Loop(model, opt, setup, X_np, X_t, y_t, val, initial).run()
        finally:
            model.train(was_training)


def _per_member(value, name: str, members: int | None, **bounds) -> float | np.ndarray:
    """A float, or for a stack one float per member, each checked with ``bounds``."""
    if np.ndim(value) == 0:
        return check_real(value, name, **bounds)
    if members is None:
        raise ValueError(f"{name} must be a single number for one model (a sequence needs a stack)")
    values = [check_real(v, f"{name}[{k}]", **bounds) for k, v in enumerate(np.ravel(value))]
    if np.ndim(value) != 1 or len(values) != members:
        raise ValueError(f"{name} must hold one value per member ({members}), got {len(values)}")
    return np.array(values)


def _check_choice(value, name: str, allowed: tuple) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")
    return value


def _check_callable(value, name: str):
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be callable or None, got {type(value).__name__}")
    return value


def _check_setup(*, members, has_val, **kw) -> _Setup:
    """Validate the arguments of :func:`train_classifier` (all but the data and model)."""
    lr = _per_member(kw["lr"], "lr", members, low=0.0, low_open=True)
    weight_decay = _per_member(kw["weight_decay"], "weight_decay", members, low=0.0)
    seed = kw["seed"]
    if np.ndim(seed) == 0:
        seeds = [check_seed(seed)]
    elif members is None:
        raise ValueError("seed must be a single integer for one model (a sequence needs a stack)")
    else:
        seeds = [check_seed(s, f"seed[{k}]") for k, s in enumerate(seed)]
        if len(seeds) != members:
            raise ValueError(f"seed must hold one seed per member ({members}), got {len(seeds)}")
    patience = kw["patience"]
    if patience is not None:
        patience = check_int(patience, "patience", low=1)
    restore_best = kw["restore_best"]
    restore_best = (
        patience is not None if restore_best is None else check_bool(restore_best, "restore_best")
    )
    if (patience is not None or restore_best) and not has_val:
        raise ValueError("patience and restore_best need a validation set (X_val, y_val)")
    progress = kw["progress"]
    if progress is not None:
        progress = check_bool(progress, "progress")
    return _Setup(
        epochs=check_int(kw["epochs"], "epochs", low=1),
        batch_size=check_int(kw["batch_size"], "batch_size", low=1),
        optimizer=_check_choice(kw["optimizer"], "optimizer", OPTIMIZERS),
        lr=lr,
        weight_decay=weight_decay,
        seeds=seeds,
        members=members,
        allow_divergence=check_bool(kw["allow_divergence"], "allow_divergence"),
        schedule=_check_callable(kw["schedule"], "schedule"),
        schedule_unit=_check_choice(kw["schedule_unit"], "schedule_unit", ("step", "epoch")),
        patience=patience,
        monitor=_check_choice(kw["monitor"], "monitor", MONITORS),
        min_delta=check_real(kw["min_delta"], "min_delta", low=0.0),
        restore_best=restore_best,
        augment=_check_callable(kw["augment"], "augment"),
        callback=_check_callable(kw["callback"], "callback"),
        callback_every=_check_choice(kw["callback_every"], "callback_every", ("epoch", "step")),
        progress=progress,
    )


def _make_optimizer(model, setup: _Setup, momentum, betas):
    """The torch optimizer of the run.

    For one model it carries ``lr`` and ``weight_decay`` itself. For a stack it
    runs with rate 1 and no decay, and :meth:`_Loop.update` applies each
    member's rate and decay (both optimizers' updates are linear in the rate).
    """
    import torch

    name = setup.optimizer
    if momentum is None:
        momentum = 0.9 if name == "momentum" else 0.0
    elif name in ("adam", "adamw"):
        raise ValueError(f"momentum applies to 'sgd' and 'momentum' only; {name} uses betas")
    momentum = check_real(momentum, "momentum", low=0.0, high=1.0, high_open=True)
    if not isinstance(betas, tuple | list) or len(betas) != 2:
        raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    betas = tuple(
        check_real(b, f"betas[{k}]", low=0.0, high=1.0, high_open=True) for k, b in enumerate(betas)
    )
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters (all have requires_grad=False)")
    stacked = setup.members is not None
    lr = 1.0 if stacked else setup.lr
    decay = 0.0 if stacked else setup.weight_decay
    if name in ("sgd", "momentum"):
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=decay)
    cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
    return cls(params, lr=lr, betas=betas, weight_decay=decay)


def _initial_loss(model, X_t, labels: dict):
    """The loss on ``X_t`` before training, in eval mode (one per member for a stack).

    Checks every label array in ``labels`` (by argument name; ``"y"`` is the
    one of ``X_t``) against the number of outputs of the model.
    """
    import torch

    model.eval()
    with torch.no_grad():
        logits = model(X_t)
    stacked = _is_stack(model)
    if logits.ndim != (3 if stacked else 2) or logits.shape[-2] != len(X_t):
        expected = f"({len(model)}, N, C)" if stacked else "(N, C)"
        raise ValueError(
            f"model must map X of shape (N, d) to logits of shape {expected}; for X of shape "
            f"{tuple(X_t.shape)} it returned shape {tuple(logits.shape)}"
        )
    n_classes = logits.shape[-1]
    for name, y in labels.items():
        bad = y[(y < 0) | (y >= n_classes)]
        if len(bad):
            raise ValueError(
                f"{name} must hold class indices 0 .. {n_classes - 1} (the model has "
                f"{n_classes} outputs), found {sorted(set(bad.tolist()))[:5]}"
            )
    return _metrics(logits, labels["y"])[0]


class _Loop:
    """One run of :func:`train_classifier` (inputs already validated)."""

    def __init__(self, model, opt, setup: _Setup, X_np, X_t, y_t, val, initial):
        self.model, self.opt, self.s = model, opt, setup
        self.X_np, self.X_t, self.y_t, self.val = X_np, X_t, y_t, val
        self.initial = initial
        self.stacked = setup.members is not None
        self.rngs = [np.random.default_rng(s) for s in setup.seeds]
        self.aug_rng = np.random.default_rng([*setup.seeds, 0xA06])  # apart from the batch order
        self.history = TrainingHistory()
        self.steps = 0
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.best = _BestTracker(model, setup) if val is not None else None

    # one epoch's mini-batches: (B,) indices for one model, (K, B) for a stack
    def epoch_batches(self) -> list[np.ndarray]:
        n, size = len(self.y_t), self.s.batch_size
        if not self.stacked:
            return batches(n, size, self.rngs[0])
        if len(self.rngs) == 1:
            shared = batches(n, size, self.rngs[0])
            return [np.repeat(i[None], self.s.members, axis=0) for i in shared]
        per_member = [batches(n, size, rng) for rng in self.rngs]
        return [np.stack(parts) for parts in zip(*per_member, strict=True)]

    def inputs(self, index: np.ndarray):
        import torch

        if self.s.augment is None:
            return self.X_t[index]
        rows = self.X_np[index.reshape(-1)]
        out = np.asarray(self.s.augment(rows, self.aug_rng), dtype=np.float64)
        if out.shape != rows.shape:
            raise ValueError(
                f"augment must return an array of the batch's shape {rows.shape}, got {out.shape}"
            )
        return torch.as_tensor(out, dtype=torch.float32).view(*index.shape, -1)

    def rate(self, t: int):
        if self.s.schedule is None:
            return self.s.lr
        value = self.s.schedule(t)
        rates = np.asarray(value, dtype=float) if np.ndim(value) else None
        if rates is None:
            if not isinstance(value, int | float | np.floating | np.integer) or isinstance(
                value, bool
            ):
                raise TypeError(f"schedule({t}) must return a number, got {type(value).__name__}")
            rates = np.asarray(float(value))
        if not np.all(np.isfinite(rates)) or np.any(rates < 0):
            raise ValueError(f"schedule({t}) must be a finite rate >= 0, got {value!r}")
        if rates.ndim == 0:
            return float(rates)
        if not self.stacked or rates.shape != (self.s.members,):
            raise ValueError(
                f"schedule({t}) must return one rate"
                + (f" or one per member ({self.s.members})" if self.stacked else "")
                + f", got shape {rates.shape}"
            )
        return rates

    def batch_loss(self, index):
        import torch

        logits = self.model(self.inputs(index))
        labels = self.y_t[index]
        if not self.stacked:
            return torch.nn.functional.cross_entropy(logits, labels)
        k, b, c = logits.shape
        losses = torch.nn.functional.cross_entropy(
            logits.reshape(k * b, c), labels.reshape(-1), reduction="none"
        )
        return losses.view(k, b).mean(dim=1)

    def update(self, rate) -> None:
        """One optimizer step at ``rate`` (per member for a stack)."""
        import torch

        if not self.stacked:
            if self.s.schedule is not None:
                for group in self.opt.param_groups:
                    group["lr"] = rate
            self.opt.step()
            return
        k = self.s.members
        decay, decoupled = self.s.weight_decay, self.s.optimizer == "adamw"
        with torch.no_grad():
            before = [p.detach().clone() for p in self.params]
            if not decoupled and np.any(decay):  # the L2 term, as SGD and Adam add it
                for p in self.params:
                    if p.grad is not None:
                        p.grad.add_(p * _column(decay, k, p))
        self.opt.step()  # at rate 1, no decay
        with torch.no_grad():
            for p, old in zip(self.params, before, strict=True):
                r = _column(rate, k, p)
                p.copy_(old + r * (p - old))
                if decoupled and np.any(decay):
                    p.sub_(r * _column(decay, k, p) * old)

    def diverged(self, message: str) -> bool:
        """Raise, or (with allow_divergence) mark the history; returns True to stop."""
        if not self.s.allow_divergence:
            raise DivergenceError(message)
        self.history.diverged = True
        self.history.divergence = message
        return True

    def check_step(self, value, epoch: int, batch: int, rate) -> bool:
        """True (stop) if a mini-batch loss is NaN or infinite."""
        values = np.atleast_1d(value)
        bad = np.flatnonzero(~np.isfinite(values))
        if not len(bad):
            return False
        who = f"member {bad[0]} of the stack " if self.stacked else ""
        lr = float(np.broadcast_to(rate, values.shape)[bad[0]])
        return self.diverged(
            f"training {who}diverged at step {self.steps + 1} (epoch {epoch}, batch {batch}): "
            f"the loss is {values[bad[0]]:.4g}; try a smaller learning rate (lr = {lr:g})"
        )

    def check_epoch(self, mean, epoch: int, rate) -> bool:
        """True (stop) if an epoch's mean loss exploded (see :func:`check_divergence`)."""
        means, initial = np.atleast_1d(mean), np.atleast_1d(self.initial)
        rates = np.broadcast_to(rate, means.shape)
        for k in range(len(means)):
            try:
                check_divergence(float(means[k]), epoch, float(rates[k]), float(initial[k]))
            except DivergenceError as error:
                who = f"member {k} of the stack: " if self.stacked else ""
                return self.diverged(f"{who}{error}")
        return False

    def record(self, epoch: int, loss, rate) -> None:
        if self.s.callback is None:
            return
        out = self.s.callback(self.model, TrainingStep(epoch, self.steps, loss, rate))
        if out is None:
            return
        if not isinstance(out, Mapping):
            raise TypeError(f"callback must return a mapping or None, got {type(out).__name__}")
        for name, value in out.items():
            value = value.detach().cpu().numpy() if hasattr(value, "detach") else value
            value = np.asarray(value, dtype=float)
            self.history.records.setdefault(str(name), []).append(
                float(value) if value.ndim == 0 else value
            )

    def run_epoch(self, epoch: int) -> bool:
        """Train one epoch; True if training must stop (divergence)."""
        total, count = 0.0, 0
        rate = self.s.lr
        for b, index in enumerate(self.epoch_batches(), start=1):
            t = self.steps if self.s.schedule_unit == "step" else epoch - 1
            rate = self.rate(t)
            self.opt.zero_grad()
            loss = self.batch_loss(index)
            value = loss.item() if not self.stacked else loss.detach().double().numpy()
            if self.check_step(value, epoch, b, rate):
                return True
            (loss.sum() if self.stacked else loss).backward()
            self.update(rate)
            self.steps += 1
            self.history.lrs.append(rate)
            self.history.step_loss.append(value)
            total += value * index.shape[-1]
            count += index.shape[-1]
            if self.s.callback_every == "step":
                self.record(epoch, value, rate)
        mean = total / count
        if self.check_epoch(mean, epoch, rate):
            return True
        h = self.history
        h.train_loss.append(mean)
        h.train_accuracy.append(_evaluate(self.model, self.X_t, self.y_t)[1])
        if self.val is not None:
            val_loss, val_acc = _evaluate(self.model, *self.val)
            h.val_loss.append(val_loss)
            h.val_accuracy.append(val_acc)
        if self.s.callback_every == "epoch":
            self.record(epoch, mean, rate)
        return False

    def run(self) -> TrainingHistory:
        bar = _progress_bar(self.s.progress, self.s.epochs)
        self.model.train()
        try:
            for epoch in range(1, self.s.epochs + 1):
                if self.run_epoch(epoch):
                    break
                if bar is not None:
                    bar.update()
                    bar.set_postfix(loss=f"{np.mean(self.history.train_loss[-1]):.4g}")
                if self.best is not None and self.best.update(self.history, epoch):
                    self.history.stopped_epoch = epoch
                    break
        finally:
            if bar is not None:
                bar.close()
        if self.best is not None:
            self.history.best_epoch = self.best.best_epoch()
            if self.s.restore_best:
                self.best.restore()
        return self.history


def _column(value, k: int, p):
    """``value`` (a float or K floats) shaped to broadcast over a stacked parameter ``p``."""
    import torch

    if np.ndim(value) == 0:
        return float(value)
    return torch.as_tensor(value, dtype=p.dtype).view(k, *([1] * (p.ndim - 1)))


class _BestTracker:
    """The best epoch so far of each member, its weights, and the patience left."""

    def __init__(self, model, setup: _Setup):
        self.model, self.s = model, setup
        self.stacked = setup.members is not None
        size = setup.members or 1
        self.higher = setup.monitor == "val_accuracy"
        self.value = np.full(size, -np.inf if self.higher else np.inf)
        self.epoch = np.zeros(size, dtype=int)
        self.waited = np.zeros(size, dtype=int)
        self.state = None

    def update(self, history: TrainingHistory, epoch: int) -> bool:
        """Note the epoch's metric; True when early stopping says stop."""
        metric = np.atleast_1d(getattr(history, self.s.monitor)[-1])
        if self.higher:
            better = metric > self.value + self.s.min_delta
        else:
            better = metric < self.value - self.s.min_delta
        better |= self.epoch == 0  # the first epoch is the best so far
        self.value[better] = metric[better]
        self.epoch[better] = epoch
        self.waited[better] = 0
        self.waited[~better] += 1
        if self.s.restore_best and better.any():
            self.save(better)
        return self.s.patience is not None and bool(np.all(self.waited >= self.s.patience))

    def save(self, better: np.ndarray) -> None:
        import torch

        if not self.stacked:
            self.state = copy.deepcopy(self.model.state_dict())
            return
        mask = torch.as_tensor(better)
        with torch.no_grad():
            current = [p.detach().clone() for p in self.model.parameters()]
            if self.state is None:
                self.state = current
            else:
                for saved, now in zip(self.state, current, strict=True):
                    saved[mask] = now[mask]

    def restore(self) -> None:
        import torch

        if self.state is None:
            return
        if not self.stacked:
            self.model.load_state_dict(self.state)
            return
        with torch.no_grad():
            for p, saved in zip(self.model.parameters(), self.state, strict=True):
                p.copy_(saved)

    def best_epoch(self):
        return int(self.epoch[0]) if not self.stacked else self.epoch.copy()
