"""dl_course.theory.bounds against closed forms, brute force, SciPy, torch and simulation."""

import itertools
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy.optimize import brentq
from scipy.special import logsumexp
from scipy.stats import binom, entropy

from dl_course.mlp import build_mlp
from dl_course.theory import bounds

# -- the binary kl and its inverse ------------------------------------------------------------


@pytest.mark.parametrize(("q", "p"), [(0.1, 0.3), (0.5, 0.5), (0.9, 0.2), (0.0, 0.4), (1.0, 0.7)])
def test_kl_bernoulli_is_the_relative_entropy_of_two_coins(q, p):
    assert bounds.kl_bernoulli(q, p) == pytest.approx(entropy([q, 1 - q], [p, 1 - p]), abs=1e-14)


def test_kl_bernoulli_edges():
    assert bounds.kl_bernoulli(0.3, 0.0) == math.inf and bounds.kl_bernoulli(0.3, 1.0) == math.inf
    assert bounds.kl_bernoulli(0.0, 0.0) == 0.0 and bounds.kl_bernoulli(1.0, 1.0) == 0.0
    assert bounds.kl_bernoulli([0.1, 0.2], 0.2).shape == (2,)


@pytest.mark.parametrize("q", [0.0, 0.01, 0.1, 0.37, 0.8])
@pytest.mark.parametrize("c", [1e-4, 0.01, 0.1, 0.5])
def test_kl_inverse_agrees_with_a_brute_force_solve_and_brentq(q, c):
    inverse = bounds.kl_inverse(q, c)
    grid = np.linspace(q, 1 - 1e-12, 2_000_001)
    brute = grid[bounds.kl_bernoulli(q, grid) <= c].max()
    assert brute <= inverse <= brute + 1e-6
    if bounds.kl_bernoulli(q, 1 - 1e-15) > c:
        root = brentq(lambda p: bounds.kl_bernoulli(q, p) - c, q + 1e-16, 1 - 1e-15, xtol=1e-15)
        assert inverse == pytest.approx(root, abs=1e-12)
        assert bounds.kl_bernoulli(q, inverse) == pytest.approx(c, rel=1e-9)


def test_kl_inverse_properties():
    assert bounds.kl_inverse(0.2, 0.0) == pytest.approx(0.2, abs=1e-12)  # no room: p = q
    assert bounds.kl_inverse(1.0, 0.3) == 1.0
    q, c = np.meshgrid(np.linspace(0, 0.9, 10), np.geomspace(1e-4, 1.0, 7))
    inverse = bounds.kl_inverse(q, c)
    assert inverse.shape == q.shape
    assert np.all(inverse >= q) and np.all(inverse <= np.minimum(1, q + np.sqrt(c / 2)) + 1e-12)
    assert np.all(np.diff(inverse, axis=0) >= 0) and np.all(np.diff(inverse, axis=1) >= 0)


def test_kl_inverse_docstring_example():
    assert round(bounds.kl_inverse(0.1, 0.05), 4) == 0.2201


# -- uniform convergence -------------------------------------------------------------------------


def test_occam_bound_formula_and_log_size():
    assert bounds.float_class_log_size(10, bits=32) == pytest.approx(320 * math.log(2))
    gap = math.sqrt((5.0 + math.log(1 / 0.05)) / (2 * 100))
    assert bounds.occam_bound(0.1, 100, 5.0, 0.05) == pytest.approx(0.1 + gap)
    assert bounds.occam_bound(0.0, 10, 1e4) > 1  # not clipped


def test_occam_bound_holds_in_simulation():
    # 20 classifiers with known error rates; how often does the bound fail for any of them?
    rng = np.random.default_rng(0)
    errors, n, delta, trials = np.linspace(0.05, 0.5, 20), 60, 0.2, 4000
    losses = rng.random((trials, n, errors.size)) < errors
    bound = bounds.occam_bound(losses.mean(axis=1), n, math.log(errors.size), delta)
    failures = np.mean(np.any(errors > bound, axis=1))
    assert failures <= delta


@pytest.mark.parametrize(("m", "d"), [(10, 3), (40, 7), (25, 25), (8, 20), (300, 1)])
def test_log_growth_function_is_sauers_sum(m, d):
    exact = math.log(sum(math.comb(m, i) for i in range(min(m, d) + 1)))
    assert bounds.log_growth_function(m, d) == pytest.approx(exact, rel=1e-12)
    if d >= m:
        assert bounds.log_growth_function(m, d) == pytest.approx(m * math.log(2), rel=1e-12)
    else:
        assert bounds.log_growth_function(m, d) <= d * math.log(math.e * m / d)


def test_log_growth_function_broadcasts():
    values = bounds.log_growth_function(np.array([10, 20]), np.array([[1], [3]]))
    assert values.shape == (2, 2)
    assert values[0, 0] == pytest.approx(math.log(11))


def test_vc_bound_formula():
    n, d, delta = 500, 12, 0.05
    log_growth = math.log(sum(math.comb(2 * n, i) for i in range(d + 1)))
    expected = 0.03 + math.sqrt(8 * (log_growth + math.log(4 / delta)) / n)
    assert bounds.vc_bound(0.03, n, d, delta) == pytest.approx(expected, rel=1e-12)
    assert np.all(np.diff(bounds.vc_bound(0.0, n, np.arange(1, 50), delta)) > 0)


# -- Rademacher complexity ---------------------------------------------------------------------


def test_rademacher_linear_against_exact_enumeration():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(10, 3))
    signs = np.array(list(itertools.product([-1.0, 1.0], repeat=10)))  # all 1024 sign vectors
    exact = 2.0 * np.mean(np.linalg.norm(signs @ X, axis=1)) / 10
    result = bounds.rademacher_linear(X, 2.0, draws=20_000, seed=3)
    assert abs(result.estimate - exact) < 4 * result.standard_error
    assert result.draws == 20_000 and result.standard_error < 0.01 * exact


def test_rademacher_supremum_is_attained_on_the_ball():
    # for one sign vector, no w in the ball beats B ||v|| / n, and w = B v / ||v|| attains it
    rng = np.random.default_rng(2)
    X, sigma, B = rng.normal(size=(30, 5)), rng.choice([-1.0, 1.0], size=30), 1.5
    v = sigma @ X
    w = rng.normal(size=(10_000, 5))
    w = B * w / np.linalg.norm(w, axis=1, keepdims=True) * rng.random((10_000, 1))
    assert np.max(w @ v) / 30 <= B * np.linalg.norm(v) / 30
    assert (B * v / np.linalg.norm(v)) @ v / 30 == pytest.approx(B * np.linalg.norm(v) / 30)


def test_rademacher_linear_bounds_and_second_moment():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(200, 8)) * rng.uniform(0.2, 2.0, size=(200, 1))
    jensen, radius = bounds.rademacher_linear_bounds(X, 3.0)
    assert jensen == pytest.approx(3.0 * math.sqrt(np.sum(X**2)) / 200)
    assert radius == pytest.approx(3.0 * np.linalg.norm(X, axis=1).max() / math.sqrt(200))
    result = bounds.rademacher_linear(X, 3.0, draws=5000, seed=0)
    assert result.estimate <= jensen <= radius
    assert result.second_moment == pytest.approx(jensen**2, rel=0.05)  # E sup^2 exactly jensen^2


def test_rademacher_bound_formula():
    expected = 0.1 + 2 * 0.05 + 3 * math.sqrt(math.log(2 / 0.01) / (2 * 400))
    assert bounds.rademacher_bound(0.1, 0.05, 400, 0.01) == pytest.approx(expected)


# -- PAC-Bayes ---------------------------------------------------------------------------------


def test_pac_bayes_kl_bound_is_the_inverse_at_the_right_level():
    n, kl, delta = 1000, 25.0, 0.05
    c = (kl + math.log(2 * math.sqrt(n) / delta)) / n
    assert bounds.pac_bayes_kl_bound(0.08, kl, n, delta) == pytest.approx(
        bounds.kl_inverse(0.08, c)
    )


def test_square_root_form_is_looser_than_the_kl_form():
    q, kl = np.linspace(0, 0.5, 11)[:, None], np.array([0.0, 5.0, 50.0, 500.0])
    for n in (8, 100, 10_000):
        assert np.all(bounds.pac_bayes_sqrt_bound(q, kl, n) >= bounds.pac_bayes_kl_bound(q, kl, n))


@pytest.mark.parametrize("n", [8, 20, 100, 1000])
def test_maurers_constant_two_sqrt_n(n):
    # E exp(n kl(mean || p)) over Binomial(n, p), exactly: at most 2 sqrt(n) for n >= 8
    k = np.arange(n + 1)
    for p in (0.01, 0.1, 0.3, 0.5, 0.77):
        log_value = logsumexp(binom.logpmf(k, n, p) + n * bounds.kl_bernoulli(k / n, p))
        assert math.sqrt(n) <= math.exp(log_value) <= 2 * math.sqrt(n)


def test_kl_bound_covers_the_truth_in_simulation():
    # a prior and posterior on one classifier (KL = 0): the bound is the kl-Chernoff bound
    rng = np.random.default_rng(5)
    n, delta, p = 50, 0.1, 0.3
    observed = rng.binomial(n, p, size=20_000) / n
    failures = np.mean(bounds.pac_bayes_kl_bound(observed, 0.0, n, delta) < p)
    assert failures <= delta / 2  # the bound is conservative


def test_sample_convergence_bound_covers_the_mean_of_independent_variables():
    rng = np.random.default_rng(6)
    means = rng.uniform(0, 0.4, size=40)  # 40 different Bernoulli means, 5 draws of each
    draws = rng.random((20_000, 5, 40)) < means
    upper = bounds.sample_convergence_bound(draws.mean(axis=(1, 2)), 200, 0.05)
    assert np.mean(upper < means.mean()) <= 0.05
    assert bounds.sample_convergence_bound(0.1, 10**6, 0.01) == pytest.approx(
        bounds.kl_inverse(0.1, math.log(100) / 10**6)
    )


def _random_layers(seed, shapes=((6, 4), (6,), (1, 6), (1,))):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=s) for s in shapes], [rng.uniform(0.1, 0.5, size=s) for s in shapes]


def test_gaussian_kl_against_torch():
    mq, sq = _random_layers(0)
    mp, _ = _random_layers(1)
    sp = [0.3, 0.3, 0.7, 0.7]  # one prior std per layer
    flat = [
        np.concatenate([np.broadcast_to(v, m.shape).ravel() for v, m in zip(a, mq, strict=True)])
        for a in (mq, sq, mp, sp)
    ]
    q = torch.distributions.Normal(torch.tensor(flat[0]), torch.tensor(flat[1]))
    p = torch.distributions.Normal(torch.tensor(flat[2]), torch.tensor(flat[3]))
    expected = torch.distributions.kl_divergence(q, p).sum().item()
    assert bounds.gaussian_kl(mq, sq, mp, sp) == pytest.approx(expected, rel=1e-12)
    assert bounds.gaussian_kl(mq, sq, mq, sq) == pytest.approx(0.0, abs=1e-12)
    assert bounds.gaussian_kl(flat[0], flat[1], flat[2], flat[3]) == pytest.approx(expected)


def test_gaussian_kl_grid_matches_the_direct_formula():
    mq, sq = _random_layers(2)
    mp, _ = _random_layers(3)
    sp, t, s = [0.2, 0.2, 0.5, 0.5], np.array([0.5, 1.0, 3.0]), np.array([0.25, 1.0, 4.0, 16.0])
    grid = bounds.gaussian_kl_grid(mq, sq, mp, sp, t, s)
    for i, j in itertools.product(range(3), range(4)):
        direct = bounds.gaussian_kl(mq, [t[i] * v for v in sq], mp, [s[j] * v for v in sp])
        assert grid[i, j] == pytest.approx(direct, rel=1e-12)


# -- stochastic networks ----------------------------------------------------------------------


def _digits_like(n=300, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, 4))
    return X, (X[:, 0] + X[:, 1] > 1).astype(int)


def test_stochastic_error_at_scale_zero_is_the_deterministic_error():
    X, y = _digits_like()
    means, stds = _random_layers(4)
    hidden = np.maximum(X @ means[0].T + means[1], 0)
    score = hidden @ means[2][0] + means[3][0]
    expected = np.mean((score >= 0) != (y == 1))
    assert bounds.stochastic_error(means, stds, X, y, draws=3, scales=0.0) == pytest.approx(
        expected
    )


def test_stochastic_error_matches_whole_networks_drawn_from_q():
    X, y = _digits_like(400, seed=1)
    means, stds = _random_layers(5)
    stds = [0.6 * s for s in stds]
    rng = np.random.default_rng(0)
    W1, b1, W2, b2 = (
        m + s * rng.standard_normal((3000, *m.shape)) for m, s in zip(means, stds, strict=True)
    )
    hidden = np.maximum(np.einsum("ni,kji->knj", X, W1) + b1[:, None], 0)
    score = np.einsum("knj,kj->kn", hidden, W2[:, 0]) + b2
    per_network = np.mean((score >= 0) != (y == 1), axis=1)
    ours = bounds.stochastic_error(means, stds, X, y, draws=200, seed=1)
    se = math.sqrt(per_network.var() / 3000 + ours * (1 - ours) / (200 * 400))
    assert abs(per_network.mean() - ours) < 4 * se


def test_stochastic_error_for_a_deeper_network_and_many_scales():
    X, y = _digits_like(200, seed=2)
    means, stds = _random_layers(6, shapes=((5, 4), (5,), (3, 5), (3,), (1, 3), (1,)))
    errors = bounds.stochastic_error(means, stds, X, y, draws=20, scales=[0.0, 1.0, 10.0])
    assert errors.shape == (3,) and np.all((errors >= 0) & (errors <= 1))
    assert abs(errors[2] - 0.5) < 0.1  # huge noise: a coin flip


def test_train_posterior_lowers_the_bound_objective():
    X, y = _digits_like(256, seed=3)
    inits = [
        [p.detach().double().numpy() for p in build_mlp([4, 6, 1], seed=s).parameters()]
        for s in (0, 1)
    ]
    prior_means = [np.stack([inits[0][k], inits[1][k]]) for k in range(4)]
    subsets = [np.arange(256), np.arange(128)]
    result = bounds.train_posterior(
        X, y, prior_means, [1.0, 1.0, 0.5, 0.5], subsets, steps=150, seed=0
    )
    assert result.objective.shape == (150, 2)
    assert np.all(result.objective[-20:].mean(axis=0) < result.objective[:20].mean(axis=0))
    means, stds = result.member(1)
    assert [m.shape for m in means] == [(6, 4), (6,), (1, 6), (1,)]
    assert all(np.all(s > 0) for s in stds)
    again = bounds.train_posterior(
        X, y, prior_means, [1.0, 1.0, 0.5, 0.5], subsets, steps=150, seed=0
    )
    assert all(
        np.array_equal(a, b) for a, b in zip(result.means, again.means, strict=True)
    )  # seeded


# -- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: bounds.kl_bernoulli(1.2, 0.5), ValueError, "q must lie in"),
        (lambda: bounds.kl_inverse(0.1, -0.1), ValueError, "c must be >= 0"),
        (lambda: bounds.kl_inverse("a", 0.1), TypeError, "q must be an array"),
        (lambda: bounds.occam_bound(0.1, 0, 3.0), ValueError, "n must be >= 1"),
        (lambda: bounds.occam_bound(0.1, 10, 3.0, delta=1.0), ValueError, "delta must be <"),
        (lambda: bounds.float_class_log_size(0), ValueError, "n_params must be >= 1"),
        (lambda: bounds.vc_bound(0.1, 100, 0), ValueError, "vc_dim must be >= 1"),
        (lambda: bounds.pac_bayes_kl_bound(0.1, 3.0, 5), ValueError, "n must be >= 8"),
        (lambda: bounds.pac_bayes_sqrt_bound(0.1, -1.0, 50), ValueError, "kl must be >= 0"),
        (lambda: bounds.rademacher_linear(np.ones(5)), ValueError, "X must be 2-D"),
        (
            lambda: bounds.rademacher_linear(np.ones((5, 2)), bound=0.0),
            ValueError,
            "bound must be >",
        ),
        (
            lambda: bounds.rademacher_linear(np.ones((5, 2)), draws=1),
            ValueError,
            "draws must be >= 2",
        ),
        (
            lambda: bounds.gaussian_kl([np.ones(2)], [np.ones(2)], [np.ones(2)], 1.0),
            ValueError,
            "std_p must hold one entry",
        ),
        (
            lambda: bounds.gaussian_kl(np.ones(2), -np.ones(2), np.ones(2), np.ones(2)),
            ValueError,
            "standard deviations",
        ),
        (
            lambda: bounds.gaussian_kl_grid(
                np.ones(2), np.ones(2), np.ones(2), np.ones(2), [0.0], [1.0]
            ),
            ValueError,
            "must be > 0",
        ),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_bad_networks_are_refused():
    X, y = _digits_like(20)
    means, stds = _random_layers(0)
    with pytest.raises(ValueError, match="one output"):
        bounds.stochastic_error([np.ones((2, 4)), np.ones(2)], [0.1, 0.1], X, y)
    with pytest.raises(ValueError, match="in = 4"):
        bounds.stochastic_error([np.ones((1, 3)), np.ones(1)], [0.1, 0.1], X, y)
    with pytest.raises(ValueError, match="same parameters"):
        bounds.stochastic_error(means[:3], stds[:3], X, y)
    with pytest.raises(ValueError, match=r"take values in \[0, 1\]"):
        bounds.stochastic_error(means, stds, X, 2 * y - 1)
    with pytest.raises(ValueError, match="stds\\[0\\] must be >= 0"):
        bounds.stochastic_error(means, [-s for s in stds], X, y)
    prior = [np.stack([m]) for m in means]
    with pytest.raises(ValueError, match="one index array per member"):
        bounds.train_posterior(X, y, prior, [1.0] * 4, [np.arange(5), np.arange(3)])
    with pytest.raises(ValueError, match="indices outside"):
        bounds.train_posterior(X, y, prior, [1.0] * 4, [np.arange(25)])
    with pytest.raises(ValueError, match="prior_stds\\[1\\] must be > 0"):
        bounds.train_posterior(X, y, prior, [1.0, 0.0, 1.0, 1.0], [np.arange(5)])


def test_import_is_cheap():
    code = (
        "import sys, dl_course.theory.bounds; "
        "print([m for m in ('torch', 'matplotlib', 'sklearn', 'scipy') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
