"""dl_course.theory.scaling against known parameters, scipy's curve_fit, quadrature and Monte Carlo."""

import math
import warnings

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.optimize import curve_fit

from dl_course.theory import scaling as sc

N = np.geomspace(16, 4096, 12).round()


def law(n, A, alpha, B):
    return A * n**-alpha + B


def relative_sse(params, n, y):
    return float((((y - law(n, *params)) / y) ** 2).sum())


# -- fit_power_law ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "true", [(3.0, 0.5, 0.2), (50.0, 1.7, 0.01), (1.0, 0.08, 0.5), (2.0, 0.3, 0.0)]
)
def test_noiseless_data_give_back_the_parameters(true):
    A, alpha, B = sc.fit_power_law(N, law(N, *true))
    np.testing.assert_allclose([A, alpha, B], true, rtol=1e-6, atol=1e-9)


def test_agrees_with_curve_fit_where_it_converges():
    rng = np.random.default_rng(1)
    for _ in range(10):
        y = law(N, 3.0, 0.5, 0.2) * (1 + 0.01 * rng.standard_normal(N.size))
        ours = sc.fit_power_law(N, y, sigma=y)
        theirs = curve_fit(law, N, y, p0=(1.0, 1.0, 1.0), sigma=y, maxfev=5000)[0]
        np.testing.assert_allclose(ours, theirs, rtol=1e-5)
        assert relative_sse(ours, N, y) <= relative_sse(theirs, N, y) * (1 + 1e-9)


def test_unweighted_fit_agrees_with_curve_fit():
    rng = np.random.default_rng(2)
    y = law(N, 1.5, 0.9, 0.05) + 0.002 * rng.standard_normal(N.size)
    ours = sc.fit_power_law(N, y)
    theirs = curve_fit(law, N, y, p0=(1.0, 1.0, 0.0), maxfev=5000)[0]
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)


def test_needs_no_start_where_curve_fit_gets_stuck():
    rng = np.random.default_rng(3)
    y = law(N, 3.0, 0.5, 0.2) * (1 + 0.01 * rng.standard_normal(N.size))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stuck = curve_fit(law, N, y, p0=(0.1, 3.0, 1.0), sigma=y, maxfev=2000)[0]
    ours = sc.fit_power_law(N, y, sigma=y)
    assert relative_sse(ours, N, y) < 0.5 * relative_sse(stuck, N, y)
    assert abs(ours[1] - 0.5) < 0.05


def test_batch_fit_matches_single_fits_and_repeats_are_allowed():
    rng = np.random.default_rng(4)
    Y = law(N, 2.0, 0.6, 0.1) * (1 + 0.02 * rng.standard_normal((5, N.size)))
    batch = sc.fit_power_laws(N, Y, sigma=Y)
    for row, y in zip(batch, Y, strict=True):
        np.testing.assert_allclose(row, sc.fit_power_law(N, y, sigma=y), rtol=1e-12)
    # five seeds per size, fitted jointly, equal the fit of their mean when unweighted
    pooled = sc.fit_power_law(np.tile(N, 5), Y.ravel())
    np.testing.assert_allclose(pooled, sc.fit_power_law(N, Y.mean(0)), rtol=1e-6)


def test_floor_constraint():
    y = law(N, 2.0, 0.5, 0.0) * np.exp(0.02 * np.random.default_rng(5).standard_normal(N.size))
    free = sc.fit_power_law(N, y, nonnegative_floor=False)
    held = sc.fit_power_law(N, y)
    assert held[2] >= 0.0
    if free[2] < 0:  # the constraint was active: the held fit is the best with B = 0
        assert held[2] == 0.0


@pytest.mark.parametrize(
    ("n", "loss", "kwargs", "error", "match"),
    [
        (N[:3], law(N[:3], 1, 1, 0), {}, ValueError, "at least 4"),
        (N, law(N[:-1], 1, 1, 0), {}, ValueError, "one entry per size"),
        (-N, law(N, 1, 1, 0), {}, ValueError, "n must be > 0"),
        (N, -law(N, 1, 1, 0), {}, ValueError, "loss must be > 0"),
        (N, np.where(N > 100, np.nan, 1.0), {}, ValueError, "finite"),
        ([10, 10, 20, 20], [1, 1, 0.5, 0.5], {}, ValueError, "3 distinct"),
        (N, law(N, 1, 1, 0), {"sigma": np.ones(3)}, ValueError, "sigma"),
        (N, law(N, 1, 1, 0), {"sigma": -np.ones(N.size)}, ValueError, "sigma must be > 0"),
        (N, law(N, 1, 1, 0), {"alpha_max": 0.0}, ValueError, "alpha_max"),
        (N, law(N, 1, 1, 0), {"nonnegative_floor": 1}, TypeError, "nonnegative_floor"),
        (N, "abc", {}, TypeError, "loss"),
    ],
)
def test_bad_input(n, loss, kwargs, error, match):
    with pytest.raises(error, match=match):
        sc.fit_power_law(n, loss, **kwargs)


def test_power_law_checks_its_sizes():
    np.testing.assert_allclose(sc.power_law([1.0, 4.0], 2.0, 0.5, 1.0), [3.0, 2.0])
    with pytest.raises(ValueError, match="n must be > 0"):
        sc.power_law([0.0], 1.0, 1.0, 0.0)


# -- bootstrap --------------------------------------------------------------------------------


def test_bootstrap_interval_covers_the_true_exponent():
    rng = np.random.default_rng(6)
    covered = 0
    for replicate in range(30):  # nominally 27 covers in 30
        losses = law(N, 3.0, 0.5, 0.2) * (1 + 0.03 * rng.standard_normal((20, N.size)))
        boot = sc.bootstrap_power_law(N, losses, n_boot=200, level=0.9, seed=replicate)
        low, high = boot.interval("alpha")
        covered += low < 0.5 < high
        assert high - low < 0.2
    assert covered >= 21  # percentile intervals from 20 seeds cover a little less than 90 %
    assert boot.samples.shape == (200, 3)
    np.testing.assert_allclose(boot.curve, losses.mean(0))
    center, lo, hi = boot.predict(np.array([100.0, 10_000.0]))
    assert np.all(lo <= center) and np.all(center <= hi)


def test_bootstrap_is_seeded_and_three_d_takes_the_best_size():
    rng = np.random.default_rng(7)
    sizes = law(N, 3.0, 0.5, 0.2)[None, :, None] * np.array([1.0, 1.1, 1.3])
    losses = sizes * (1 + 0.01 * rng.standard_normal((6, N.size, 3)))
    losses[:, :3, 0] = np.nan  # size 0 not trained at the smallest n
    boot = sc.bootstrap_power_law(N, losses, n_boot=50, seed=3)
    again = sc.bootstrap_power_law(N, losses, n_boot=50, seed=3)
    np.testing.assert_array_equal(boot.samples, again.samples)
    mean = losses.mean(0)
    np.testing.assert_allclose(boot.curve, np.where(np.isnan(mean[:, 0]), mean[:, 1], mean.min(1)))


@pytest.mark.parametrize(
    ("losses", "kwargs", "match"),
    [
        (np.ones((1, N.size)), {}, "at least 2 seeds"),
        (np.ones((3, N.size - 1)), {}, "one column per size"),
        (np.ones(N.size), {}, "2-D or 3-D"),
        (np.ones((3, N.size)), {"level": 1.0}, "level"),
        (-np.ones((3, N.size)), {}, "> 0"),
        (np.full((3, N.size, 2), np.nan), {}, "without any trained model"),
    ],
)
def test_bootstrap_bad_input(losses, kwargs, match):
    with pytest.raises(ValueError, match=match):
        sc.bootstrap_power_law(N, losses, **kwargs)


def test_interval_names():
    losses = law(N, 1.0, 1.0, 0.1)[None] * np.array([[1.0], [1.01], [0.99]])
    boot = sc.bootstrap_power_law(N, losses, n_boot=20)
    with pytest.raises(ValueError, match="name"):
        boot.interval("beta")


# -- the truncated least-squares learner ------------------------------------------------------


def test_tail_is_the_sum_of_the_remaining_powers():
    direct = [
        sum(j**-3.0 for j in range(k + 1, 200_000)) + 0.5 / 199_999.5**2 for k in (0, 1, 5, 40)
    ]
    np.testing.assert_allclose(sc.power_law_tail([0, 1, 5, 40], 3.0), direct, rtol=1e-8)
    assert math.isclose(sc.power_law_tail(0, 2.0), math.pi**2 / 6)


def test_risk_curves_agree_with_lstsq_and_a_large_test_set():
    task = sc.GaussianModes(beta=2.5, noise=0.3)
    risks = sc.ols_risk_curves(task, [30, 80], 12, [5])
    F, y = task.sample(80, 12, 5)
    a, tails = task.coefficients(12), task.tails(12)
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((200_000, 12))
    y_test = Z @ a + math.sqrt(tails[-1] + 0.09) * rng.standard_normal(200_000)
    for i, n in enumerate([30, 80]):
        for k in range(1, n // 2 + 1 if n // 2 < 12 else 13):
            a_hat = np.linalg.lstsq(F[:n, :k], y[:n], rcond=None)[0]
            exact = 0.09 + ((a_hat - a[:k]) ** 2).sum() + tails[k]
            assert math.isclose(risks[0, i, k - 1], exact, rel_tol=1e-9)
            if k in (1, 6, 12):  # the exact conditional risk is the test error
                mc = np.mean((y_test - Z[:, :k] @ a_hat) ** 2)
                assert math.isclose(mc, exact, rel_tol=0.01)
    assert np.isnan(risks[0, 0, 15 - 1 :]).all()  # k > n / 2 is not fitted


def test_expected_risk_closed_form_against_many_seeds():
    task = sc.GaussianModes(beta=3.0, noise=0.5)
    ns, K = [24, 64, 200], 10
    risks = sc.ols_risk_curves(task, ns, K, range(400))
    for i, n in enumerate(ns):
        k = np.arange(1, min(K, n // 4) + 1)
        exact = sc.truncated_ols_risk(k, n, beta=3.0, noise=0.5)
        mean = risks[:, i, k - 1].mean(0)
        se = risks[:, i, k - 1].std(0, ddof=1) / math.sqrt(400)
        assert np.all(np.abs(mean - exact) < 4.5 * se)


def test_basis_tasks_are_orthonormal_with_exact_coefficients():
    nodes, weights = np.polynomial.legendre.leggauss(400)
    t, w = (nodes + 1) / 2, weights / 2
    for basis in sc.BASES:
        task = sc.BasisTask(basis)
        F = task.features(t, 9)
        np.testing.assert_allclose((F * w[:, None]).T @ F, np.eye(9), atol=1e-10)
        direct = [
            quad(lambda s, j=j, task=task: math.exp(s) * task.features([s], 9)[0, j], 0, 1)[0]
            for j in range(9)
        ]
        np.testing.assert_allclose(task.coefficients(9), direct, atol=1e-10)
        tails = task.tails(9)
        assert tails[0] == pytest.approx((math.e**2 - 1) / 2) and np.all(np.diff(tails) <= 0)


def test_fourier_and_cosine_powers_fall_at_their_rates():
    fourier = sc.BasisTask("fourier").tails(401)
    cosine = sc.BasisTask("cosine").tails(401)
    # T_k ~ k^-1 for the Fourier basis and ~ k^-3 for the cosine basis
    assert math.isclose(np.log(fourier[100] / fourier[400]) / np.log(4), 1.0, abs_tol=0.02)
    assert math.isclose(np.log(cosine[100] / cosine[400]) / np.log(4), 3.0, abs_tol=0.05)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: sc.truncated_ols_risk(5, 6, beta=2.0, noise=0.1), ValueError, "exceed k"),
        (lambda: sc.truncated_ols_risk(0.5, 60, beta=2.0, noise=0.1), ValueError, "whole numbers"),
        (lambda: sc.power_law_tail(3, 1.0), ValueError, "beta"),
        (lambda: sc.GaussianModes(beta=0.5), ValueError, "beta"),
        (lambda: sc.BasisTask("wavelet"), ValueError, "basis"),
        (lambda: sc.ols_risk_curves("task", [10], 3, [0]), TypeError, "task"),
        (lambda: sc.ols_risk_curves(sc.GaussianModes(), [], 3, [0]), ValueError, "ns"),
        (lambda: sc.ols_risk_curves(sc.GaussianModes(), [2], 3, [0]), ValueError, "ns"),
        (lambda: sc.ols_risk_curves(sc.GaussianModes(), [10], 3, []), ValueError, "seeds"),
        (lambda: sc.training_flops(0, 10), ValueError, "> 0"),
    ],
)
def test_learner_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


# -- compute ----------------------------------------------------------------------------------


def test_compute_frontier_is_the_brute_force_minimum():
    def loss(k, n):
        n = np.asarray(n, float)
        return np.where(
            n > k + 1, sc.truncated_ols_risk(k, np.maximum(n, k + 1.5), beta=3.0, noise=0.5), np.inf
        )

    compute = np.geomspace(1e3, 1e7, 9)
    best, size = sc.compute_frontier(range(1, 60), compute, loss)
    for c, b, s in zip(compute, best, size, strict=True):
        table = [float(loss(k, c / (6 * k))) for k in range(1, 60)]
        assert b == min(table) and s == 1 + int(np.argmin(table))
    assert sc.training_flops(10, 100) == 6000.0
    with pytest.raises(TypeError, match="callable"):
        sc.compute_frontier([1], compute, None)
