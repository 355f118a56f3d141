"""dl_course.optim against torch.optim: same trajectories to round-off, same schedules."""

import math

import numpy as np
import pytest
import torch

from dl_course import optim
from dl_course.training import DivergenceError

A = np.array([[3.0, 0.5], [0.5, 0.2]])


def rosenbrock_grad(x):
    """Gradient of (1 - x0)^2 + 5 (x1 - x0^2)^2: curved, so every state variable matters."""
    return np.array([-2 * (1 - x[0]) - 20 * x[0] * (x[1] - x[0] ** 2), 10 * (x[1] - x[0] ** 2)])


def torch_path(method, lr, steps, x0, **hparams):
    x = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    name = {"sgd": "SGD", "momentum": "SGD", "adagrad": "Adagrad", "rmsprop": "RMSprop"}
    cls = getattr(torch.optim, name.get(method, "Adam" if method == "adam" else "AdamW"))
    if method == "momentum":
        hparams = {"momentum": 0.9} | hparams
    opt = cls([x], lr=lr, **hparams)
    path = [x.detach().clone().numpy()]
    for _ in range(steps):
        opt.zero_grad()
        x.grad = torch.tensor(rosenbrock_grad(x.detach().numpy()))
        opt.step()
        path.append(x.detach().clone().numpy())
    return np.array(path)


CASES = [
    ("sgd", 0.01, {}),
    ("sgd", 0.01, {"momentum": 0.8, "dampening": 0.3, "weight_decay": 0.1}),
    ("sgd", 0.01, {"momentum": 0.7, "nesterov": True}),
    ("momentum", 0.005, {}),
    ("adagrad", 0.3, {}),
    ("adagrad", 0.3, {"lr_decay": 0.01, "initial_accumulator_value": 0.5, "weight_decay": 0.05}),
    ("rmsprop", 0.01, {}),
    ("rmsprop", 0.01, {"alpha": 0.9, "momentum": 0.5, "centered": True, "eps": 1e-6}),
    ("adam", 0.05, {}),
    ("adam", 0.05, {"betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1, "amsgrad": True}),
    ("adamw", 0.05, {}),
    ("adamw", 0.05, {"weight_decay": 0.3, "amsgrad": True}),
]


@pytest.mark.parametrize(("method", "lr", "hparams"), CASES, ids=lambda c: str(c))
def test_trajectory_equals_torch(method, lr, hparams):
    x0 = [-1.2, 1.0]
    ours = optim.optimize(rosenbrock_grad, x0, method, lr=lr, steps=200, **hparams)
    assert ours.shape == (201, 2)
    np.testing.assert_allclose(ours, torch_path(method, lr, 200, x0, **hparams), rtol=1e-10, atol=1e-12)


def test_the_start_is_the_first_row_and_is_not_modified():
    x0 = np.array([1.0, 2.0])
    path = optim.optimize(lambda x: A @ x, x0, "sgd", lr=0.1, steps=3)
    assert np.array_equal(path[0], [1.0, 2.0]) and np.array_equal(x0, [1.0, 2.0])
    np.testing.assert_allclose(path[1], x0 - 0.1 * A @ x0)


def test_adam_without_bias_correction_starts_slowly():
    path = optim.optimize(lambda x: np.ones_like(x), [0.0], "adam", lr=0.1, steps=1)
    slow = optim.optimize(
        lambda x: np.ones_like(x), [0.0], "adam", lr=0.1, steps=1, bias_correction=False
    )
    # with correction the first step is lr; without, (1 - beta1) / sqrt(1 - beta2) * lr
    assert math.isclose(path[1, 0], -0.1, rel_tol=1e-6)
    assert math.isclose(slow[1, 0], -0.1 * 0.1 / math.sqrt(0.001), rel_tol=1e-6)


def test_divergence_is_reported_with_its_step():
    with pytest.raises(DivergenceError, match="diverged at step .* smaller learning rate"):
        optim.optimize(lambda x: 1e200 * x, [1.0], "sgd", lr=1e200, steps=5)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"method": "lbfgs"}, ValueError, "method must be one of"),
        ({"lr": 0.0}, ValueError, "lr must be >"),
        ({"lr": "0.1"}, TypeError, "lr must be a real"),
        ({"steps": -1}, ValueError, "steps must be >= 0"),
        ({"steps": 2.5}, TypeError, "steps must be an integer"),
        ({"x0": [[1.0]]}, ValueError, "x0 must be 1-D"),
        ({"x0": [np.nan]}, ValueError, "x0 must contain only finite"),
        ({"beta": 0.9}, ValueError, "takes the hyperparameters"),
        ({"momentum": -0.5}, ValueError, "momentum must be >= 0"),
        ({"nesterov": True}, ValueError, "nesterov=True needs momentum"),
        ({"grad_fn": 3}, TypeError, "grad_fn must be callable"),
        ({"grad_fn": lambda x: np.zeros(3)}, ValueError, "grad_fn must return an array of shape"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(kwargs, error, match):
    args = {"grad_fn": lambda x: x, "x0": [1.0], "method": "sgd", "lr": 0.1, "steps": 2} | kwargs
    with pytest.raises(error, match=match):
        optim.optimize(**args)


def test_adam_betas_are_checked():
    with pytest.raises(ValueError, match=r"betas\[1\] must be <"):
        optim.optimize(lambda x: x, [1.0], "adam", lr=0.1, steps=1, betas=(0.9, 1.0))
    with pytest.raises(TypeError, match="betas must be a pair"):
        optim.optimize(lambda x: x, [1.0], "adam", lr=0.1, steps=1, betas=0.9)


def torch_rates(scheduler_cls, steps, **kwargs):
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.5)
    scheduler = scheduler_cls(opt, **kwargs)
    rates = []
    for _ in range(steps):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    return np.array(rates)


def test_schedules_equal_torch():
    steps = 40
    sched = torch.optim.lr_scheduler
    ours = [optim.step_decay(0.5, t, step_size=7, gamma=0.3) for t in range(steps)]
    np.testing.assert_allclose(ours, torch_rates(sched.StepLR, steps, step_size=7, gamma=0.3))
    ours = [optim.exponential_decay(0.5, t, gamma=0.9) for t in range(steps)]
    np.testing.assert_allclose(ours, torch_rates(sched.ExponentialLR, steps, gamma=0.9))
    ours = [optim.cosine_annealing(0.5, t, t_max=39, lr_min=0.01) for t in range(steps)]
    np.testing.assert_allclose(
        ours, torch_rates(sched.CosineAnnealingLR, steps, T_max=39, eta_min=0.01), rtol=1e-12
    )


def test_inverse_time_decay_halves_at_one_over_decay():
    assert optim.inverse_time_decay(0.2, 0, decay=0.1) == 0.2
    assert math.isclose(optim.inverse_time_decay(0.2, 10, decay=0.1), 0.1)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: optim.step_decay(0.1, 3, step_size=0), "step_size must be >= 1"),
        (lambda: optim.exponential_decay(-0.1, 3, gamma=0.9), "lr0 must be >"),
        (lambda: optim.cosine_annealing(0.1, -1, t_max=10), "t must be >= 0"),
        (lambda: optim.cosine_annealing(0.1, 1, t_max=10, lr_min=0.2), "lr_min must be <="),
        (lambda: optim.inverse_time_decay(0.1, 1, decay=-1.0), "decay must be >= 0"),
    ],
)
def test_schedules_refuse_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
