"""Data augmentation for small square images such as the 8x8 digits (chapter 7).

:func:`transform` moves every image of a batch by its own rotation and shift
in one vectorized resampling (bilinear, zero outside the image), and
:func:`add_noise` adds clipped Gaussian pixel noise. :func:`augmenter` combines
them into a random label-preserving transformation that
:func:`dl_course.training.train_classifier` applies to every mini-batch
(``augment=augmenter(...)``). Images are rows of pixels (n, side * side), as
:func:`dl_course.data.load_digits` returns them, or arrays (n, side, side).

NumPy and SciPy only.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from dl_course._checks import as_float_array, check_real


def _as_images(images, name: str = "images") -> tuple[np.ndarray, tuple[int, ...]]:
    """``images`` as an (n, side, side) array, and the shape to return."""
    array = as_float_array(images, name, ndim=(2, 3))
    if array.ndim == 3:
        if array.shape[1] != array.shape[2]:
            raise ValueError(f"{name} must be square, got shape {array.shape}")
        return array, array.shape
    side = math.isqrt(array.shape[1])
    if side * side != array.shape[1]:
        raise ValueError(
            f"{name} must have a square number of pixels per row, got {array.shape[1]}"
        )
    return array.reshape(len(array), side, side), array.shape


def _per_image(value, n: int, name: str, width: int = 1) -> np.ndarray:
    """A scalar (or ``width``-vector) for every image, broadcast to (n,) or (n, width)."""
    array = as_float_array(value, name, ndim=(0, 1, 2)) if np.ndim(value) else None
    if array is None:
        array = np.asarray(check_real(value, name), dtype=float)
    shape = (n,) if width == 1 else (n, width)
    try:
        return np.broadcast_to(array, shape).astype(float)
    except ValueError:
        raise ValueError(
            f"{name} must be one value or one per image, shape {shape}, got {array.shape}"
        ) from None


def transform(images, angles=0.0, shifts=0.0) -> np.ndarray:
    """Rotate each image by ``angles`` degrees and shift it by ``shifts`` pixels.

    Parameters
    ----------
    images : array of shape (n, side * side) or (n, side, side)
    angles : float or array of shape (n,)
        Counter-clockwise rotation about the image centre, in degrees.
    shifts : float or array of shape (2,) or (n, 2)
        ``(right, down)`` translation in pixels, applied after the rotation.

    Returns
    -------
    ndarray of the shape of ``images``
        Each output pixel is the bilinear interpolation of the input at the
        pre-image of its position; positions outside the image read 0. A shift
        by whole pixels and rotations by multiples of 90 degrees move pixels
        exactly. Taught in chapter 7.
    """
    from scipy.ndimage import map_coordinates

    stack, shape = _as_images(images)
    n, side, _ = stack.shape
    theta = np.deg2rad(_per_image(angles, n, "angles"))
    move = _per_image(shifts, n, "shifts", width=2)
    centre = (side - 1) / 2
    rows, cols = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
    # output (r, c) reads the input at R^-1 ((c, r) - centre - shift) + centre, per image
    x = cols[None] - centre - move[:, 0, None, None]
    y = rows[None] - centre - move[:, 1, None, None]
    cos, sin = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    src_x = cos * x - sin * y + centre  # rotating the image counter-clockwise on screen
    src_y = sin * x + cos * y + centre  # (rows grow downwards)
    index = np.broadcast_to(np.arange(n)[:, None, None], src_x.shape)
    # round the positions so that whole-pixel moves (cos 90 deg is 6e-17, not 0) stay exact
    coords = np.round(np.stack([index, src_y, src_x]), 9)
    out = map_coordinates(stack, coords, order=1, mode="constant", cval=0.0)
    return out.reshape(shape)


def add_noise(images, std: float, rng: np.random.Generator, clip=(0.0, 1.0)) -> np.ndarray:
    """``images`` plus Gaussian noise of standard deviation ``std``, clipped to ``clip``.

    ``clip=None`` leaves the values unclipped. Chapter 7.
    """
    images = as_float_array(images, "images", ndim=(2, 3))
    std = check_real(std, "std", low=0.0)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    noisy = images + std * rng.standard_normal(images.shape)
    if clip is None:
        return noisy
    low, high = (check_real(c, f"clip[{k}]") for k, c in enumerate(clip))
    if low >= high:
        raise ValueError(f"clip must be (low, high) with low < high, got {clip}")
    return np.clip(noisy, low, high)


def augmenter(
    max_shift: float = 1.0, max_angle: float = 10.0, noise_std: float = 0.0
) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    """A random augmentation ``augment(X, rng)`` for ``train_classifier(augment=...)``.

    Each image gets a rotation drawn uniformly from ``[-max_angle, max_angle]``
    degrees, a shift with each coordinate a whole number drawn uniformly from
    ``-max_shift .. max_shift`` pixels (``max_shift`` rounded down), then pixel
    noise of standard deviation ``noise_std`` (clipped to [0, 1]). All three
    preserve the label of a digit as long as they stay small: a 6 rotated by 180
    degrees is a 9. Chapter 7.
    """
    max_shift = check_real(max_shift, "max_shift", low=0.0)
    max_angle = check_real(max_angle, "max_angle", low=0.0, high=180.0)
    noise_std = check_real(noise_std, "noise_std", low=0.0)
    reach = int(max_shift)

    def augment(X, rng: np.random.Generator) -> np.ndarray:
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        n = len(X)
        angles = rng.uniform(-max_angle, max_angle, size=n)
        shifts = rng.integers(-reach, reach + 1, size=(n, 2))
        out = transform(X, angles, shifts)
        return add_noise(out, noise_std, rng) if noise_std > 0 else out

    return augment
