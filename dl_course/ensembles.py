"""Model ensembles and snapshot ensembles (chapter 7).

An ensemble averages the predicted class probabilities of several models and
predicts the arg-max of the average (:func:`ensemble_probabilities`,
:func:`ensemble_accuracy`). Independent members come from different seeds (a
stack of models, :func:`dl_course.training.stack_models`, trains them side by
side); a *snapshot ensemble* takes its members from a single run whose
learning rate follows a cyclic cosine schedule (:func:`cyclic_cosine`), saving
the model at the end of every cycle (:class:`Snapshots`, a callback for
:func:`dl_course.training.train_classifier`).

NumPy, except that :class:`Snapshots` evaluates a torch model when called.
"""

from __future__ import annotations

import numpy as np

from dl_course._checks import as_float_array, as_labels, check_int, check_real
from dl_course.optim import cosine_annealing


def softmax(logits) -> np.ndarray:
    """Class probabilities from logits along the last axis (stable for large logits)."""
    logits = as_float_array(logits, "logits")
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def ensemble_probabilities(logits) -> np.ndarray:
    """The mean of the members' softmax probabilities.

    ``logits`` has shape (M, ..., N, C): M members first, then any further
    axes (for example K stacked runs), examples and classes; the result drops
    the first axis. Chapter 7.
    """
    logits = as_float_array(logits, "logits")
    if logits.ndim < 3:
        raise ValueError(f"logits must have shape (members, ..., N, C), got {logits.shape}")
    return softmax(logits).mean(axis=0)


def _labels(y, n: int) -> np.ndarray:
    return as_labels(y, "y", n=n)


def ensemble_accuracy(logits, y) -> float | np.ndarray:
    """Accuracy of the arg-max of :func:`ensemble_probabilities` (one per run of axis 1 if any)."""
    probs = ensemble_probabilities(logits)
    y = _labels(y, probs.shape[-2])
    correct = (probs.argmax(axis=-1) == y).mean(axis=-1)
    return float(correct) if np.ndim(correct) == 0 else correct


def member_accuracies(logits, y) -> np.ndarray:
    """Accuracy of each member alone: shape (M,) or (M, ...) like ``logits`` without (N, C)."""
    logits = as_float_array(logits, "logits")
    if logits.ndim < 3:
        raise ValueError(f"logits must have shape (members, ..., N, C), got {logits.shape}")
    y = _labels(y, logits.shape[-2])
    return (logits.argmax(axis=-1) == y).mean(axis=-1)


def cyclic_cosine(lr0: float, t: int, cycle: int, lr_min: float = 0.0) -> float:
    """Cosine annealing from ``lr0`` to ``lr_min`` that restarts every ``cycle`` steps.

    ``cosine_annealing(lr0, t mod cycle, cycle, lr_min)`` of
    :mod:`dl_course.optim`: the schedule of snapshot ensembles (Huang et al.,
    2017), which save a model at the end of each cycle, where the rate is
    lowest. Chapter 7.
    """
    lr0 = check_real(lr0, "lr0", low=0.0, low_open=True)
    t = check_int(t, "t", low=0)
    cycle = check_int(cycle, "cycle", low=1)
    return cosine_annealing(lr0, t % cycle, cycle, lr_min)


class Snapshots:
    """A ``callback`` for :func:`~dl_course.training.train_classifier` saving predictions.

    At every epoch that is a multiple of ``every`` it evaluates the model (in
    eval mode, without gradients) on the inputs ``X`` and keeps the logits;
    :attr:`logits` stacks them into an array of shape (M, N, C), or (M, K, N, C)
    for a stack of K models. It records nothing in the history. Chapter 7.

    Parameters
    ----------
    X : array of shape (N, d)
        The inputs to predict, for example the test set.
    every : int
        Save every ``every`` epochs (for a snapshot ensemble: the cycle length in
        epochs), >= 1.
    """

    def __init__(self, X, every: int):
        self.X = as_float_array(X, "X", ndim=2)
        self.every = check_int(every, "every", low=1)
        self.epochs: list[int] = []
        self._logits: list[np.ndarray] = []

    def __call__(self, model, step) -> None:
        if step.epoch % self.every:
            return None
        import torch

        was_training = model.training
        model.eval()
        with torch.no_grad():
            logits = model(torch.as_tensor(self.X, dtype=torch.float32))
        model.train(was_training)
        self.epochs.append(step.epoch)
        self._logits.append(logits.double().numpy())
        return None

    @property
    def logits(self) -> np.ndarray:
        """The saved logits, one entry per snapshot along the first axis."""
        if not self._logits:
            raise ValueError("no snapshot saved yet: train for at least `every` epochs")
        return np.stack(self._logits)
