"""Weight initialization: the variance-preserving scales of Xavier and He, orthogonal matrices.

Chapter 9 derives every formula here from one requirement: a layer should, on
average, neither grow nor shrink the signal that passes through it (forward) or
the gradient that comes back (backward). The functions follow ``torch.nn.init``
exactly (same names of arguments, same formulas, same floating-point order of
operations), in two flavours:

- NumPy samplers that *return* an array (``he_normal(shape, seed=0)``), for
  readers who work without torch, with an optional ``batch`` of independent
  copies;
- torch functions that *fill a tensor in place* (``he_normal_(tensor)``), which
  give the same values as their ``torch.nn.init`` counterparts for the same
  ``torch.Generator`` state.

Shapes follow PyTorch: a weight of shape ``(fan_out, fan_in, *kernel)``, as in
``nn.Linear.weight`` (``(out, in)``). He initialization takes the gain directly
(``gain = sqrt(2)`` for ReLU, :func:`calculate_gain` for others); torch's
``kaiming_*_(a, nonlinearity)`` is ``he_*_(gain=calculate_gain(nonlinearity, a))``.

Importing this module does not import torch. Taught in chapter 9.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from dl_course._checks import check_int, check_real, check_seed

if TYPE_CHECKING:  # torch is imported inside the functions that need it
    import torch

Seed = int | np.random.Generator
Batch = int | Sequence[int]

#: Variance rules by name, as :func:`dl_course.mlp.build_mlp` offers them (see :func:`scheme_variance`).
SCHEMES = ("he", "xavier", "lecun", "torch")
#: Nonlinearities :func:`calculate_gain` knows, as in ``torch.nn.init.calculate_gain``.
GAIN_NONLINEARITIES = (
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "selu",
)
#: He initialization's gain for ReLU.
RELU_GAIN = math.sqrt(2.0)
#: The negative slope ``a`` with which ``nn.Linear`` calls ``kaiming_uniform_`` by default.
TORCH_DEFAULT_A = math.sqrt(5)
_MODES = ("fan_in", "fan_out")


# -- formulas ---------------------------------------------------------------------------------


def fans(shape: Sequence[int]) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight of shape ``(out, in, *kernel)``, as torch computes them.

    ``fan_in = in * prod(kernel)`` is the number of inputs each output unit sums
    over; ``fan_out = out * prod(kernel)`` the number of outputs each input feeds.

    >>> fans((300, 100))
    (100, 300)

    Taught in chapter 9.
    """
    if isinstance(shape, numbers.Integral) or not isinstance(shape, Sequence):
        raise TypeError(f"shape must be a sequence of ints such as (out, in), got {shape!r}")
    dims = [check_int(s, f"shape[{k}]", low=1) for k, s in enumerate(shape)]
    if len(dims) < 2:
        raise ValueError(
            f"shape must have at least 2 dimensions (out, in, ...) to have a fan-in and "
            f"fan-out, got {tuple(shape)}"
        )
    receptive = math.prod(dims[2:])
    return dims[1] * receptive, dims[0] * receptive


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The gain that torch recommends for ``nonlinearity`` (``torch.nn.init.calculate_gain``).

    1 for linear layers and the sigmoid, 5/3 for tanh, sqrt(2) for ReLU,
    sqrt(2 / (1 + a^2)) for leaky ReLU with negative slope ``a = param``
    (0.01 if None), 3/4 for SELU.

    Taught in chapter 9.
    """
    if nonlinearity not in GAIN_NONLINEARITIES:
        raise ValueError(f"nonlinearity must be one of {GAIN_NONLINEARITIES}, got {nonlinearity!r}")
    if param is not None:
        param = check_real(param, "param")  # only leaky_relu uses it, as in torch
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    return 1.0


def _fan(shape, mode: str) -> int:
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    fan_in, fan_out = fans(shape)
    return fan_in if mode == "fan_in" else fan_out


def _gain(gain) -> float:
    return check_real(gain, "gain", low=0.0, low_open=True)


def xavier_std(fan_in: int, fan_out: int, gain: float = 1.0) -> float:
    """``gain * sqrt(2 / (fan_in + fan_out))``: Glorot and Bengio's compromise between the
    forward condition ``Var(W) = 1 / fan_in`` and the backward one ``1 / fan_out``.

    Taught in chapter 9.
    """
    fan_in = check_int(fan_in, "fan_in", low=1)
    fan_out = check_int(fan_out, "fan_out", low=1)
    return _gain(gain) * math.sqrt(2.0 / float(fan_in + fan_out))


def he_std(fan: int, gain: float = RELU_GAIN) -> float:
    """``gain / sqrt(fan)``; with ``gain = sqrt(2)`` the variance ``2 / fan`` that keeps a
    ReLU network's signal at constant size.

    Taught in chapter 9.
    """
    return _gain(gain) / math.sqrt(check_int(fan, "fan", low=1))


def uniform_bound(std: float) -> float:
    """``sqrt(3) * std``: the ``a`` for which ``U(-a, a)`` has standard deviation ``std``
    (its variance is ``a^2 / 3``).

    Taught in chapter 9.
    """
    return math.sqrt(3.0) * check_real(std, "std", low=0.0)


def torch_default_std(fan_in: int) -> float:
    """The standard deviation of ``nn.Linear``'s default weights, ``1 / sqrt(3 fan_in)``.

    ``nn.Linear`` calls ``kaiming_uniform_(weight, a=sqrt(5))``: gain
    ``sqrt(2 / (1 + 5)) = sqrt(1/3)``, so the variance is ``1 / (3 fan_in)``, a sixth of
    He's ``2 / fan_in``.

    Taught in chapter 9.
    """
    return he_std(fan_in, calculate_gain("leaky_relu", TORCH_DEFAULT_A))


def scheme_variance(scheme: str, fan_in: int, fan_out: int) -> float:
    """The weight variance of a named rule: ``"he"`` 2 / fan_in, ``"xavier"`` 2 / (fan_in +
    fan_out), ``"lecun"`` 1 / fan_in, ``"torch"`` (``nn.Linear``'s default) 1 / (3 fan_in).

    Taught in chapter 9.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    fan_in = check_int(fan_in, "fan_in", low=1)
    fan_out = check_int(fan_out, "fan_out", low=1)
    return {
        "he": 2.0 / fan_in,
        "xavier": 2.0 / (fan_in + fan_out),
        "lecun": 1.0 / fan_in,
        "torch": 1.0 / (3 * fan_in),
    }[scheme]


# -- NumPy samplers ---------------------------------------------------------------------------


def _rng(seed: Seed) -> np.random.Generator:
    """A NumPy generator from an int seed, or the given generator itself."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(check_seed(seed))


def _batch(batch) -> tuple[int, ...]:
    if isinstance(batch, numbers.Integral):
        batch = (batch,)
    if not isinstance(batch, Sequence):
        raise TypeError(f"batch must be an int or a tuple of ints, got {batch!r}")
    return tuple(check_int(b, f"batch[{k}]", low=1) for k, b in enumerate(batch))


def _normal(shape, std: float, batch, seed) -> np.ndarray:
    return _rng(seed).normal(0.0, std, size=_batch(batch) + tuple(shape))


def _uniform(shape, bound: float, batch, seed) -> np.ndarray:
    return _rng(seed).uniform(-bound, bound, size=_batch(batch) + tuple(shape))


def xavier_normal(
    shape: Sequence[int], gain: float = 1.0, *, batch: Batch = (), seed: Seed = 0
) -> np.ndarray:
    """Weights from ``N(0, xavier_std^2)``; ``batch`` leading dimensions of independent copies.

    ``seed`` is an int or a ``numpy.random.Generator`` (which is then advanced).

    Taught in chapter 9.
    """
    return _normal(shape, xavier_std(*fans(shape), gain), batch, seed)


def xavier_uniform(
    shape: Sequence[int], gain: float = 1.0, *, batch: Batch = (), seed: Seed = 0
) -> np.ndarray:
    """Weights from ``U(-a, a)`` with ``a = sqrt(3) * xavier_std``: the same variance as
    :func:`xavier_normal`.

    Taught in chapter 9.
    """
    return _uniform(shape, uniform_bound(xavier_std(*fans(shape), gain)), batch, seed)


def he_normal(
    shape: Sequence[int],
    gain: float = RELU_GAIN,
    mode: str = "fan_in",
    *,
    batch: Batch = (),
    seed: Seed = 0,
) -> np.ndarray:
    """Weights from ``N(0, (gain / sqrt(fan))^2)``; ``mode`` picks the fan-in (forward
    condition) or the fan-out (backward condition).

    Taught in chapter 9.
    """
    return _normal(shape, he_std(_fan(shape, mode), gain), batch, seed)


def he_uniform(
    shape: Sequence[int],
    gain: float = RELU_GAIN,
    mode: str = "fan_in",
    *,
    batch: Batch = (),
    seed: Seed = 0,
) -> np.ndarray:
    """Weights from ``U(-a, a)`` with ``a = sqrt(3) * gain / sqrt(fan)``. Taught in chapter 9."""
    return _uniform(shape, uniform_bound(he_std(_fan(shape, mode), gain)), batch, seed)


def torch_default(shape: Sequence[int], *, batch: Batch = (), seed: Seed = 0) -> np.ndarray:
    """Weights distributed like ``nn.Linear``'s default: ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``,
    variance ``1 / (3 fan_in)``.

    Taught in chapter 9.
    """
    gain = calculate_gain("leaky_relu", TORCH_DEFAULT_A)
    return he_uniform(shape, gain, batch=batch, seed=seed)


def _sign_fixed_q(gaussian: np.ndarray) -> np.ndarray:
    """Q of the QR decomposition of each matrix in a stack, columns multiplied by
    sign(diag R): this makes Q Haar-distributed (uniform over orthogonal matrices) when the
    stack holds standard normals; without the fix LAPACK's sign convention biases Q."""
    q, r = np.linalg.qr(gaussian)
    signs = np.sign(np.diagonal(r, axis1=-2, axis2=-1))
    signs[signs == 0] = 1.0
    return q * signs[..., None, :]


def orthogonal(
    shape: Sequence[int], gain: float = 1.0, *, batch: Batch = (), seed: Seed = 0
) -> np.ndarray:
    """A (semi-)orthogonal matrix times ``gain``, uniformly distributed (Haar), as
    ``torch.nn.init.orthogonal_`` draws it.

    The trailing dimensions beyond the first are flattened, so the matrix has
    ``rows = shape[0]`` and ``cols = prod(shape[1:])``: orthonormal rows if
    ``rows <= cols``, orthonormal columns otherwise. Made by QR of a standard normal
    matrix with the sign fix; ``batch`` gives independent copies in one batched QR.

    Taught in chapter 9.
    """
    gain = _gain(gain)
    fans(shape)  # validates the shape
    rows, cols = shape[0], math.prod(shape[1:])
    batch = _batch(batch)
    gaussian = _rng(seed).standard_normal(batch + (rows, cols))
    if rows < cols:
        gaussian = np.swapaxes(gaussian, -1, -2)
    q = _sign_fixed_q(gaussian)
    if rows < cols:
        q = np.swapaxes(q, -1, -2)
    return gain * q.reshape(batch + tuple(shape))


# -- torch, in place --------------------------------------------------------------------------


def _tensor(tensor):
    import torch

    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"tensor must be a torch.Tensor, got {type(tensor).__name__}")
    if not tensor.is_floating_point():
        raise TypeError(f"tensor must have a floating-point dtype, got {tensor.dtype}")
    return tensor


def _generator(generator):
    import torch

    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {generator!r}")
    return generator


def _fill_normal_(tensor, std: float, generator):
    import torch

    with torch.no_grad():
        return tensor.normal_(0.0, std, generator=_generator(generator))


def _fill_uniform_(tensor, bound: float, generator):
    import torch

    with torch.no_grad():
        return tensor.uniform_(-bound, bound, generator=_generator(generator))


def xavier_normal_(
    tensor: torch.Tensor, gain: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Fill ``tensor`` in place from ``N(0, xavier_std^2)``; equals
    ``torch.nn.init.xavier_normal_(tensor, gain, generator)``. Returns ``tensor``.

    Taught in chapter 9.
    """
    tensor = _tensor(tensor)
    return _fill_normal_(tensor, xavier_std(*fans(tensor.shape), gain), generator)


def xavier_uniform_(
    tensor: torch.Tensor, gain: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Fill ``tensor`` in place from ``U(-a, a)``, ``a = sqrt(3) * xavier_std``; equals
    ``torch.nn.init.xavier_uniform_``.

    Taught in chapter 9.
    """
    tensor = _tensor(tensor)
    return _fill_uniform_(tensor, uniform_bound(xavier_std(*fans(tensor.shape), gain)), generator)


def he_normal_(
    tensor: torch.Tensor,
    gain: float = RELU_GAIN,
    mode: str = "fan_in",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Fill ``tensor`` in place from ``N(0, (gain / sqrt(fan))^2)``; equals
    ``torch.nn.init.kaiming_normal_`` with the same gain (``calculate_gain(nonlinearity, a)``).

    Taught in chapter 9.
    """
    tensor = _tensor(tensor)
    return _fill_normal_(tensor, he_std(_fan(tensor.shape, mode), gain), generator)


def he_uniform_(
    tensor: torch.Tensor,
    gain: float = RELU_GAIN,
    mode: str = "fan_in",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Fill ``tensor`` in place from ``U(-a, a)``, ``a = sqrt(3) * gain / sqrt(fan)``; equals
    ``torch.nn.init.kaiming_uniform_`` with the same gain.

    Taught in chapter 9.
    """
    tensor = _tensor(tensor)
    bound = uniform_bound(he_std(_fan(tensor.shape, mode), gain))
    return _fill_uniform_(tensor, bound, generator)


def torch_default_(tensor: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Fill ``tensor`` like ``nn.Linear`` initializes its weight: ``kaiming_uniform_`` with
    ``a = sqrt(5)``, that is ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``.

    Taught in chapter 9.
    """
    return he_uniform_(tensor, calculate_gain("leaky_relu", TORCH_DEFAULT_A), generator=generator)


def orthogonal_(
    tensor: torch.Tensor, gain: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Fill ``tensor`` in place with a Haar (semi-)orthogonal matrix times ``gain``; equals
    ``torch.nn.init.orthogonal_(tensor, gain, generator)`` (same draws, QR and sign fix).

    Taught in chapter 9.
    """
    import torch

    tensor = _tensor(tensor)
    gain = _gain(gain)
    if tensor.dim() < 2:
        raise ValueError(f"tensor must have at least 2 dimensions, got shape {tuple(tensor.shape)}")
    rows = tensor.size(0)
    cols = tensor.numel() // rows
    with torch.no_grad():
        gaussian = tensor.new_empty((rows, cols)).normal_(0, 1, generator=_generator(generator))
        if rows < cols:
            gaussian.t_()
        q, r = torch.linalg.qr(gaussian)
        q *= torch.diag(r, 0).sign()
        if rows < cols:
            q.t_()
        tensor.view_as(q).copy_(q)
        tensor.mul_(gain)
    return tensor


def scheme_normal_(
    tensor: torch.Tensor, scheme: str, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Fill a weight of shape ``(out, in)`` in place from ``N(0, scheme_variance(...))``.

    This is what :func:`dl_course.mlp.build_mlp` does for ``init="he"``, ``"xavier"``
    and ``"lecun"``. The standard deviation is ``variance ** 0.5``, which can differ
    from :func:`he_std`'s ``gain / sqrt(fan)`` in the last bit.

    Taught in chapter 9.
    """
    tensor = _tensor(tensor)
    if scheme not in ("he", "xavier", "lecun"):
        raise ValueError(
            f"scheme must be 'he', 'xavier' or 'lecun' (for 'torch' use torch_default_), "
            f"got {scheme!r}"
        )
    fan_in, fan_out = fans(tensor.shape)
    return _fill_normal_(tensor, scheme_variance(scheme, fan_in, fan_out) ** 0.5, generator)
