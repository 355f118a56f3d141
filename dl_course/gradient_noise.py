"""The noise of mini-batch gradients, measured and predicted (chapter 6).

Stochastic gradient descent replaces the full gradient ``g = (1/N) sum_i g_i``
by the mean over a random mini-batch of ``B`` examples. That mean is unbiased,
and its total variance ``E ||g_B - g||^2`` has a closed form in terms of the
per-example gradients' spread ``s^2 = (1/N) sum_i ||g_i - g||^2``:

- batches drawn *with* replacement: ``s^2 / B``;
- batches drawn *without* replacement (a shuffled epoch): ``s^2 / B * (N - B) / (N - 1)``,
  the finite-population correction, which reaches 0 at ``B = N``.

:func:`minibatch_gradient_variance` measures it by sampling batches and
:func:`minibatch_variance_formula` predicts it; chapter 6 compares the two on
the per-example gradients of softmax regression on the digits
(:func:`softmax_example_gradients`).
"""

from __future__ import annotations

import numpy as np

from dl_course._checks import as_float_array, as_labels, check_bool, check_int, check_seed


def softmax_example_gradients(X, y, W, b) -> np.ndarray:
    """Per-example gradients of the cross-entropy of ``scores = X @ W.T + b``.

    Parameters
    ----------
    X : array of shape (N, d)
    y : integer labels of shape (N,), in ``0 .. C-1``
    W : array of shape (C, d)
    b : array of shape (C,)

    Returns
    -------
    ndarray of shape (N, C * d + C)
        Row ``i`` is the gradient of ``-log softmax(W x_i + b)[y_i]`` with
        respect to ``W`` (flattened row by row) followed by ``b``: the blocks
        ``(p_i - e_{y_i}) x_i^T`` and ``p_i - e_{y_i}``. Their mean over the
        rows is the full-batch gradient of chapter 4's softmax loss.
    """
    X = as_float_array(X, "X", ndim=2)
    W = as_float_array(W, "W", ndim=2)
    b = as_float_array(b, "b", ndim=1)
    n_classes = W.shape[0]
    if W.shape[1] != X.shape[1] or b.shape != (n_classes,):
        raise ValueError(
            f"W must have shape (C, {X.shape[1]}) and b shape (C,), got {W.shape} and {b.shape}"
        )
    y = as_labels(y, "y", n=X.shape[0], allowed=range(n_classes))
    scores = X @ W.T + b
    scores -= scores.max(axis=1, keepdims=True)
    p = np.exp(scores)
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1.0
    per_weight = (p[:, :, None] * X[:, None, :]).reshape(len(y), -1)
    return np.hstack([per_weight, p])


def _population(G, batch_size) -> tuple[np.ndarray, int]:
    G = as_float_array(G, "G", ndim=2)
    batch_size = check_int(batch_size, "batch_size", low=1, high=G.shape[0])
    return G, batch_size


def minibatch_variance_formula(G, batch_size: int, *, replace: bool = False) -> float:
    """The exact ``E ||g_B - g||^2`` for batches of ``batch_size`` rows of ``G``.

    ``G`` holds one per-example gradient per row. With ``s^2`` the mean squared
    distance of the rows from their mean, the answer is ``s^2 / B``, times
    ``(N - B) / (N - 1)`` when the batch is drawn without replacement.
    """
    G, batch_size = _population(G, batch_size)
    replace = check_bool(replace, "replace")
    n = G.shape[0]
    spread = float(np.mean(np.sum((G - G.mean(axis=0)) ** 2, axis=1)))
    if replace:
        return spread / batch_size
    return 0.0 if n == 1 else spread / batch_size * (n - batch_size) / (n - 1)


def minibatch_gradient_variance(
    G, batch_size: int, *, trials: int = 500, replace: bool = False, seed: int = 0
) -> tuple[float, float]:
    """Monte-Carlo estimate of ``E ||g_B - g||^2`` and its standard error.

    Draws ``trials`` random batches of ``batch_size`` rows of ``G`` (with or
    without replacement), averages each, and returns the mean squared distance
    of these batch gradients from the full mean, with the standard error of
    that mean. All batches are averaged in one matrix product.
    """
    G, batch_size = _population(G, batch_size)
    trials = check_int(trials, "trials", low=2)
    replace = check_bool(replace, "replace")
    rng = np.random.default_rng(check_seed(seed))
    n = G.shape[0]
    if replace:
        picks = rng.integers(0, n, size=(trials, batch_size))
    else:
        picks = np.argsort(rng.random((trials, n)), axis=1)[:, :batch_size]
    weights = np.zeros((trials, n))
    np.add.at(weights, (np.arange(trials)[:, None], picks), 1.0 / batch_size)
    deviations = weights @ G - G.mean(axis=0)
    squared = np.sum(deviations**2, axis=1)
    return float(squared.mean()), float(squared.std(ddof=1) / np.sqrt(trials))
