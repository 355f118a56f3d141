"""Rosenblatt's perceptron and Novikoff's bound on its number of updates (chapter 1)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dl_course._checks import as_float_array, as_labels, check_bool, check_int, check_real


@dataclass(frozen=True)
class PerceptronResult:
    """What :func:`train_perceptron` learned and how it got there.

    Attributes
    ----------
    w : ndarray of shape (d,)
        Final weights.
    b : float
        Final bias (0.0 when trained with ``bias=False``).
    n_updates : int
        Number of updates, that is, of mistakes made during training.
    converged : bool
        True if a full pass over the data made no mistake.
    history : ndarray of shape (n_updates + 1, d + 1)
        Row ``k`` holds ``(w, b)`` after ``k`` updates; row 0 is the zero start.
    mistake_indices : ndarray of shape (n_updates,)
        Index of the example that triggered each update.
    mistakes_per_epoch : ndarray of shape (n_epochs,)
        Number of mistakes in each pass over the data; a converged run ends with a 0.
    """

    w: np.ndarray
    b: float
    n_updates: int
    converged: bool
    history: np.ndarray
    mistake_indices: np.ndarray
    mistakes_per_epoch: np.ndarray

    @property
    def n_epochs(self) -> int:
        """Number of passes over the data, the final mistake-free pass included."""
        return len(self.mistakes_per_epoch)


def train_perceptron(
    X, y, lr: float = 1.0, max_epochs: int = 1000, bias: bool = True
) -> PerceptronResult:
    """Train a perceptron with the fix-on-mistake rule, starting from zero weights.

    Examples are visited in the given order. An example is a mistake when
    ``y_i * (w @ x_i + b) <= 0`` (a score of exactly zero counts as a mistake);
    a mistake triggers ``w += lr * y_i * x_i`` and, with ``bias=True``,
    ``b += lr * y_i``. Training stops after the first pass without a mistake or
    after ``max_epochs`` passes. Taught in chapter 1.

    Because the weights start at zero, ``lr`` only rescales ``w`` and ``b``: the
    sequence of mistakes, and so ``n_updates``, does not depend on it.

    Parameters
    ----------
    X : array of shape (n, d)
        Inputs.
    y : array of shape (n,)
        Labels in {-1, +1}.
    lr : float
        Learning rate, > 0.
    max_epochs : int
        Maximum number of passes over the data, >= 1.
    bias : bool
        Learn a bias ``b``; if False the hyperplane passes through the origin.

    Returns
    -------
    PerceptronResult

    Examples
    --------
    The worked example of chapter 1:

    >>> result = train_perceptron([[2, 1], [-1, 2]], [1, -1])
    >>> result.w.tolist(), result.b, result.n_updates, result.converged
    ([3.0, -1.0], 0.0, 2, True)
    """
    X = as_float_array(X, "X", ndim=2)
    n, d = X.shape
    y = as_labels(y, "y", n=n, allowed=(-1, 1))
    lr = check_real(lr, "lr", low=0.0, low_open=True)
    max_epochs = check_int(max_epochs, "max_epochs", low=1)
    bias = check_bool(bias, "bias")

    # Absorb the bias into the weights: x~ = (x, 1) and w~ = (w, b).
    X_aug = np.hstack([X, np.ones((n, 1)) if bias else np.zeros((n, 1))])
    w_aug = np.zeros(d + 1)
    history = [w_aug.copy()]
    mistakes: list[int] = []
    per_epoch: list[int] = []
    while len(per_epoch) < max_epochs and (not per_epoch or per_epoch[-1] > 0):
        start, before = 0, len(mistakes)
        while start < n:
            # The next mistake of this pass, found for all remaining examples at once.
            wrong = np.flatnonzero(y[start:] * (X_aug[start:] @ w_aug) <= 0)
            if wrong.size == 0:
                break
            i = start + int(wrong[0])
            w_aug += lr * y[i] * X_aug[i]
            history.append(w_aug.copy())
            mistakes.append(i)
            start = i + 1
        per_epoch.append(len(mistakes) - before)
    return PerceptronResult(
        w=w_aug[:d].copy(),
        b=float(w_aug[d]),
        n_updates=len(mistakes),
        converged=per_epoch[-1] == 0,
        history=np.array(history),
        mistake_indices=np.array(mistakes, dtype=np.int64),
        mistakes_per_epoch=np.array(per_epoch, dtype=np.int64),
    )


def predict(X, w, b: float = 0.0) -> np.ndarray:
    """Return the perceptron's labels ``sign(X @ w + b)`` in {-1, +1}, with sign(0) = +1.

    Taught in chapter 1.
    """
    X = as_float_array(X, "X", ndim=2)
    w = as_float_array(w, "w", ndim=1)
    if w.shape[0] != X.shape[1]:
        raise ValueError(
            f"w must have length {X.shape[1]} (the number of columns of X), got {w.shape[0]}"
        )
    b = check_real(b, "b")
    return np.where(X @ w + b >= 0, 1, -1)


def novikoff_bound(X, y, w_star, bias: bool = True) -> float:
    """Return Novikoff's bound ``R**2 / gamma**2`` on the perceptron's number of updates.

    ``gamma = min_i y_i * (w_star @ X[i])`` is the margin of the unit vector
    ``w_star`` (a hyperplane through the origin) and ``R = max_i ||x_i||``. With
    ``bias=True`` the perceptron runs on the inputs with a constant 1 appended, so
    ``R`` is the radius of those augmented inputs; ``w_star`` padded with a zero
    keeps its margin. Taught in chapter 1.

    Raises ``ValueError`` if ``w_star`` is not a unit vector or does not separate
    the data (``gamma <= 0``), since the theorem then says nothing.
    """
    X = as_float_array(X, "X", ndim=2)
    n, d = X.shape
    y = as_labels(y, "y", n=n, allowed=(-1, 1))
    w_star = as_float_array(w_star, "w_star", ndim=1)
    if w_star.shape[0] != d:
        raise ValueError(
            f"w_star must have length {d} (the number of columns of X), got {w_star.shape[0]}"
        )
    if not np.isclose(np.linalg.norm(w_star), 1.0, rtol=1e-9, atol=1e-12):
        raise ValueError(f"w_star must have unit norm, got norm {np.linalg.norm(w_star):.6g}")
    bias = check_bool(bias, "bias")
    gamma = float(np.min(y * (X @ w_star)))
    if gamma <= 0:
        raise ValueError(f"w_star does not separate the data: its margin is {gamma:.6g} <= 0")
    radius_sq = float(np.max(np.sum(X**2, axis=1) + (1.0 if bias else 0.0)))
    return radius_sq / gamma**2


def margin_sweep(
    margins, n: int = 100, dims: tuple[int, int] = (2, 10), sets_per_margin: int = 25, seed: int = 0
) -> dict[str, np.ndarray]:
    """Train a perceptron on many random separable data sets and compare with Novikoff's bound.

    For every margin and every one of ``sets_per_margin`` seeds, draws ``n``
    points with :func:`dl_course.data.make_separable` in a dimension cycling
    through ``dims[0] .. dims[1]``, trains to convergence (bias included) and
    records the number of updates and the bound. Taught in chapter 1.

    Returns
    -------
    dict with arrays ``margin`` (the requested one), ``actual_margin`` (the
    margin ``min_i y_i * (w_star @ X[i])`` the drawn points really have, never
    below the requested one), ``dim``, ``n_updates``, ``bound`` and
    ``converged``, one entry per data set (``len(margins) * sets_per_margin``).
    """
    from dl_course.data import make_separable

    margins = as_float_array(margins, "margins", ndim=1)
    if np.any(margins <= 0):
        raise ValueError("margins must all be > 0")
    n = check_int(n, "n", low=2)
    sets_per_margin = check_int(sets_per_margin, "sets_per_margin", low=1)
    low = check_int(dims[0], "dims[0]", low=1)
    high = check_int(dims[1], "dims[1]", low=low)
    seed = check_int(seed, "seed", low=0)
    rows = []
    for k, margin in enumerate(margins):
        for j in range(sets_per_margin):
            dim = low + j % (high - low + 1)
            X, y, w_star = make_separable(
                n, dim, float(margin), seed=seed + k * sets_per_margin + j
            )
            result = train_perceptron(X, y, max_epochs=1_000_000)
            actual = float(np.min(y * (X @ w_star)))
            bound = novikoff_bound(X, y, w_star)
            rows.append((margin, actual, dim, result.n_updates, bound, result.converged))
    names = ("margin", "actual_margin", "dim", "n_updates", "bound", "converged")
    columns = zip(*rows, strict=True)
    return {name: np.array(column) for name, column in zip(names, columns, strict=True)}
