"""dl_course.theory.double_descent against NumPy's pseudo-inverse, scikit-learn, torch and closed forms."""

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge
from threadpoolctl import threadpool_limits

from dl_course.theory import double_descent as dd

WIDTHS = [10, 60, 99, 100, 101, 160, 400]


@pytest.fixture(autouse=True)
def one_blas_thread():
    """Small matrices: one BLAS thread is faster than two on a busy machine."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def direct_errors(n, widths, noise, ridge, seed):
    """Test error, train error, norm: fitted one width at a time with pinv or scikit-learn."""
    task = dd.make_task(n, max(widths), seed)
    y = task.labels(noise)
    out = []
    for p in widths:
        F, F_test = task.features(task.X_train, p), task.features(task.X_test, p)
        if ridge == 0:
            a = np.linalg.pinv(F) @ y
        else:
            a = Ridge(alpha=ridge, fit_intercept=False, solver="svd").fit(F, y).coef_
        test = np.mean((F_test @ a - task.target_test) ** 2)
        out.append((test, np.mean((F @ a - y) ** 2), np.linalg.norm(a)))
    return np.array(out).T


# -- the random-features curve -----------------------------------------------------------------


@pytest.mark.parametrize(("noise", "ridge"), [(0.0, 0.0), (0.5, 0.0), (0.5, 1e-3), (1.0, 0.3)])
def test_curve_agrees_with_pinv_and_scikit_learn(noise, ridge):
    curve = dd.random_features_curve(100, WIDTHS, noise=noise, ridge=ridge, seed=3)
    expected = direct_errors(100, WIDTHS, noise, ridge, seed=3)[0]
    np.testing.assert_allclose(curve, expected, rtol=1e-8)


def test_sweep_gives_every_noise_and_ridge_from_one_svd():
    noises, ridges, widths = [0.0, 0.3, 1.0], [0.0, 1e-4, 0.1], [10, 39, 40, 41, 150]
    sweep = dd.random_features_sweep(40, widths, ridges=ridges, noises=noises, seeds=[1, 2])
    assert sweep.test_error.shape == (2, len(widths), 3, 3)
    for i, seed in enumerate([1, 2]):
        for r, ridge in enumerate(ridges):
            for k, noise in enumerate(noises):
                test, train, norm = direct_errors(40, widths, noise, ridge, seed)
                np.testing.assert_allclose(sweep.test_error[i, :, r, k], test, rtol=1e-8)
                np.testing.assert_allclose(sweep.coef_norm[i, :, r, k], norm, rtol=1e-8)
                np.testing.assert_allclose(sweep.train_error[i, :, r, k], train, atol=1e-10)


def test_min_norm_fit_interpolates_beyond_the_threshold():
    sweep = dd.random_features_sweep(80, [40, 79, 80, 81, 300], noises=[0.5], seeds=[0])
    train = sweep.train_error[0, :, 0, 0]
    assert train[0] > 0.05 and train[1] > 1e-4  # fewer features than examples: no interpolation
    assert np.all(train[2:] < 1e-12)


def test_smallest_singular_value_is_that_of_the_feature_matrix():
    sweep = dd.random_features_sweep(50, [20, 50, 200], seeds=[4])
    task = dd.make_task(50, 200, 4)
    for j, p in enumerate([20, 50, 200]):
        s = np.linalg.svd(task.features(task.X_train, p), compute_uv=False)
        assert sweep.smallest_singular_value[0, j] == pytest.approx(s[min(50, p) - 1], rel=1e-8)


def test_peak_at_the_interpolation_threshold():
    errors = dd.random_features_curve(100, [50, 100, 400], noise=0.5)
    assert errors[1] > 10 * max(errors[0], errors[2])


def test_draws_are_nested_in_width_and_in_examples():
    wide = dd.random_features_curve(60, [30, 500], noise=0.2, seed=5)
    narrow = dd.random_features_curve(60, [30], noise=0.2, seed=5)
    assert wide[0] == pytest.approx(narrow[0], rel=1e-12)
    small, large = dd.make_task(30, 10, seed=2), dd.make_task(90, 40, seed=2)
    np.testing.assert_array_equal(small.X_train, large.X_train[:30])
    np.testing.assert_array_equal(small.label_noise, large.label_noise[:30])
    np.testing.assert_array_equal(small.weights, large.weights[:10])
    np.testing.assert_array_equal(small.X_test, large.X_test)


def test_teacher_is_a_fixed_unit_vector():
    beta = dd.teacher_direction()
    assert np.linalg.norm(beta) == pytest.approx(1.0, rel=1e-14)
    X = np.random.default_rng(0).normal(size=(5, dd.INPUT_DIM))
    np.testing.assert_allclose(dd.teacher(X), X @ beta, rtol=1e-14)
    task_a, task_b = dd.make_task(10, 5, seed=0), dd.make_task(10, 5, seed=1)
    assert not np.allclose(task_a.X_train, task_b.X_train)
    np.testing.assert_allclose(task_b.target_train, task_b.X_train @ beta, rtol=1e-14)


def test_relu_features_match_torch():
    rng = np.random.default_rng(0)
    X, W = rng.normal(size=(7, 4)), rng.normal(size=(9, 4))
    expected = torch.relu(torch.as_tensor(X) @ torch.as_tensor(W).T) / 3.0
    np.testing.assert_allclose(dd.relu_features(X, W), expected.numpy(), rtol=1e-14)


def test_large_ridge_shrinks_towards_zero():
    errors = dd.random_features_curve(50, [200], noise=0.5, ridge=1e8)
    task = dd.make_task(50, 200, 0)
    assert errors[0] == pytest.approx(np.mean(task.target_test**2), rel=1e-5)  # predicts ~0


# -- the isotropic closed form -----------------------------------------------------------------


def test_isotropic_risk_closed_form():
    risk = dd.isotropic_risk(50, [10, 48, 49, 50, 51, 52, 100], noise=0.5, signal=2.0)
    assert risk[0] == pytest.approx(0.25 * 10 / 39)
    assert risk[1] == pytest.approx(0.25 * 48 / 1)
    assert np.all(np.isinf(risk[2:5]))
    assert risk[5] == pytest.approx(4.0 * (1 - 50 / 52) + 0.25 * 50 / 1)
    assert risk[6] == pytest.approx(4.0 * 0.5 + 0.25 * 50 / 49)
    clean = dd.isotropic_risk(50, [10, 50, 51, 100], noise=0.0, signal=2.0)
    np.testing.assert_allclose(clean, [0.0, 0.0, 4.0 / 51, 2.0])  # only the bias is left


@pytest.mark.parametrize("noise", [0.0, 0.7])
def test_isotropic_simulation_agrees_with_the_closed_form(noise):
    widths = [5, 20, 35, 65, 80, 150]
    sim = dd.isotropic_min_norm_risk(50, widths, noise=noise, trials=300, seed=2)
    expected = dd.isotropic_risk(50, widths, noise)
    if noise == 0.0:  # no noise, fewer features than examples: exact recovery
        np.testing.assert_allclose(sim.mean[:3], expected[:3], atol=1e-20)
        sel = slice(3, None)
    else:
        sel = slice(None)
    assert np.all(np.abs(sim.mean[sel] - expected[sel]) < 4 * sim.standard_error[sel])


def test_isotropic_fit_is_the_pseudo_inverse_solution():
    sim = dd.isotropic_min_norm_risk(8, [5, 12], noise=0.3, trials=3, seed=7)
    rng = np.random.default_rng(7)
    for j, p in enumerate([5, 12]):
        X = rng.normal(size=(3, 8, p))
        y = X[:, :, 0] + 0.3 * rng.normal(size=(3, 8))
        beta_hat = np.stack([np.linalg.pinv(X[t]) @ y[t] for t in range(3)])
        beta_hat[:, 0] -= 1.0
        np.testing.assert_allclose(sim.risk[:, j], np.sum(beta_hat**2, axis=1), rtol=1e-9)
        s_min = [np.linalg.svd(X[t], compute_uv=False)[-1] for t in range(3)]
        np.testing.assert_allclose(sim.smallest_singular_value[:, j], s_min, rtol=1e-10)


def test_one_trial_has_no_standard_error():
    sim = dd.isotropic_min_norm_risk(10, [3], noise=0.1, trials=1)
    assert np.isnan(sim.standard_error[0])


# -- epoch-wise: gradient descent on fast and slow features ------------------------------------


def test_gradient_descent_closed_form_matches_torch_sgd():
    task = dd.two_scale_task(40, 15, 10, slow_scale=0.2, noise=0.3, seed=1)
    n = task.X.shape[0]
    lr = 0.9 * 2 * n / np.linalg.norm(task.X, 2) ** 2  # near the limit: oscillating directions
    steps = [0, 1, 2, 5, 50, 300]
    expected = dd.gradient_descent_risk(task, lr, steps)
    X, y = torch.as_tensor(task.X), torch.as_tensor(task.y)
    b = torch.zeros(X.shape[1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([b], lr=lr)
    risks = []
    for k in range(steps[-1] + 1):
        if k in steps:
            risks.append(task.risk(b.detach().numpy()))
        opt.zero_grad()
        (0.5 * ((X @ b - y) ** 2).mean()).backward()
        opt.step()
    np.testing.assert_allclose(expected, risks, rtol=1e-9)


def test_gradient_descent_ends_at_least_squares():
    task = dd.two_scale_task(60, 10, 10, slow_scale=0.5, noise=0.2, seed=0)
    lr = 60 / np.linalg.norm(task.X, 2) ** 2
    final = dd.gradient_descent_risk(task, lr, [10**7])
    beta_ls = np.linalg.lstsq(task.X, task.y, rcond=None)[0]
    assert final[0] == pytest.approx(task.risk(beta_ls), rel=1e-8)
    assert dd.gradient_descent_risk(task, lr, [0])[0] == pytest.approx(task.risk(np.zeros(20)))


def test_two_scale_task_signal_sizes():
    task = dd.two_scale_task(10, 30, 40, slow_scale=0.1, noise=0.0, slow_signal=2.0, seed=3)
    fast, slow = task.beta[:30], task.beta[30:]
    assert np.sum((task.scales[:30] * fast) ** 2) == pytest.approx(1.0)
    assert np.sum((task.scales[30:] * slow) ** 2) == pytest.approx(4.0)
    np.testing.assert_allclose(task.y, task.X @ task.beta)


def test_too_large_a_learning_rate_is_refused():
    task = dd.two_scale_task(20, 5, 5, slow_scale=0.1, noise=0.1)
    limit = 2 * 20 / np.linalg.norm(task.X, 2) ** 2
    with pytest.raises(ValueError, match="lr must be <"):
        dd.gradient_descent_risk(task, 1.01 * limit, [10])
    with pytest.raises(TypeError, match="task must be a TwoScaleTask"):
        dd.gradient_descent_risk("task", 0.1, [10])
    with pytest.raises(ValueError, match="steps"):
        dd.gradient_descent_risk(task, 0.5 * limit, [-1])


# -- label noise --------------------------------------------------------------------------------


def test_noisy_labels_changes_exactly_the_requested_fraction():
    y = np.arange(200) % 10
    noisy, flipped = dd.noisy_labels(y, 0.2, 10, seed=0)
    assert flipped.sum() == 40
    assert np.all(noisy[flipped] != y[flipped]) and np.all(noisy[~flipped] == y[~flipped])
    assert noisy.min() >= 0 and noisy.max() <= 9
    again, _ = dd.noisy_labels(y, 0.2, 10, seed=0)
    np.testing.assert_array_equal(noisy, again)


def test_noisy_labels_bad_input():
    with pytest.raises(ValueError, match="fraction"):
        dd.noisy_labels([0, 1], 1.5, 2)
    with pytest.raises(ValueError, match="y must take values"):
        dd.noisy_labels([0, 5], 0.5, 3)
    with pytest.raises(ValueError, match="y must be 1-D"):
        dd.noisy_labels([[0, 1]], 0.5, 2)


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_train": 0}, ValueError, "n_train must be >= 1"),
        ({"n_train": 10.5}, TypeError, "n_train must be an integer"),
        ({"noise": -0.1}, ValueError, "noise must be >= 0"),
        ({"ridge": -1e-3}, ValueError, "ridge must be >= 0"),
        ({"ridge": float("nan")}, ValueError, "ridge must be finite"),
        ({"widths": [10, 0]}, ValueError, r"widths\[1\] must be >= 1"),
        ({"widths": [10, -5]}, ValueError, r"widths\[1\] must be >= 1"),
        ({"widths": [10, 20.5]}, TypeError, r"widths\[1\] must be an integer"),
        ({"widths": [10.0]}, TypeError, r"widths\[0\] must be an integer"),
        ({"widths": []}, ValueError, "at least one width"),
        ({"widths": 10}, ValueError, "1-D sequence of positive integers"),
        ({"widths": [[10, 20]]}, ValueError, "1-D sequence of positive integers"),
        ({"widths": "10"}, ValueError, "1-D sequence of positive integers"),
        ({"seed": -1}, ValueError, "seed must be >= 0"),
    ],
)
def test_curve_bad_input(kwargs, error, match):
    args = {"n_train": 20, "widths": [10, 20]} | kwargs
    with pytest.raises(error, match=match):
        dd.random_features_curve(**args)


def test_sweep_bad_input():
    with pytest.raises(ValueError, match="ridges must be >= 0"):
        dd.random_features_sweep(10, [5], ridges=[0.0, -1.0])
    with pytest.raises(ValueError, match="noises must be >= 0"):
        dd.random_features_sweep(10, [5], noises=[-0.5])
    with pytest.raises(ValueError, match="seeds must be a non-empty"):
        dd.random_features_sweep(10, [5], seeds=[])
    with pytest.raises(ValueError, match=r"widths\[0\] must be <="):
        dd.random_features_sweep(10, [dd.MAX_WIDTH + 1])
    with pytest.raises(ValueError, match="trials"):
        dd.isotropic_min_norm_risk(1000, [1000], noise=0.1, trials=100)
    with pytest.raises(ValueError, match="must have one column per input"):
        dd.relu_features(np.ones((2, 3)), np.ones((4, 2)))


def test_import_is_numpy_only():
    code = (
        "import sys, dl_course.theory.double_descent; "
        "print(any(m in sys.modules for m in ('torch', 'matplotlib', 'sklearn')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_widths_accept_numpy_integers():
    widths = np.array([10, 20], dtype=np.int32)
    assert dd.random_features_curve(15, widths).shape == (2,)
    assert math.isfinite(dd.random_features_curve(15, [15], ridge=1e-3)[0])
