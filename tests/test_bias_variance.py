"""dl_course.bias_variance: fits against NumPy and least squares, the decomposition to Monte-Carlo precision."""

import numpy as np
import pytest
from numpy.polynomial import legendre
from numpy.polynomial import polynomial as monomial

from dl_course import bias_variance as bv


def target(x):
    return np.sin(4 * x + 1)


X_TRAIN = np.linspace(-1.0, 1.0, 15)


def test_design_is_numpys_legendre_vandermonde():
    x = np.random.default_rng(0).uniform(-1, 1, size=(3, 7))
    np.testing.assert_allclose(bv.polynomial_design(x, 5), legendre.legvander(x, 5))
    assert bv.polynomial_design(x, 0).shape == (3, 7, 1)


@pytest.mark.parametrize("degree", [0, 1, 4, 9])
def test_fits_are_the_least_squares_polynomials(degree):
    rng = np.random.default_rng(degree)
    Y = rng.normal(size=(6, 15))
    coef = bv.fit_polynomials(X_TRAIN, Y, degree)
    x_eval = np.linspace(-1, 1, 31)
    ours = coef @ legendre.legvander(x_eval, degree).T
    for row, y in zip(ours, Y, strict=True):  # the same polynomial in the monomial basis
        reference = monomial.polyval(x_eval, monomial.polyfit(X_TRAIN, y, degree))
        np.testing.assert_allclose(row, reference, atol=1e-8)


def test_simulation_keeps_its_training_sets():
    r = bv.simulate(target, X_TRAIN, 4, noise=0.3, n_sets=3, seed=5)
    assert r.train_labels.shape == (3, 15) and np.array_equal(r.train_inputs, X_TRAIN)
    for row, y in zip(r.predictions, r.train_labels, strict=True):
        reference = monomial.polyval(r.x_test, monomial.polyfit(X_TRAIN, y, 4))
        np.testing.assert_allclose(row, reference, atol=1e-9)
    redrawn = bv.simulate(target, X_TRAIN, 4, noise=0.3, n_sets=3, random_inputs=True, seed=5)
    assert redrawn.train_inputs.shape == (3, 15)


def test_one_design_per_set_agrees_with_a_shared_design():
    rng = np.random.default_rng(1)
    Y = rng.normal(size=(4, 15))
    shared = bv.fit_polynomials(X_TRAIN, Y, 6, ridge=0.1)
    per_set = bv.fit_polynomials(np.tile(X_TRAIN, (4, 1)), Y, 6, ridge=0.1)
    np.testing.assert_allclose(shared, per_set, atol=1e-12)
    np.testing.assert_allclose(
        bv.fit_polynomials(X_TRAIN, Y, 6),
        bv.fit_polynomials(np.tile(X_TRAIN, (4, 1)), Y, 6),
        atol=1e-10,
    )


def test_ridge_leaves_the_constant_free_and_matches_augmented_least_squares():
    rng = np.random.default_rng(2)
    y = rng.normal(size=15)
    lam, degree = 0.7, 5
    Phi = legendre.legvander(X_TRAIN, degree)
    rows = np.sqrt(lam) * np.eye(degree + 1)[1:]  # the penalty as extra observations of 0
    reference = np.linalg.lstsq(np.vstack([Phi, rows]), np.r_[y, np.zeros(degree)], rcond=None)[0]
    np.testing.assert_allclose(
        bv.fit_polynomials(X_TRAIN, y[None], degree, ridge=lam)[0], reference
    )
    shifted = bv.fit_polynomials(X_TRAIN, (y + 10.0)[None], degree, ridge=lam)[0]
    np.testing.assert_allclose(shifted - reference, np.eye(degree + 1)[0] * 10.0, atol=1e-10)


@pytest.mark.parametrize("degree", [0, 3, 8, 12])
def test_decomposition_holds_to_monte_carlo_precision(degree):
    r = bv.simulate(target, X_TRAIN, degree, noise=0.3, n_sets=3000, seed=degree)
    assert abs(r.test_error - r.decomposition) < 4 * r.standard_error
    assert r.noise == pytest.approx(0.09)
    assert r.predictions.shape == (3000, 201)


@pytest.mark.parametrize("degree", [2, 6, 11])
def test_fixed_design_simulation_agrees_with_the_closed_form(degree):
    n_sets = 4000
    r = bv.simulate(target, X_TRAIN, degree, noise=0.3, n_sets=n_sets, seed=10 + degree)
    bias_sq, variance = bv.exact_fixed_design(target, X_TRAIN, degree, noise=0.3)
    assert abs(r.variance / variance - 1) < 4 * np.sqrt(2 / (n_sets - 1))
    # the mean prediction is within a few standard errors of M f at every test input
    spread = np.sqrt(r.predictions.var(axis=0) / n_sets)
    exact_mean = (
        legendre.legvander(r.x_test, degree)
        @ bv.fit_polynomials(X_TRAIN, target(X_TRAIN)[None], degree)[0]
    )
    assert np.all(np.abs(r.mean_prediction - exact_mean) < 5 * spread + 1e-12)
    assert bias_sq == pytest.approx(np.mean((exact_mean - r.truth) ** 2))


def test_random_inputs_and_ridge_keep_the_identity():
    r = bv.simulate(target, X_TRAIN, 4, noise=0.5, n_sets=3000, random_inputs=True, seed=3)
    assert abs(r.test_error - r.decomposition) < 4 * r.standard_error
    runs = [
        bv.simulate(target, X_TRAIN, 12, noise=0.3, n_sets=3000, ridge=lam, seed=4)
        for lam in (0.0, 0.01, 0.1, 1.0, 10.0)
    ]
    assert np.all(np.diff([r.variance for r in runs]) < 0)  # the penalty tames the variance
    # and costs bias (at lambda = 0 the simulated bias^2 is inflated by variance / S)
    assert np.all(np.diff([r.bias_sq for r in runs[1:]]) > 0)
    assert all(abs(r.test_error - r.decomposition) < 4 * r.standard_error for r in runs)


def test_without_noise_the_test_error_is_bias_plus_variance_exactly():
    r = bv.simulate(target, X_TRAIN, 3, noise=0.0, n_sets=5, random_inputs=True)
    assert r.noise == 0.0 and r.standard_error == 0.0
    assert r.test_error == pytest.approx(r.bias_sq + r.variance, rel=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"x_train": np.linspace(0, 2, 5)}, ValueError, "x_train must lie in"),
        ({"x_test": np.array([1.5])}, ValueError, "x_test must lie in"),
        ({"noise": -0.1}, ValueError, "noise must be >= 0"),
        ({"ridge": -1.0}, ValueError, "ridge must be >= 0"),
        ({"degree": -1}, ValueError, "degree must be >= 0"),
        ({"degree": 2.5}, TypeError, "degree must be an integer"),
        ({"n_sets": 1}, ValueError, "n_sets must be >= 2"),
        ({"target": 3.0}, TypeError, "target must be a callable"),
        ({"target": lambda x: np.ones(3)}, ValueError, "target must map"),
    ],
)
def test_simulate_rejects_bad_input(kwargs, error, match):
    args = {"target": target, "x_train": X_TRAIN, "degree": 2, "noise": 0.3, "n_sets": 10}
    with pytest.raises(error, match=match):
        bv.simulate(**(args | kwargs))


def test_fit_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="x_train must have shape"):
        bv.fit_polynomials(X_TRAIN[:5], np.zeros((3, 15)), 2)
    with pytest.raises(ValueError, match="Y must be 2-D"):
        bv.fit_polynomials(X_TRAIN, np.zeros(15), 2)
