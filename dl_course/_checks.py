"""Input validation shared by the public functions of :mod:`dl_course`.

Every public function checks its arguments here, at the boundary, so that a
mistake is reported as a ``ValueError`` or ``TypeError`` that names the
argument and says what is allowed, instead of a traceback from deep inside
NumPy or a silent NaN.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np


def check_int(value, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` as an ``int`` after checking ``low <= value <= high``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    value = int(value)
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value}")
    return value


def check_real(
    value,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``value`` as a finite ``float`` inside the given (closed or open) bounds."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if low is not None and (value <= low if low_open else value < low):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and (value >= high if high_open else value > high):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {value}")
    return value


def check_bool(value, name: str) -> bool:
    """Return ``value`` if it is a ``bool`` (NumPy booleans included)."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def check_seed(seed, name: str = "seed") -> int:
    """Return ``seed`` as a non-negative ``int`` usable by :func:`numpy.random.default_rng`."""
    return check_int(seed, name, low=0)


def as_float_array(value, name: str, *, ndim: int | Sequence[int] | None = None) -> np.ndarray:
    """Convert ``value`` to a finite ``float64`` array with the allowed number of dimensions."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be an array of real numbers: {error}") from None
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if array.ndim not in allowed:
            shapes = " or ".join(f"{d}-D" for d in allowed)
            raise ValueError(f"{name} must be {shapes}, got an array of shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must contain only finite numbers (no NaN or inf)")
    return array


def as_labels(value, name: str, *, n: int, allowed: Sequence[int] | None = None) -> np.ndarray:
    """Convert ``value`` to a 1-D integer label array of length ``n``.

    ``allowed`` lists the permitted label values (for example ``(-1, 1)``);
    float arrays holding whole numbers are accepted.
    """
    array = np.asarray(value)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got an array of shape {array.shape}")
    if array.shape[0] != n:
        raise ValueError(
            f"{name} must have length {n} (one label per example), got {array.shape[0]}"
        )
    if array.dtype == bool or not np.issubdtype(array.dtype, np.number):
        raise TypeError(f"{name} must hold integer labels, got dtype {array.dtype}")
    if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
        raise ValueError(f"{name} must hold whole-number labels")
    labels = array.astype(np.int64)
    if allowed is not None:
        bad = np.setdiff1d(np.unique(labels), np.asarray(allowed))
        if bad.size:
            raise ValueError(f"{name} must take values in {sorted(allowed)}, found {bad.tolist()}")
    return labels


def check_module(model, name: str = "model"):
    """``model`` if it is a ``torch.nn.Module``; else a TypeError naming the argument."""
    import torch

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(model).__name__}")
    return model


def check_float_tensor(x, name: str):
    """``x`` if it is a floating-point torch tensor; else a TypeError saying how to convert."""
    import torch

    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch tensor, got {type(x).__name__} "
            "(convert with torch.as_tensor(X, dtype=torch.float32))"
        )
    if not x.is_floating_point():
        raise TypeError(f"{name} must hold floating-point values, got dtype {x.dtype}")
    return x
