"""dl_course.quadratic against eigenvalue solvers, torch autograd and the iterates themselves."""

import math

import numpy as np
import pytest
import torch

from dl_course import optim
from dl_course import quadratic as qd


def test_make_quadratic_has_the_requested_spectrum_and_minimizer():
    lam = [0.5, 2.0, 7.0, 30.0]
    q = qd.make_quadratic(lam, seed=3, x_star=[1.0, -1.0, 0.5, 2.0])
    np.testing.assert_allclose(q.eigenvalues, lam, rtol=1e-12)
    np.testing.assert_allclose(q.H, q.H.T)
    assert math.isclose(q.condition_number, 60.0, rel_tol=1e-12)
    np.testing.assert_allclose(q.grad(q.x_star), 0.0, atol=1e-14)
    assert q.value(q.x_star) == 0.0


def test_two_dimensional_rotation_puts_the_eigenvectors_at_the_angle():
    q = qd.make_quadratic([1.0, 9.0], angle=math.pi / 6)
    _, vectors = np.linalg.eigh(q.H)
    first = vectors[:, 0] * np.sign(vectors[0, 0])
    np.testing.assert_allclose(first, [math.cos(math.pi / 6), math.sin(math.pi / 6)], atol=1e-12)


def test_value_and_grad_agree_with_torch_autograd_on_grids():
    q = qd.make_quadratic([1.0, 4.0, 9.0], seed=1, x_star=[0.3, -0.2, 1.0])
    points = np.random.default_rng(0).normal(size=(5, 4, 3))
    x = torch.tensor(points, requires_grad=True)
    e = x - torch.tensor(q.x_star)
    f = 0.5 * torch.einsum("...i,ij,...j->...", e, torch.tensor(q.H), e)
    f.sum().backward()
    np.testing.assert_allclose(q.value(points), f.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(q.grad(points), x.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_gd_rate_is_the_spectral_radius_of_the_gd_map():
    q = qd.make_quadratic([0.2, 1.0, 5.0], seed=0)
    for lr in (0.05, 0.3, 0.39, 0.41, 1.0):
        radius = np.max(np.abs(np.linalg.eigvals(np.eye(3) - lr * q.H)))
        assert math.isclose(qd.gd_rate(q.eigenvalues, lr), radius, rel_tol=1e-12)
    assert qd.gd_rate([1.0, 4.0], np.array([0.1, 0.2])).shape == (2,)


def test_best_gd_step_beats_every_other_step():
    lam = [1.0, 3.0, 20.0]
    lr, rate = qd.best_gd_step(lam)
    assert math.isclose(lr, 2 / 21) and math.isclose(rate, 19 / 21)
    grid = np.linspace(1e-4, 0.1, 20001)
    assert np.all(qd.gd_rate(lam, grid) >= rate - 1e-12)
    assert math.isclose(qd.gd_rate(lam, lr), rate, rel_tol=1e-12)


def test_heavy_ball_rate_equals_the_eigenvalues_of_its_matrices():
    lam = np.array([1.0, 10.0, 50.0])
    rng = np.random.default_rng(0)
    lrs, momenta = rng.uniform(1e-3, 0.09, 300), rng.uniform(0.0, 0.99, 300)
    closed = qd.heavy_ball_rate(lam, lrs, momenta)
    matrices = qd.heavy_ball_matrix(lam[:, None], lrs, momenta)  # (3, 300, 2, 2)
    numeric = np.abs(np.linalg.eigvals(matrices)).max(axis=-1).max(axis=0)
    np.testing.assert_allclose(closed, numeric, rtol=1e-6)
    assert (closed > 1).any() and (closed < 1).any()  # both regions were sampled


def test_heavy_ball_matrix_generates_torch_momentum_iterates():
    """optimize("sgd", momentum=...) equals torch (tests/test_optim.py); the matrix must too."""
    q = qd.make_quadratic([2.0, 7.0])
    lr, momentum = 0.1, 0.6
    path = optim.optimize(q.grad, [1.0, -0.5], "sgd", lr=lr, momentum=momentum, steps=30)
    lam, vectors = np.linalg.eigh(q.H)
    coords = path @ vectors  # coordinates along the eigenvectors
    for i in range(2):
        T = qd.heavy_ball_matrix(lam[i], lr, momentum)
        state = np.array([coords[0, i], coords[0, i]])  # x_{-1} = x_0: torch's first step
        for t in range(1, 31):
            state = T @ state
            assert math.isclose(state[0], coords[t, i], rel_tol=1e-9, abs_tol=1e-12)


def test_best_heavy_ball_is_polyaks_choice_and_not_beaten_on_a_grid():
    lam = [1.0, 100.0]
    lr, momentum, rate = qd.best_heavy_ball(lam)
    assert math.isclose(rate, 9 / 11) and math.isclose(momentum, (9 / 11) ** 2)
    assert math.isclose(lr, 4 / 121)
    assert math.isclose(qd.heavy_ball_rate(lam, lr, momentum), rate, rel_tol=1e-7)
    E, R = np.meshgrid(np.linspace(1e-4, 0.04, 400), np.linspace(0.0, 0.99, 400))
    assert qd.heavy_ball_rate(lam, E, R).min() >= rate - 1e-9


def test_measured_rate_reads_off_geometric_and_oscillating_decay():
    t = np.arange(200)[:, None]
    geometric = 0.9**t * np.array([[1.0, 2.0]])
    assert math.isclose(qd.measured_rate(geometric), 0.9, rel_tol=1e-10)
    q = qd.make_quadratic([1.0, 10.0], angle=0.4)
    lr = 0.19  # lr * lam_max = 1.9: oscillating
    path = optim.optimize(q.grad, [1.0, 1.0], "sgd", lr=lr, steps=400)
    assert math.isclose(qd.measured_rate(path), qd.gd_rate(q.eigenvalues, lr), rel_tol=1e-3)
    shifted = path + 5.0  # a nonzero minimizer: the floor follows its size
    assert math.isclose(
        qd.measured_rate(shifted, [5.0, 5.0]), qd.gd_rate(q.eigenvalues, lr), rel_tol=1e-3
    )


def test_iterations_to_tolerance():
    errors = 0.5 ** np.arange(30)[:, None]
    assert qd.iterations_to_tolerance(errors, tol=1e-3) == 10  # 2^-10 < 1e-3 < 2^-9
    assert qd.iterations_to_tolerance(errors[:5], tol=1e-3) is None


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: qd.make_quadratic([[1.0]]), ValueError, "eigenvalues must be 1-D"),
        (lambda: qd.make_quadratic([1.0, 2.0, 3.0], angle=0.3), ValueError, "two dimensions"),
        (lambda: qd.make_quadratic([1.0, 2.0], x_star=[0.0]), ValueError, "x_star must have"),
        (lambda: qd.gd_rate([1.0, -1.0], 0.1), ValueError, "eigenvalues must be > 0"),
        (lambda: qd.gd_rate([1.0], 0.0), ValueError, "lr must be > 0"),
        (lambda: qd.heavy_ball_rate([1.0], 0.1, 1.0), ValueError, r"momentum must be in \[0, 1\)"),
        (lambda: qd.measured_rate(np.ones((2, 2))), ValueError, "at least 3 steps"),
        (lambda: qd.measured_rate(np.ones((9, 2)), tail=0.0), ValueError, "tail must be >"),
        (lambda: qd.iterations_to_tolerance(np.ones((3, 2)), tol=0), ValueError, "tol must be >"),
    ],
)
def test_bad_input_is_refused(call, error, match):
    with pytest.raises(error, match=match):
        call()
