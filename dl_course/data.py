"""Data sets used across the book. Everything is synthetic or ships with a package,
so nothing is downloaded at run time.

- :func:`make_separable`: linearly separable points with a known margin (chapter 1).
- :func:`xor`: the four XOR points (chapters 1 and 2).
- :func:`load_digits`: scikit-learn's 8x8 handwritten digits (chapters 4 and 5 onward).
"""

from __future__ import annotations

import numpy as np

from dl_course._checks import check_int, check_real, check_seed


def make_separable(
    n: int, d: int, margin: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw ``n`` points in ``d`` dimensions that a hyperplane through the origin separates.

    A unit vector ``w_star`` is drawn at random. Each point gets a random label
    ``y`` in {-1, +1}; its component along ``w_star`` is ``y * (margin + u)``
    with ``u ~ Uniform(0, 1)``, and its other components are uniform in
    [-1, 1] (projected onto the hyperplane ``w_star . x = 0``). So every point
    lies at distance at least ``margin`` from that hyperplane, on its label's
    side. Both labels occur whenever ``n >= 2``. Taught in chapter 1.

    Parameters
    ----------
    n : int
        Number of points, at least 2.
    d : int
        Dimension of the inputs, at least 1.
    margin : float
        Guaranteed margin, > 0: ``min_i y_i * (w_star @ X[i]) >= margin``.
    seed : int
        Seed of the random generator.

    Returns
    -------
    X : ndarray of shape (n, d)
    y : ndarray of shape (n,), integer labels in {-1, +1}
    w_star : ndarray of shape (d,), unit norm

    Examples
    --------
    >>> X, y, w_star = make_separable(50, 2, margin=0.1, seed=0)
    >>> bool(np.min(y * (X @ w_star)) >= 0.1)
    True
    """
    n = check_int(n, "n", low=2)
    d = check_int(d, "d", low=1)
    margin = check_real(margin, "margin", low=0.0, low_open=True)
    rng = np.random.default_rng(check_seed(seed))

    w_star = rng.standard_normal(d)
    w_star /= np.linalg.norm(w_star)
    y = np.where(np.arange(n) % 2 == 0, 1, -1)
    rng.shuffle(y)
    spread = rng.uniform(-1.0, 1.0, size=(n, d))
    spread -= np.outer(spread @ w_star, w_star)
    along = y * (margin + rng.uniform(0.0, 1.0, size=n))
    X = spread + np.outer(along, w_star)
    return X, y.astype(np.int64), w_star


def xor() -> tuple[np.ndarray, np.ndarray]:
    """Return the four XOR points ``X`` (shape (4, 2)) and labels ``y`` in {0, 1}.

    ``y = x1 XOR x2``: the points (0, 1) and (1, 0) have label 1. Taught in
    chapter 1 (why a perceptron fails) and chapter 2 (how a hidden layer succeeds).
    """
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = np.array([0, 1, 1, 0], dtype=np.int64)
    return X, y


def load_digits(
    test_size: float = 0.25, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Load scikit-learn's 8x8 handwritten digits, split into train and test sets.

    1,797 images of the digits 0-9, each flattened to 64 pixels scaled to
    [0, 1]. The split is stratified by class and fixed by ``seed``. The data
    ship inside scikit-learn: nothing is downloaded. Used from chapter 4 on.

    Parameters
    ----------
    test_size : float
        Fraction of the examples held out for testing, strictly between 0 and 1.
    seed : int
        Seed of the shuffle before splitting.

    Returns
    -------
    X_train, X_test : ndarray of shape (n_train, 64) and (n_test, 64)
    y_train, y_test : integer ndarrays of labels 0-9
    """
    test_size = check_real(test_size, "test_size", low=0.0, high=1.0, low_open=True, high_open=True)
    seed = check_seed(seed)
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    digits = sklearn_digits()
    X = digits.data.astype(np.float64) / 16.0
    y = digits.target.astype(np.int64)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=test_size, random_state=seed, stratify=y
    )
    return X_train, X_test, y_train, y_test
