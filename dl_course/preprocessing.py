"""Input preprocessing: centering, standardization, PCA and ZCA whitening (chapter 7).

Each method is an affine map ``z = W (x - mean)`` whose ``mean`` and ``W`` are
estimated on the training split only, by :func:`fit_preprocessing`, and then
applied unchanged to every split with :meth:`Preprocessing.transform`:

==============  =========================================================================
method          ``W``
==============  =========================================================================
"center"        the identity: subtract the mean
"standardize"   ``diag(1 / std)``: unit variance per feature (constant features: 1)
"pca"           ``Lambda^(-1/2) U^T``: decorrelate along the principal axes and scale
                them to unit variance (one output per kept component)
"zca"           ``U Lambda^(-1/2) U^T``: the same, rotated back to the input axes
==============  =========================================================================

``U`` and ``Lambda`` hold the eigenvectors and eigenvalues of the training
covariance (the biased estimate, dividing by n), so the whitened training data
have covariance exactly the identity on the components kept. Directions without
variance (pixels that are 0 in every training image) cannot be scaled to unit
variance; whitening drops them (eigenvalues below ``tol`` times the largest),
and ``eps`` (added to the eigenvalues) softens the scaling of weak ones.

NumPy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dl_course._checks import as_float_array, check_real

METHODS = ("center", "standardize", "pca", "zca")


@dataclass(frozen=True)
class Preprocessing:
    """A fitted preprocessing map ``z = (x - mean) @ matrix.T`` (see :func:`fit_preprocessing`).

    Attributes
    ----------
    method : str
        One of :data:`METHODS`.
    mean : ndarray of shape (d,)
        The training mean.
    matrix : ndarray of shape (k, d)
        ``W``; ``k = d`` except for ``"pca"``, which keeps one row per component.
    eigenvalues : ndarray of shape (k,)
        For the whitening methods, the training covariance's eigenvalues of the
        kept components, largest first (empty otherwise).
    """

    method: str
    mean: np.ndarray
    matrix: np.ndarray
    eigenvalues: np.ndarray

    def transform(self, X) -> np.ndarray:
        """Apply the map to the rows of ``X`` (n, d); returns (n, k)."""
        X = as_float_array(X, "X", ndim=2)
        if X.shape[1] != self.mean.shape[0]:
            raise ValueError(
                f"X must have {self.mean.shape[0]} columns (as the training data), got {X.shape[1]}"
            )
        return (X - self.mean) @ self.matrix.T


def covariance(X) -> np.ndarray:
    """The biased covariance ``(X - mean)^T (X - mean) / n`` of the rows of ``X``."""
    X = as_float_array(X, "X", ndim=2)
    centered = X - X.mean(axis=0)
    return centered.T @ centered / len(X)


def fit_preprocessing(
    X, method: str = "standardize", *, eps: float = 0.0, tol: float = 1e-10
) -> Preprocessing:
    """Estimate a preprocessing map on the training inputs ``X`` (n, d).

    Parameters
    ----------
    X : array of shape (n, d)
        The training split only: statistics from other splits leak information
        and, applied to a batch of its own, move every input (chapter 7 shows both).
    method : {"center", "standardize", "pca", "zca"}
    eps : float
        Added to the variances (standardize) or eigenvalues (whitening) before
        dividing by their square roots, >= 0. With ``eps = 0`` the transformed
        training data have unit variance exactly.
    tol : float
        Whitening keeps the eigenvalues above ``tol`` times the largest, and
        standardization treats features with variance at most ``tol`` times the
        largest as constant (scale 1), >= 0.

    Returns
    -------
    Preprocessing
        Eigenvectors are sorted by decreasing eigenvalue, each with its largest
        entry positive, so the result is deterministic. Taught in chapter 7.
    """
    X = as_float_array(X, "X", ndim=2)
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    eps = check_real(eps, "eps", low=0.0)
    tol = check_real(tol, "tol", low=0.0)
    if len(X) < 2:
        raise ValueError(f"X must hold at least 2 rows to estimate a spread, got {len(X)}")
    mean = X.mean(axis=0)
    d = X.shape[1]
    none = np.zeros(0)
    if method == "center":
        return Preprocessing(method, mean, np.eye(d), none)
    if method == "standardize":
        var = X.var(axis=0)
        varying = var > tol * var.max()
        scale = np.ones(d)
        scale[varying] = 1.0 / np.sqrt(var[varying] + eps)
        return Preprocessing(method, mean, np.diag(scale), none)
    values, vectors = np.linalg.eigh(covariance(X))
    order = np.argsort(values)[::-1]
    values, vectors = values[order], vectors[:, order]
    keep = values > tol * values[0]
    values, vectors = values[keep], vectors[:, keep]
    signs = np.sign(vectors[np.argmax(np.abs(vectors), axis=0), np.arange(vectors.shape[1])])
    vectors = vectors * signs
    scaled = vectors / np.sqrt(values + eps)  # U Lambda^(-1/2)
    matrix = scaled.T if method == "pca" else scaled @ vectors.T
    return Preprocessing(method, mean, matrix, values)


def mean_squared_change(X, Z) -> float:
    """``mean_i ||z_i - (x_i - mean)||^2``: how far a whitening moves the centered data.

    Among all whitening maps of ``X`` (all ``W`` with ``W C W^T = I``), ZCA
    makes this smallest (chapter 7 proves it); ``X`` and ``Z`` must have the
    same shape.
    """
    X = as_float_array(X, "X", ndim=2)
    Z = as_float_array(Z, "Z", ndim=2)
    if X.shape != Z.shape:
        raise ValueError(f"X and Z must have the same shape, got {X.shape} and {Z.shape}")
    return float(np.mean(np.sum((Z - (X - X.mean(axis=0))) ** 2, axis=1)))
