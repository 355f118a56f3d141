"""Signal propagation at initialization: variance maps, dynamical isometry, Jacobian spectra.

Chapter 9 asks how a deep network at initialization transforms its input
(forward) and its gradients (backward), and answers with three tools:

- the *variance map* :func:`variance_map`: the size of the pre-activations,
  layer by layer, in the limit of wide layers (with its tanh fixed point
  :func:`tanh_fixed_point`), against which :func:`preactivation_variances`
  measures finite networks, and :func:`input_dependence`, which measures how much
  of a torch network's output still depends on its input;
- the *gated-orthogonal model* of dynamical isometry: ``J = D_L W_L ... D_1 W_1``
  with ``W = gain * (Haar orthogonal)`` and diagonal Bernoulli(p) gates ``D``, whose
  mean squared singular value is ``(gain^2 p)^L`` (:func:`jacobian_msv`,
  :func:`gated_jacobian`, :func:`isometry_gain`);
- the end-to-end Jacobian of real ReLU and tanh networks with Gaussian or
  orthogonal weights (:func:`network_jacobian`), with the variance of its squared
  singular values predicted by free probability (:func:`spectrum_variance`, with
  the per-layer factor :func:`susceptibility`);

and trains small ensembles of deep networks to see what the spectra mean for
training (:func:`train_deep_mlps`). NumPy only, except :func:`input_dependence` and
:func:`train_deep_mlps` (torch, imported inside). Taught in chapter 9.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from dl_course import initialization
from dl_course._checks import (
    as_float_array,
    as_labels,
    check_bool,
    check_int,
    check_real,
    check_seed,
)
from dl_course._threads import limited_threads

#: Activations of the networks in this module.
ACTIVATIONS = ("relu", "tanh", "linear")
#: Weight distributions of :func:`network_jacobian` and :func:`train_deep_mlps`.
WEIGHTS = ("orthogonal", "gaussian")
#: Largest ``trials * width**2`` of one batched computation (memory: 8 bytes each, a few copies).
MAX_ELEMENTS = 2**23

# Gauss-Hermite nodes and weights for expectations over a standard normal z.
_Z, _W = np.polynomial.hermite_e.hermegauss(121)
_W = _W / _W.sum()


# -- checks -----------------------------------------------------------------------------------


def _probability(p) -> float:
    p = check_real(p, "p")
    if not 0.0 < p <= 1.0:
        raise ValueError(
            f"p is the probability that a unit is active and must lie in (0, 1], got {p}"
        )
    return p


def _gain(gain) -> float:
    gain = check_real(gain, "gain")
    if gain <= 0:
        raise ValueError(f"gain must be > 0 (it scales the weight matrices), got {gain}")
    return gain


def _sizes(depth, width, trials) -> tuple[int, int, int]:
    depth = check_int(depth, "depth", low=1, high=10_000)
    width = check_int(width, "width", low=1, high=4096)
    trials = check_int(trials, "trials", low=1)
    if trials * width * width > MAX_ELEMENTS:
        raise ValueError(
            f"trials * width**2 must be at most {MAX_ELEMENTS:,} (memory), got "
            f"{trials * width * width:,}: use fewer trials or a narrower width"
        )
    return depth, width, trials


def _activation(activation) -> str:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    return activation


def _weights(weights) -> str:
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}")
    return weights


def _phi(activation: str, z: np.ndarray) -> np.ndarray:
    if activation == "relu":
        return np.maximum(z, 0.0)
    if activation == "tanh":
        return np.tanh(z)
    return z


def _dphi(activation: str, z: np.ndarray) -> np.ndarray:
    if activation == "relu":
        return (z > 0).astype(z.dtype)
    if activation == "tanh":
        return 1.0 - np.tanh(z) ** 2
    return np.ones_like(z)


# -- the gated-orthogonal model (dynamical isometry) ------------------------------------------


def isometry_gain(p: float) -> float:
    """The gain ``1 / sqrt(p)`` at which ``(1/n) E tr(J^T J) = (gain^2 p)^L`` equals 1.

    ``p`` is the probability that a unit is active; for ReLU ``p = 1/2`` and the gain is
    ``sqrt(2)``, He initialization's. Taught in chapter 9.
    """
    return 1.0 / math.sqrt(_probability(p))


@dataclass(frozen=True)
class GatedJacobian:
    """What :func:`gated_jacobian` drew.

    Attributes
    ----------
    gain, p : float
    msv : ndarray of shape (trials, depth)
        ``(1/n) tr(J_l^T J_l)`` after ``l = 1..depth`` layers, one row per trial.
    jacobians : ndarray of shape (trials, width, width)
        The end-to-end ``J = J_depth`` of each trial.
    active : ndarray of shape (trials, depth)
        How many of the ``width`` gates were open in each layer.
    history : ndarray of shape (trials, depth, width, width) or None
        ``J_l`` after every layer ``l = 1..depth``, if ``keep_all=True`` was asked for.

    Taught in chapter 9.
    """

    gain: float
    p: float
    msv: np.ndarray
    jacobians: np.ndarray
    active: np.ndarray
    history: np.ndarray | None = None

    @property
    def depth(self) -> int:
        return self.msv.shape[1]

    @property
    def predicted(self) -> np.ndarray:
        """``(gain^2 p)^l`` for ``l = 1..depth``: the exact expectation of :attr:`msv`."""
        return (self.gain**2 * self.p) ** np.arange(1, self.depth + 1)

    @property
    def standard_error(self) -> np.ndarray:
        """Standard error of the trial mean of :attr:`msv`, per depth (NaN for one trial:
        a single draw has no spread to estimate)."""
        trials = self.msv.shape[0]
        if trials < 2:
            return np.full(self.depth, np.nan)
        return self.msv.std(axis=0, ddof=1) / math.sqrt(trials)

    @property
    def singular_values(self) -> np.ndarray:
        """Singular values of each trial's ``J``, shape (trials, width), largest first."""
        with limited_threads(0):
            return np.linalg.svd(self.jacobians, compute_uv=False)


def gated_jacobian(
    gain: float,
    p: float,
    depth: int,
    width: int,
    trials: int = 2,
    seed: int = 0,
    *,
    keep_all: bool = False,
) -> GatedJacobian:
    """Draw ``J = D_L W_L ... D_1 W_1`` in ``trials`` independent copies, all at once.

    ``W_l = gain * O_l`` with ``O_l`` Haar orthogonal (QR of a batch of Gaussians with
    the sign fix, :func:`dl_course.initialization.orthogonal`), and ``D_l`` diagonal
    with independent Bernoulli(``p``) entries (a gate is open when a uniform draw is
    below ``p``). The same ``seed`` draws the same ``O_l`` and uniforms for every
    ``gain`` and ``p``, so runs are coupled: the gain only rescales ``J_l`` by
    ``gain^l``, and a larger ``p`` opens a superset of the gates. A run of depth ``L`` is
    the first ``L`` layers of a deeper run with the same seed; ``keep_all=True`` keeps every
    ``J_l`` (``trials * depth * width**2`` numbers).

    Parameters
    ----------
    gain : float
        > 0.
    p : float
        Probability that a gate is open, in (0, 1].
    depth, width, trials : int
        ``depth >= 1``; ``trials * width**2 <=`` :data:`MAX_ELEMENTS`.
    seed : int

    Returns
    -------
    GatedJacobian
        Taught in chapter 9.
    """
    gain, p = _gain(gain), _probability(p)
    depth, width, trials = _sizes(depth, width, trials)
    keep_all = check_bool(keep_all, "keep_all")
    rng = np.random.default_rng(check_seed(seed))
    msv = np.empty((trials, depth))
    active = np.empty((trials, depth), dtype=np.int64)
    history = np.empty((trials, depth, width, width)) if keep_all else None
    J = None
    with limited_threads(0):  # many small factorizations: one thread is fastest
        for layer in range(depth):
            W = initialization.orthogonal((width, width), gain, batch=trials, seed=rng)
            gates = rng.random((trials, width)) < p
            J = W if J is None else W @ J
            J *= gates[:, :, None]
            msv[:, layer] = np.einsum("tij,tij->t", J, J) / width
            active[:, layer] = gates.sum(axis=1)
            if keep_all:
                history[:, layer] = J
    return GatedJacobian(gain=gain, p=p, msv=msv, jacobians=J, active=active, history=history)


def jacobian_msv(
    gain: float, p: float, depth: int, width: int, trials: int = 2, seed: int = 0
) -> float:
    """Monte-Carlo estimate of ``(1/n) E tr(J^T J)`` for the gated-orthogonal model.

    The average over ``trials`` independent draws (see :func:`gated_jacobian`) of the
    mean squared singular value of ``J = D_L W_L ... D_1 W_1``; its expectation is
    ``(gain^2 p)^depth`` exactly. One draw at depth 50 and width 256 costs 50 QR
    factorizations of 256 x 256 matrices (a few tenths of a second), and its relative
    spread is roughly ``sqrt(depth (1 - p) / (p width))``: use more ``trials`` (or
    :func:`gated_jacobian` and its ``standard_error``) for a precise estimate.

    Raises ``ValueError`` for ``p`` outside (0, 1], ``depth < 1`` or ``gain <= 0``.

    Examples
    --------
    >>> jacobian_msv(isometry_gain(0.5), 0.5, depth=10, width=64, trials=8)  # doctest: +SKIP
    1.02...

    Taught in chapter 9.
    """
    return float(gated_jacobian(gain, p, depth, width, trials, seed).msv[:, -1].mean())


# -- the variance map (wide layers) and finite networks ---------------------------------------


def _mean_square(activation: str, q: float) -> float:
    """``E[phi(sqrt(q) z)^2]`` for a standard normal ``z``."""
    if activation == "relu":
        return q / 2
    if activation == "linear":
        return q
    return float(np.sum(_W * np.tanh(math.sqrt(q) * _Z) ** 2))


def variance_map(
    activation: str, gain: float, q0: float, depth: int, bias_std: float = 0.0
) -> np.ndarray:
    """The pre-activation variance ``q_l`` of layers ``l = 1..depth`` of a wide network.

    For ``z_l = W_l phi(z_{l-1}) + b_l`` with weights of variance ``gain^2 / n``, biases of
    variance ``bias_std^2`` and an input of variance ``q0`` (not passed through
    ``phi``), the law of large numbers gives ``q_1 = gain^2 q0 + bias_std^2`` and

        ``q_{l+1} = gain^2 E[phi(sqrt(q_l) z)^2] + bias_std^2``,  z ~ N(0, 1),

    exactly ``q_{l+1} = (gain^2 / 2) q_l`` for ReLU without bias. Expectations by
    Gauss-Hermite quadrature. Taught in chapter 9.
    """
    activation = _activation(activation)
    gain = _gain(gain)
    q = check_real(q0, "q0", low=0.0)
    depth = check_int(depth, "depth", low=1, high=100_000)
    bias_var = check_real(bias_std, "bias_std", low=0.0) ** 2
    out = np.empty(depth)
    q = gain**2 * q + bias_var
    for layer in range(depth):
        out[layer] = q
        q = gain**2 * _mean_square(activation, q) + bias_var
    return out


def tanh_fixed_point(gain: float, bias_std: float = 0.0) -> float:
    """The stable fixed point ``q*`` of the tanh :func:`variance_map`: ``q* = gain^2
    E[tanh(sqrt(q*) z)^2] + bias_std^2``; 0 when ``gain <= 1`` and there is no bias.

    Near ``q = 0``, ``E[tanh^2] = q - 2 q^2 + O(q^3)``, so ``q* ~ (1 - 1/gain^2) / 2`` for a
    gain a little above 1. Taught in chapter 9.
    """
    from scipy.optimize import brentq

    gain = _gain(gain)
    bias_var = check_real(bias_std, "bias_std", low=0.0) ** 2

    def excess(q):
        return gain**2 * _mean_square("tanh", q) + bias_var - q

    if bias_var == 0 and gain <= 1:
        return 0.0
    low, high = 1e-300, gain**2 + bias_var + 1.0  # excess(high) < 0 since tanh^2 < 1
    return float(brentq(excess, low, high, xtol=1e-15, rtol=1e-14))


def preactivation_variances(
    init: str,
    activation: str,
    depth: int,
    width: int,
    *,
    networks: int = 8,
    n_inputs: int = 64,
    seed: int = 0,
) -> np.ndarray:
    """Measure the pre-activation variance at every layer of random bias-free networks.

    Draws ``networks`` networks of ``depth`` square layers of ``width`` units, weights
    from the rule ``init`` (``"he"``, ``"xavier"``, ``"lecun"``: normal with
    :func:`dl_course.initialization.scheme_variance`; ``"torch"``: ``nn.Linear``'s default
    uniform), and pushes ``n_inputs`` standard normal inputs through each:
    ``z_l = W_l phi(z_{l-1})``, ``z_1 = W_1 x``.

    Returns
    -------
    ndarray of shape (networks, depth)
        The mean of ``z_l^2`` over inputs and units, per network and layer; compare it
        with :func:`variance_map` (``q0 = 1``). Taught in chapter 9.
    """
    activation = _activation(activation)
    if init not in initialization.SCHEMES:
        raise ValueError(f"init must be one of {initialization.SCHEMES}, got {init!r}")
    depth, width, networks = _sizes(depth, width, networks)
    n_inputs = check_int(n_inputs, "n_inputs", low=1, high=100_000)
    rng = np.random.default_rng(check_seed(seed))
    shape = (width, width)
    draw = {
        "he": initialization.he_normal,
        "xavier": initialization.xavier_normal,
        "lecun": functools.partial(initialization.he_normal, gain=1.0),
        "torch": initialization.torch_default,
    }[init]
    out = np.empty((networks, depth))
    h = rng.standard_normal((networks, n_inputs, width))
    with limited_threads(0):
        for layer in range(depth):
            W = draw(shape, batch=networks, seed=rng)
            z = h @ np.swapaxes(W, -1, -2)
            out[:, layer] = np.mean(z**2, axis=(1, 2))
            h = _phi(activation, z)
    return out


def input_dependence(model, x) -> np.ndarray:
    """How much each linear layer's output still depends on the input, for a torch model.

    Runs the inputs ``x`` (rows are examples) through ``model``, a ``torch.nn.Sequential``,
    and returns, for every ``nn.Linear`` module in order, the mean over units of the
    variance across inputs of its output, divided by the mean of the output's square.
    The share is 1 when every unit averages zero over the inputs and 0 when all inputs
    give the same output (the network has forgotten its input). Computed in float64 on
    a copy of the model, without gradients; the model is left as it was. Taught in
    chapter 9 (PyTorch's default initialization at depth 30).
    """
    import copy

    import torch

    if not isinstance(model, torch.nn.Sequential):
        raise TypeError(f"model must be a torch.nn.Sequential, got {type(model).__name__}")
    h = torch.as_tensor(as_float_array(x, "x", ndim=2), dtype=torch.float64)
    if h.shape[0] < 2:
        raise ValueError(f"x must hold at least 2 inputs (rows) to vary over, got {h.shape[0]}")
    shares = []
    with limited_threads(0), torch.no_grad():
        for module in copy.deepcopy(model).double().eval():
            h = module(h)
            if isinstance(module, torch.nn.Linear):
                shares.append((h.var(dim=0).mean() / h.pow(2).mean()).item())
    if not shares:
        raise ValueError("model has no nn.Linear layer")
    return np.array(shares)


# -- Jacobians of real networks ---------------------------------------------------------------


@dataclass(frozen=True)
class NetworkJacobian:
    """What :func:`network_jacobian` measured.

    Attributes
    ----------
    activation, weights : str
    gain, q0 : float
        The weight gain and the variance of the input.
    jacobians : ndarray of shape (trials, width, width)
        ``d h_L / d x = D_L W_L ... D_1 W_1`` with ``D_l = diag(phi'(z_l))``.
    variances : ndarray of shape (trials, depth)
        The mean of ``z_l^2`` over units, per trial and layer.
    active : ndarray of shape (trials, depth)
        How many units of each layer have ``z_l > 0`` (the open ReLU gates).
    inputs : ndarray of shape (trials, width)
        The input ``x`` of each trial.
    layers : ndarray of shape (trials, depth, width, width) or None
        The weight matrices, if ``keep_weights=True`` was asked for.

    Taught in chapter 9.
    """

    activation: str
    weights: str
    gain: float
    q0: float
    jacobians: np.ndarray
    variances: np.ndarray
    active: np.ndarray
    inputs: np.ndarray
    layers: np.ndarray | None = None

    @property
    def singular_values(self) -> np.ndarray:
        """Singular values of each trial's Jacobian, shape (trials, width), largest first."""
        with limited_threads(0):
            return np.linalg.svd(self.jacobians, compute_uv=False)


def network_jacobian(
    activation: str,
    weights: str,
    gain: float,
    depth: int,
    width: int,
    *,
    trials: int = 1,
    q0: float | None = None,
    keep_weights: bool = False,
    seed: int = 0,
) -> NetworkJacobian:
    """The input-output Jacobian of random bias-free networks at one random input each.

    ``z_l = W_l h_{l-1}``, ``h_l = phi(z_l)``, ``h_0 = x ~ N(0, q0 I)``, with
    ``W_l = gain * (Haar orthogonal)`` (``weights="orthogonal"``) or entries
    ``N(0, gain^2 / width)`` (``"gaussian"``; both have ``E[W^T W] = gain^2 I``). The
    Jacobian ``J = D_L W_L ... D_1 W_1`` is accumulated layer by layer, ``trials``
    networks at once. ``q0`` defaults to the tanh fixed point
    :func:`tanh_fixed_point` (so that every layer has the same variance) and to 1 for
    ReLU and linear networks. With ``keep_weights=True`` the weight matrices are returned
    too (``trials * depth * width**2`` numbers). Taught in chapter 9.
    """
    activation, weights = _activation(activation), _weights(weights)
    gain = _gain(gain)
    depth, width, trials = _sizes(depth, width, trials)
    if q0 is None:
        q0 = tanh_fixed_point(gain) if activation == "tanh" else 1.0
    q0 = check_real(q0, "q0", low=0.0, low_open=True)
    keep_weights = check_bool(keep_weights, "keep_weights")
    rng = np.random.default_rng(check_seed(seed))
    shape = (width, width)
    x = math.sqrt(q0) * rng.standard_normal((trials, width))
    h = x
    variances = np.empty((trials, depth))
    active = np.empty((trials, depth), dtype=np.int64)
    layers = np.empty((trials, depth, width, width)) if keep_weights else None
    J = None
    with limited_threads(0):
        for layer in range(depth):
            if weights == "orthogonal":
                W = initialization.orthogonal(shape, gain, batch=trials, seed=rng)
            else:
                W = initialization.he_normal(shape, gain, batch=trials, seed=rng)
            if keep_weights:
                layers[:, layer] = W
            z = np.einsum("tij,tj->ti", W, h)
            variances[:, layer] = np.mean(z**2, axis=1)
            active[:, layer] = np.sum(z > 0, axis=1)
            h = _phi(activation, z)
            J = W if J is None else W @ J
            J *= _dphi(activation, z)[:, :, None]
    return NetworkJacobian(activation, weights, gain, q0, J, variances, active, x, layers)


def susceptibility(activation: str, gain: float, q: float) -> float:
    """``chi = gain^2 E[phi'(sqrt(q) z)^2]``: the factor by which one layer multiplies the mean
    squared singular value of the Jacobian in a wide network, at pre-activation variance ``q``.

    ``chi = 1`` is criticality: ``gain^2 / 2`` for ReLU, so ``gain = sqrt(2)``; for tanh,
    ``chi = gain^2`` as ``q -> 0``. Taught in chapter 9.
    """
    activation = _activation(activation)
    gain = _gain(gain)
    q = check_real(q, "q", low=0.0)
    if activation == "relu":
        return gain**2 / 2
    if activation == "linear":
        return gain**2
    return gain**2 * float(np.sum(_W * (1.0 - np.tanh(math.sqrt(q) * _Z) ** 2) ** 2))


def spectrum_variance(activation: str, weights: str, depth: int, q: float) -> float:
    """Predicted variance of the squared singular values of ``J`` for wide critical networks.

    Pennington, Schoenholz and Ganguli (2017) computed the spectrum of ``J J^T`` with
    free probability. When ``chi = gain^2 E[phi'(z)^2] = 1`` (so the mean squared singular
    value is 1), its variance is

        ``depth * (mu_2 / mu_1^2 - 1 - s_1)``,  ``mu_k = E[phi'(sqrt(q) z)^(2k)]``,

    with ``s_1 = 0`` for orthogonal and ``s_1 = -1`` for Gaussian weights, and ``q``
    the pre-activation variance. ReLU has ``mu_1 = mu_2 = 1/2``, so the variance is
    ``depth`` or ``2 depth`` whatever the weights; a linear network gives 0 or ``depth``
    (the Fuss-Catalan moments of products of Gaussian matrices); tanh with orthogonal
    weights tends to 0 as ``q -> 0``. Taught in chapter 9.
    """
    activation, weights = _activation(activation), _weights(weights)
    depth = check_int(depth, "depth", low=1)
    q = check_real(q, "q", low=0.0)
    if activation == "relu":
        mu1 = mu2 = 0.5
    elif activation == "linear":
        mu1 = mu2 = 1.0
    else:
        slopes = (1.0 - np.tanh(math.sqrt(q) * _Z) ** 2) ** 2
        mu1, mu2 = float(np.sum(_W * slopes)), float(np.sum(_W * slopes**2))
    s1 = 0.0 if weights == "orthogonal" else -1.0
    return depth * (mu2 / mu1**2 - 1.0 - s1)


# -- training deep networks from different initializations -------------------------------------


@dataclass(frozen=True)
class DeepTraining:
    """What :func:`train_deep_mlps` recorded.

    Attributes
    ----------
    batch_loss : ndarray of shape (seeds, steps)
        Each network's mini-batch loss at each step (NaN or inf once it diverged).
    final_loss : ndarray of shape (seeds,)
        Each network's cross-entropy on the whole training set after training
        (``inf`` if it diverged).

    Taught in chapter 9.
    """

    batch_loss: np.ndarray
    final_loss: np.ndarray

    @property
    def diverged(self) -> np.ndarray:
        """One boolean per network: did its loss stop being finite?"""
        return ~np.isfinite(self.final_loss)


def _stacked_weights(sizes, seeds, gain, weights, generator):
    """Per-layer weight stacks (seeds, out, in), hidden layers scaled by ``gain``."""
    import torch

    stacks = []
    last = len(sizes) - 2
    for k, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        W = torch.empty(seeds, fan_out, fan_in)
        for s in range(seeds):
            if weights == "orthogonal":
                initialization.orthogonal_(W[s], generator=generator)
                if fan_out > fan_in:  # orthonormal columns: match N(0, 1/fan_in) per unit
                    W[s].mul_(math.sqrt(fan_out / fan_in))
            else:
                initialization.he_normal_(W[s], gain=1.0, generator=generator)
        stacks.append(W if k == last else W * gain)
    return stacks


def train_deep_mlps(
    X,
    y,
    *,
    depth: int,
    gain: float,
    activation: str = "relu",
    weights: str = "orthogonal",
    width: int = 64,
    seeds: int = 5,
    steps: int = 150,
    lr: float = 0.02,
    batch_size: int = 64,
    seed: int = 0,
) -> DeepTraining:
    """Train ``seeds`` deep MLPs at once (batched matrix products) with plain SGD.

    Each network maps ``X`` through ``depth`` hidden layers of ``width`` units
    (``activation``, zero biases at the start) to one logit per class. Hidden weights
    are ``gain`` times an orthogonal matrix or times ``N(0, 1 / fan_in)``; the read-out
    layer has gain 1. Every network gets its own initialization and its own sequence of
    ``batch_size`` examples drawn with replacement; the cross-entropy is minimized with
    ``steps`` SGD steps of size ``lr``. A diverging network is not stopped: its
    losses become inf or NaN and :attr:`DeepTraining.diverged` reports it.

    Returns
    -------
    DeepTraining
        Taught in chapter 9.
    """
    import torch

    X = as_float_array(X, "X", ndim=2)
    y = as_labels(y, "y", n=X.shape[0])
    if y.min() < 0:
        raise ValueError("y must hold class indices 0, 1, ..., got a negative label")
    depth = check_int(depth, "depth", low=1, high=1000)
    gain = _gain(gain)
    activation, weights = _activation(activation), _weights(weights)
    width = check_int(width, "width", low=1, high=4096)
    seeds = check_int(seeds, "seeds", low=1, high=1000)
    steps = check_int(steps, "steps", low=1)
    lr = check_real(lr, "lr", low=0.0, low_open=True)
    batch_size = check_int(batch_size, "batch_size", low=1)
    seed = check_seed(seed)
    n_classes = int(y.max()) + 1
    sizes = [X.shape[1]] + [width] * depth + [n_classes]
    phi = {"relu": torch.relu, "tanh": torch.tanh, "linear": lambda t: t}[activation]
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    X_t, y_t = torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y)
    with limited_threads(0):
        Ws = [W.requires_grad_() for W in _stacked_weights(sizes, seeds, gain, weights, generator)]
        bs = [torch.zeros(seeds, 1, n, requires_grad=True) for n in sizes[1:]]
        params = Ws + bs

        def logits(h):
            for k, (W, b) in enumerate(zip(Ws, bs, strict=True)):
                h = torch.baddbmm(b, h, W.transpose(1, 2))
                if k < depth:
                    h = phi(h)
            return h

        def losses(index):
            out = logits(X_t[index])
            per_example = torch.nn.functional.cross_entropy(
                out.reshape(-1, n_classes), y_t[index].reshape(-1), reduction="none"
            )
            return per_example.reshape(index.shape).mean(dim=1)

        history = torch.empty(steps, seeds)
        for step in range(steps):
            index = torch.as_tensor(rng.integers(0, len(y), size=(seeds, batch_size)))
            loss = losses(index)
            grads = torch.autograd.grad(loss.sum(), params)
            with torch.no_grad():
                torch._foreach_add_(params, grads, alpha=-lr)
                history[step] = loss
        with torch.no_grad():
            final = losses(torch.arange(len(y)).expand(seeds, -1)).numpy().astype(np.float64)
    final[~np.isfinite(final)] = np.inf
    return DeepTraining(batch_loss=history.numpy().T.astype(np.float64), final_loss=final)
