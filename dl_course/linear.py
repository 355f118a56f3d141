"""A multiclass linear classifier ``s = W x + b`` trained by gradient descent (chapter 4).

:func:`train_linear_classifier` minimizes one of three losses of
:mod:`dl_course.losses` on the scores, plus an L2 penalty on ``W``, with
full-batch gradient descent. The gradients come from the closed forms in
:mod:`dl_course.losses` (there is no backpropagation yet: for a linear model
the chain rule is one matrix product, ``dL/dW = (dL/ds)^T X``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dl_course import losses
from dl_course._checks import as_float_array, as_labels, check_int, check_real, check_seed
from dl_course._threads import limited_threads
from dl_course.training import DivergenceError


def _mse_to_one_hot(scores: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """:func:`~dl_course.losses.mse` between the scores and one-hot targets, and its gradient."""
    diff = scores.copy()
    diff[np.arange(len(labels)), labels] -= 1.0
    return float(np.mean(diff**2)), 2.0 * diff / diff.size


#: The data losses :func:`train_linear_classifier` knows. Each maps
#: ``(scores, labels)`` to ``(loss, gradient w.r.t. the scores)``: the shared
#: kernels of :mod:`dl_course.losses` (the hinge with its default margin 1) and,
#: for the MSE on one-hot targets, a two-line helper.
LOSSES = {
    "softmax": losses.softmax_cross_entropy_with_grad,
    "hinge": losses.hinge_loss_with_grad,
    "mse": _mse_to_one_hot,
}


@dataclass(frozen=True)
class LinearClassifierResult:
    """What :func:`train_linear_classifier` learned and how the loss evolved.

    Attributes
    ----------
    W : ndarray of shape (C, d)
        Weights; row ``k`` is the template of class ``k``.
    b : ndarray of shape (C,)
        Biases.
    loss : str
        Name of the data loss ("softmax", "hinge" or "mse").
    loss_history : ndarray of shape (epochs + 1,)
        Training objective (data loss + ``reg * ||W||^2``) before each step and
        after the last one.
    data_loss_history : ndarray of shape (epochs + 1,)
        The data loss alone, at the same points.
    accuracy_history : ndarray of shape (epochs + 1,)
        Training accuracy at the same points.
    train_accuracy : float
        Fraction of training examples classified correctly by the final ``W, b``
        (the last entry of ``accuracy_history``).
    """

    W: np.ndarray
    b: np.ndarray
    loss: str
    loss_history: np.ndarray
    data_loss_history: np.ndarray
    accuracy_history: np.ndarray

    @property
    def train_accuracy(self) -> float:
        """Fraction of training examples classified correctly by the final ``W, b``."""
        return float(self.accuracy_history[-1])

    def predict(self, X) -> np.ndarray:
        """Predicted labels for the rows of ``X``; see :func:`predict`."""
        return predict(X, self.W, self.b)

    def accuracy(self, X, y) -> float:
        """Fraction of the rows of ``X`` whose predicted label equals ``y``."""
        X = as_float_array(X, "X", ndim=2)
        y = as_labels(y, "y", n=X.shape[0])
        return float(np.mean(self.predict(X) == y))


def objective(X, y, W, b, loss: str = "softmax", reg: float = 0.0) -> float:
    """Return the training objective ``data_loss(X @ W.T + b, y) + reg * sum(W**2)``.

    Taught in chapter 4.
    """
    return _evaluate(*_checked(X, y, W, b, loss, reg), gradients=False)[1]


def objective_grad(
    X, y, W, b, loss: str = "softmax", reg: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Return the gradients ``(dL/dW, dL/db)`` of :func:`objective`.

    With ``G = dL/dscores`` from :mod:`dl_course.losses`, they are
    ``G.T @ X + 2 reg W`` and ``G.sum(axis=0)``: the chain rule through a
    linear map is one matrix product. Taught in chapter 4.
    """
    return _evaluate(*_checked(X, y, W, b, loss, reg), gradients=True)[3:]


def train_linear_classifier(
    X,
    y,
    loss: str = "softmax",
    lr: float = 0.1,
    epochs: int = 200,
    reg: float = 0.0,
    seed: int = 0,
    *,
    n_classes: int | None = None,
    init_scale: float = 0.01,
) -> LinearClassifierResult:
    """Train ``scores = X @ W.T + b`` by full-batch gradient descent on a loss plus L2 penalty.

    The objective is ``L(W, b) = data_loss(X @ W.T + b, y) + reg * sum(W**2)``,
    where the data loss is :func:`~dl_course.losses.softmax_cross_entropy`
    ("softmax"), :func:`~dl_course.losses.hinge_loss` ("hinge") or the
    :func:`~dl_course.losses.mse` between the scores and one-hot targets
    ("mse"). The bias is not penalized. With ``G = dL/dscores`` (an (N, C)
    array from :mod:`dl_course.losses`) each step is
    ``W -= lr * (G.T @ X + 2 reg W)`` and ``b -= lr * G.sum(axis=0)``.
    ``W`` starts as ``init_scale`` times standard normal noise (seeded), ``b``
    at zero. Taught in chapter 4.

    Parameters
    ----------
    X : array of shape (N, d)
        Inputs, one row per example.
    y : array of shape (N,)
        Integer labels in ``0 .. C-1``.
    loss : {"softmax", "hinge", "mse"}
    lr : float
        Learning rate (step size), > 0.
    epochs : int
        Number of gradient steps (each uses the whole training set), >= 0.
    reg : float
        L2 regularization strength, >= 0.
    seed : int
        Seed of the random initialization of ``W``.
    n_classes : int, optional
        Number of classes ``C``; by default ``max(y) + 1``.
    init_scale : float
        Standard deviation of the initial weights, >= 0.

    Returns
    -------
    LinearClassifierResult

    Raises
    ------
    dl_course.training.DivergenceError
        If the objective or the weights stop being finite (the learning rate
        is too large for this loss and data).

    Examples
    --------
    >>> X = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    >>> result = train_linear_classifier(X, [0, 1, 2], lr=0.5, epochs=500)
    >>> result.train_accuracy
    1.0
    """
    X, y, n_classes = _data(X, y, n_classes)
    _check_loss(loss)
    lr = check_real(lr, "lr", low=0.0, low_open=True)
    epochs = check_int(epochs, "epochs", low=0)
    reg = check_real(reg, "reg", low=0.0)
    init_scale = check_real(init_scale, "init_scale", low=0.0)
    rng = np.random.default_rng(check_seed(seed))

    W = init_scale * rng.standard_normal((n_classes, X.shape[1]))
    b = np.zeros(n_classes)
    history, data_history, accuracy = [], [], []
    with limited_threads(X.size * n_classes):
        for epoch in range(epochs + 1):
            last = epoch == epochs
            try:
                scores, total, data_loss, grad_W, grad_b = _evaluate(
                    X, y, W, b, loss, reg, gradients=not last
                )
            except FloatingPointError:
                raise DivergenceError(
                    f"training with loss={loss!r} diverged at epoch {epoch}: the objective "
                    f"is no longer finite; the learning rate lr={lr:g} is too large, try a "
                    "smaller one"
                ) from None
            history.append(total)
            data_history.append(data_loss)
            accuracy.append(np.mean(np.argmax(scores, axis=1) == y))
            if not last:
                W = W - lr * grad_W
                b = b - lr * grad_b
    return LinearClassifierResult(
        W=W,
        b=b,
        loss=loss,
        loss_history=np.array(history),
        data_loss_history=np.array(data_history),
        accuracy_history=np.array(accuracy),
    )


def predict(X, W, b) -> np.ndarray:
    """Return the labels ``argmax_k (W @ x + b)_k`` for the rows ``x`` of ``X``.

    Ties go to the smallest class index. Taught in chapter 4.

    Parameters
    ----------
    X : array of shape (N, d)
    W : array of shape (C, d)
    b : array of shape (C,)

    Returns
    -------
    ndarray of shape (N,), integer labels in ``0 .. C-1``
    """
    X = as_float_array(X, "X", ndim=2)
    W, b = _parameters(W, b, X.shape[1])
    return np.argmax(X @ W.T + b, axis=1)


# ----------------------------------------------------------------------------- helpers


def _data(X, y, n_classes) -> tuple[np.ndarray, np.ndarray, int]:
    """Validate the training set; return X, the labels and the number of classes."""
    X = as_float_array(X, "X", ndim=2)
    if n_classes is not None:
        n_classes = check_int(n_classes, "n_classes", low=2)
        y = as_labels(y, "y", n=X.shape[0], allowed=range(n_classes))
        return X, y, n_classes
    y = as_labels(y, "y", n=X.shape[0])
    if np.any(y < 0):
        raise ValueError(f"y must hold labels 0 .. C-1, found {int(y.min())}")
    return X, y, max(int(y.max()) + 1, 2)


def _parameters(W, b, d: int) -> tuple[np.ndarray, np.ndarray]:
    W = as_float_array(W, "W", ndim=2)
    b = as_float_array(b, "b", ndim=1)
    if W.shape[1] != d:
        raise ValueError(f"W must have {d} columns (the number of features), got {W.shape[1]}")
    if b.shape[0] != W.shape[0]:
        raise ValueError(f"b must have length {W.shape[0]} (the rows of W), got {b.shape[0]}")
    return W, b


def _check_loss(loss) -> str:
    if not isinstance(loss, str) or loss not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {loss!r}")
    return loss


def _checked(X, y, W, b, loss, reg):
    """Validate the arguments of :func:`objective` and :func:`objective_grad`."""
    X = as_float_array(X, "X", ndim=2)
    W, b = _parameters(W, b, X.shape[1])
    y = as_labels(y, "y", n=X.shape[0], allowed=range(W.shape[0]))
    _check_loss(loss)
    reg = check_real(reg, "reg", low=0.0)
    return X, y, W, b, loss, reg


def _evaluate(X, y, W, b, loss, reg, *, gradients: bool):
    """``(scores, objective, data loss, dL/dW, dL/db)`` on validated inputs; the
    gradients are None unless asked for. Raises ``FloatingPointError`` if anything is
    not finite."""
    with np.errstate(over="ignore", invalid="ignore"):
        scores = X @ W.T + b
        penalty = reg * float(np.sum(W**2))
        if not (np.all(np.isfinite(scores)) and np.isfinite(penalty)):
            raise FloatingPointError("the scores or the weights are no longer finite")
        data_loss, grad = LOSSES[loss](scores, y)
        if not np.isfinite(data_loss + penalty):
            raise FloatingPointError("the objective is no longer finite")
        if not gradients:
            return scores, data_loss + penalty, data_loss, None, None
        grad_W, grad_b = grad.T @ X + 2.0 * reg * W, grad.sum(axis=0)
        return scores, data_loss + penalty, data_loss, grad_W, grad_b
