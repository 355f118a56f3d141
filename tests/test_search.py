import numpy as np
import pytest

from dl_course.search import (
    distinct_values,
    grid_points,
    hit_probability,
    random_points,
    simulate_hit_rate,
)


def test_grid_points_are_cell_centres_on_log_axes():
    points = grid_points([(1e-4, 1.0), (0.0, 1.0)], 2, log=[True, False])
    expected = [[1e-3, 0.25], [1e-3, 0.75], [1e-1, 0.25], [1e-1, 0.75]]
    np.testing.assert_allclose(points, expected)
    assert distinct_values(points, 0) == 2 and distinct_values(points, 1) == 2


def test_random_points_are_seeded_and_log_uniform():
    points = random_points([(1e-4, 1.0), (1e-6, 1e-2)], 20_000, seed=3)
    np.testing.assert_array_equal(
        points, random_points([(1e-4, 1.0), (1e-6, 1e-2)], 20_000, seed=3)
    )
    assert points.min(axis=0).tolist() > [1e-4, 1e-6] and points.max(axis=0).tolist() < [1, 1e-2]
    logs = np.log10(points)  # uniform in the exponent: mean -2 and -4, variance (4^2) / 12
    np.testing.assert_allclose(logs.mean(axis=0), [-2, -4], atol=0.03)
    np.testing.assert_allclose(logs.var(axis=0), [16 / 12, 16 / 12], rtol=0.03)
    assert distinct_values(points[:9]) == 9


def test_closed_forms():
    assert hit_probability("random", 16, 0.05) == pytest.approx(1 - 0.95**16)
    assert hit_probability("grid", 16, 0.05) == pytest.approx(4 * 0.05)
    assert hit_probability("grid", 16, 0.3) == 1.0  # four values 1/4 apart cover the circle
    assert hit_probability("grid", 27, 0.1, dims=3) == pytest.approx(0.3)


@pytest.mark.parametrize("strategy", ["grid", "random"])
@pytest.mark.parametrize("n_trials, delta, dims", [(16, 0.05, 2), (9, 0.1, 2), (27, 0.02, 3)])
def test_simulation_matches_the_closed_form(strategy, n_trials, delta, dims):
    searches = 40_000
    p = hit_probability(strategy, n_trials, delta, dims)
    rate = simulate_hit_rate(strategy, n_trials, delta, dims, searches=searches, seed=1)
    assert abs(rate - p) <= 4 * np.sqrt(p * (1 - p) / searches) + 1e-12


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: grid_points([(1.0, 0.5)], 3), ValueError, "low < high"),
        (lambda: grid_points([(0.0, 1.0)], 3), ValueError, "log-scaled axes need bounds > 0"),
        (lambda: grid_points([1.0, 2.0], 3), ValueError, "pairs"),
        (lambda: grid_points([(1.0, 2.0)], 0), ValueError, "per_axis must be >= 1"),
        (lambda: random_points([(1.0, 2.0)], 0), ValueError, "n must be >= 1"),
        (lambda: hit_probability("bayes", 4, 0.1), ValueError, "strategy must be one of"),
        (lambda: hit_probability("grid", 10, 0.1), ValueError, "n_trials = k \\*\\* dims"),
        (lambda: hit_probability("grid", 9, 1.5), ValueError, "delta must be <= 1.0"),
        (lambda: simulate_hit_rate("random", 9, 0.1, searches=0), ValueError, "searches"),
        (lambda: distinct_values([1.0, 2.0]), ValueError, "points must be 2-D"),
    ],
)
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()
