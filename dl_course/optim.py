"""Optimization algorithms and learning-rate schedules, in NumPy (chapter 6).

:func:`optimize` runs one of the classic first-order methods on a gradient
function and returns every iterate. Each method follows :mod:`torch.optim`'s
update rule, hyperparameter names and defaults, so a trajectory here equals
torch's to round-off (the tests check this for every method):

==========  =====================================  ==========================================
method      torch equivalent                       hyperparameters (torch defaults)
==========  =====================================  ==========================================
"sgd"       ``SGD``                                momentum=0, dampening=0, nesterov=False,
                                                   weight_decay=0
"momentum"  ``SGD(momentum=0.9)``                  as "sgd", with momentum=0.9 unless given
"adagrad"   ``Adagrad``                            lr_decay=0, weight_decay=0,
                                                   initial_accumulator_value=0, eps=1e-10
"rmsprop"   ``RMSprop``                            alpha=0.99, eps=1e-8, weight_decay=0,
                                                   momentum=0, centered=False
"adam"      ``Adam``                               betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                                                   amsgrad=False
"adamw"     ``AdamW``                              as "adam", weight_decay=0.01 (decoupled)
==========  =====================================  ==========================================

``"adam"`` and ``"adamw"`` also take ``bias_correction=False``, which torch does
not offer: chapter 6 uses it to show what Adam's bias correction is for.

The schedules return the learning rate at step ``t`` and match
:mod:`torch.optim.lr_scheduler` where torch has the same schedule
(``StepLR``, ``ExponentialLR``, ``CosineAnnealingLR``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from dl_course._checks import as_float_array, check_bool, check_int, check_real

_HPARAMS = {
    "sgd": {"momentum": 0.0, "dampening": 0.0, "nesterov": False, "weight_decay": 0.0},
    "momentum": {"momentum": 0.9, "dampening": 0.0, "nesterov": False, "weight_decay": 0.0},
    "adagrad": {
        "lr_decay": 0.0,
        "weight_decay": 0.0,
        "initial_accumulator_value": 0.0,
        "eps": 1e-10,
    },
    "rmsprop": {
        "alpha": 0.99,
        "eps": 1e-8,
        "weight_decay": 0.0,
        "momentum": 0.0,
        "centered": False,
    },
    "adam": {
        "betas": (0.9, 0.999),
        "eps": 1e-8,
        "weight_decay": 0.0,
        "amsgrad": False,
        "bias_correction": True,
    },
    "adamw": {
        "betas": (0.9, 0.999),
        "eps": 1e-8,
        "weight_decay": 0.01,
        "amsgrad": False,
        "bias_correction": True,
    },
}
METHODS = tuple(_HPARAMS)


def _checked_hparams(method: str, hparams: dict) -> dict:
    """The method's defaults updated with ``hparams``, each validated."""
    if not isinstance(method, str) or method not in _HPARAMS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    defaults = _HPARAMS[method]
    unknown = sorted(set(hparams) - set(defaults))
    if unknown:
        raise ValueError(
            f"method {method!r} takes the hyperparameters {sorted(defaults)}, got {unknown}"
        )
    merged = defaults | hparams
    for name, value in merged.items():
        if isinstance(defaults[name], bool):
            merged[name] = check_bool(value, name)
        elif name == "betas":
            if not isinstance(value, tuple | list) or len(value) != 2:
                raise TypeError(f"betas must be a pair (beta1, beta2), got {value!r}")
            merged[name] = tuple(
                check_real(b, f"betas[{k}]", low=0.0, high=1.0, high_open=True)
                for k, b in enumerate(value)
            )
        elif name == "eps":
            merged[name] = check_real(value, name, low=0.0, low_open=True)
        else:
            merged[name] = check_real(value, name, low=0.0)
    if merged.get("nesterov") and (merged["momentum"] <= 0 or merged["dampening"] != 0):
        raise ValueError("nesterov=True needs momentum > 0 and dampening = 0 (as in torch)")
    if method in ("rmsprop",) and merged["alpha"] > 1:
        raise ValueError(f"alpha must be <= 1, got {merged['alpha']}")
    return merged


def _sgd_step(x, g, t, state, lr, momentum, dampening, nesterov, weight_decay):
    g = g + weight_decay * x
    if momentum:
        buf = g.copy() if t == 1 else momentum * state["buf"] + (1 - dampening) * g
        state["buf"] = buf
        g = g + momentum * buf if nesterov else buf
    return x - lr * g


def _adagrad_step(x, g, t, state, lr, lr_decay, weight_decay, initial_accumulator_value, eps):
    g = g + weight_decay * x
    if t == 1:
        state["sum"] = np.full_like(x, initial_accumulator_value)
    state["sum"] = state["sum"] + g * g
    clr = lr / (1 + (t - 1) * lr_decay)
    return x - clr * g / (np.sqrt(state["sum"]) + eps)


def _rmsprop_step(x, g, t, state, lr, alpha, eps, weight_decay, momentum, centered):
    g = g + weight_decay * x
    if t == 1:
        state["square_avg"] = np.zeros_like(x)
        state["grad_avg"] = np.zeros_like(x)
        state["buf"] = np.zeros_like(x)
    state["square_avg"] = alpha * state["square_avg"] + (1 - alpha) * g * g
    if centered:
        state["grad_avg"] = state["grad_avg"] + (1 - alpha) * (g - state["grad_avg"])  # torch's lerp
        avg = np.sqrt(state["square_avg"] - state["grad_avg"] ** 2) + eps
    else:
        avg = np.sqrt(state["square_avg"]) + eps
    if momentum > 0:
        state["buf"] = momentum * state["buf"] + g / avg
        return x - lr * state["buf"]
    return x - lr * g / avg


def _adam_step(x, g, t, state, lr, betas, eps, weight_decay, amsgrad, bias_correction, decoupled):
    beta1, beta2 = betas
    if decoupled:
        x = x * (1 - lr * weight_decay)
    else:
        g = g + weight_decay * x
    if t == 1:
        state["m"], state["v"], state["v_max"] = (np.zeros_like(x) for _ in range(3))
    state["m"] = state["m"] + (1 - beta1) * (g - state["m"])  # torch's lerp: same value, same rounding
    state["v"] = beta2 * state["v"] + (1 - beta2) * g * g
    v = state["v"]
    if amsgrad:
        state["v_max"] = np.maximum(state["v_max"], v)
        v = state["v_max"]
    c1, c2 = (1 - beta1**t, 1 - beta2**t) if bias_correction else (1.0, 1.0)
    return x - (lr / c1) * state["m"] / (np.sqrt(v) / math.sqrt(c2) + eps)


def optimize(
    grad_fn: Callable[[np.ndarray], np.ndarray],
    x0,
    method: str,
    lr: float,
    steps: int,
    **hparams,
) -> np.ndarray:
    """Run ``steps`` updates of ``method`` from ``x0`` and return every iterate.

    Parameters
    ----------
    grad_fn : callable
        ``grad_fn(x)`` returns the gradient at ``x`` (a 1-D array of the same
        length). A stochastic gradient is fine: it is called once per step.
    x0 : array_like, 1-D
        The starting point.
    method : {"sgd", "momentum", "adagrad", "rmsprop", "adam", "adamw"}
        The update rule, as in :mod:`torch.optim` (see the module docstring).
    lr : float
        The learning rate, > 0.
    steps : int
        The number of updates, >= 0.
    **hparams
        The method's hyperparameters under torch's names (``momentum``,
        ``alpha``, ``betas``, ``eps``, ``weight_decay``, ...), torch's defaults
        otherwise.

    Returns
    -------
    ndarray of shape (steps + 1, d)
        The iterates, starting with ``x0``.

    Raises
    ------
    dl_course.training.DivergenceError
        If an iterate or a gradient stops being finite: the message names the
        step and suggests a smaller learning rate.

    Examples
    --------
    >>> path = optimize(lambda x: 2 * x, [1.0, -2.0], "momentum", lr=0.1, steps=50)
    >>> path.shape
    (51, 2)
    """
    if not callable(grad_fn):
        raise TypeError(f"grad_fn must be callable, got {type(grad_fn).__name__}")
    x = as_float_array(x0, "x0", ndim=1).copy()
    lr = check_real(lr, "lr", low=0.0, low_open=True)
    steps = check_int(steps, "steps", low=0)
    params = _checked_hparams(method, hparams)
    if method in ("adam", "adamw"):
        step, params = _adam_step, params | {"decoupled": method == "adamw"}
    else:
        step = {"adagrad": _adagrad_step, "rmsprop": _rmsprop_step}.get(method, _sgd_step)
    path = np.empty((steps + 1, x.size))
    path[0] = x
    state: dict = {}
    for t in range(1, steps + 1):
        g = np.asarray(grad_fn(x), dtype=np.float64)
        if g.shape != x.shape:
            raise ValueError(f"grad_fn must return an array of shape {x.shape}, got {g.shape}")
        with np.errstate(over="ignore", invalid="ignore"):  # reported below, as divergence
            x = step(x, g, t, state, lr, **params)
        if not (np.all(np.isfinite(g)) and np.all(np.isfinite(x))):
            from dl_course.training import DivergenceError

            raise DivergenceError(
                f"{method} diverged at step {t}: the iterate or its gradient is no longer "
                f"finite; try a smaller learning rate (lr = {lr:g})"
            )
        path[t] = x
    return path


# -- learning-rate schedules -------------------------------------------------------------------


def _schedule_args(lr0, t) -> tuple[float, int]:
    return check_real(lr0, "lr0", low=0.0, low_open=True), check_int(t, "t", low=0)


def step_decay(lr0: float, t: int, step_size: int, gamma: float = 0.1) -> float:
    """``lr0 * gamma ** (t // step_size)``: drop by ``gamma`` every ``step_size`` steps.

    Equals :class:`torch.optim.lr_scheduler.StepLR` at step ``t``. Taught in chapter 6.
    """
    lr0, t = _schedule_args(lr0, t)
    step_size = check_int(step_size, "step_size", low=1)
    gamma = check_real(gamma, "gamma", low=0.0, low_open=True)
    return lr0 * gamma ** (t // step_size)


def exponential_decay(lr0: float, t: int, gamma: float) -> float:
    """``lr0 * gamma ** t`` (:class:`torch.optim.lr_scheduler.ExponentialLR`). Chapter 6."""
    lr0, t = _schedule_args(lr0, t)
    gamma = check_real(gamma, "gamma", low=0.0, low_open=True)
    return lr0 * gamma**t


def inverse_time_decay(lr0: float, t: int, decay: float) -> float:
    """``lr0 / (1 + decay * t)``, the 1/t decay of the convergence theory. Chapter 6."""
    lr0, t = _schedule_args(lr0, t)
    decay = check_real(decay, "decay", low=0.0)
    return lr0 / (1 + decay * t)


def cosine_annealing(lr0: float, t: int, t_max: int, lr_min: float = 0.0) -> float:
    """``lr_min + (lr0 - lr_min) (1 + cos(pi t / t_max)) / 2`` for ``t <= t_max``.

    Equals :class:`torch.optim.lr_scheduler.CosineAnnealingLR` with
    ``T_max=t_max, eta_min=lr_min`` over its first half-period; past ``t_max``
    the rate stays at ``lr_min`` (restart the count for a cyclic schedule).
    Chapter 6; chapter 7 uses its cycles for snapshot ensembles.
    """
    lr0, t = _schedule_args(lr0, t)
    t_max = check_int(t_max, "t_max", low=1)
    lr_min = check_real(lr_min, "lr_min", low=0.0, high=lr0)
    t = min(t, t_max)
    return lr_min + (lr0 - lr_min) * (1 + math.cos(math.pi * t / t_max)) / 2
