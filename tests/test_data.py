import numpy as np
import pytest

from dl_course import data


@pytest.mark.parametrize(
    "n, d, margin, seed", [(2, 1, 0.5, 0), (50, 2, 0.1, 1), (300, 10, 0.01, 7)]
)
def test_make_separable_has_the_promised_margin(n, d, margin, seed):
    X, y, w_star = data.make_separable(n, d, margin, seed=seed)
    assert X.shape == (n, d) and y.shape == (n,) and w_star.shape == (d,)
    assert X.dtype == np.float64
    assert set(np.unique(y)) == {-1, 1}
    assert np.linalg.norm(w_star) == pytest.approx(1.0)
    assert np.min(y * (X @ w_star)) >= margin


def test_make_separable_is_seeded():
    a = data.make_separable(20, 3, 0.2, seed=5)
    b = data.make_separable(20, 3, 0.2, seed=5)
    c = data.make_separable(20, 3, 0.2, seed=6)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"n": 1, "d": 2, "margin": 0.1}, ValueError, "n must be >= 2"),
        ({"n": 10.0, "d": 2, "margin": 0.1}, TypeError, "n must be an integer"),
        ({"n": 10, "d": 0, "margin": 0.1}, ValueError, "d must be >= 1"),
        ({"n": 10, "d": 2, "margin": 0.0}, ValueError, "margin must be > 0"),
        ({"n": 10, "d": 2, "margin": float("nan")}, ValueError, "margin must be finite"),
        ({"n": 10, "d": 2, "margin": 0.1, "seed": -1}, ValueError, "seed must be >= 0"),
    ],
)
def test_make_separable_rejects_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        data.make_separable(**kwargs)


def test_xor_truth_table():
    X, y = data.xor()
    assert X.shape == (4, 2)
    np.testing.assert_array_equal(y, np.logical_xor(X[:, 0], X[:, 1]).astype(int))


def test_load_digits_split():
    X_train, X_test, y_train, y_test = data.load_digits()
    assert X_train.shape[1] == X_test.shape[1] == 64
    assert len(X_train) + len(X_test) == 1797
    assert len(X_test) == pytest.approx(0.25 * 1797, abs=1)
    assert X_train.min() >= 0.0 and X_train.max() == 1.0
    assert set(np.unique(y_train)) == set(range(10))
    # Stratified: every class keeps about a quarter of its examples in the test set.
    counts = np.bincount(y_test, minlength=10) / (
        np.bincount(y_train, minlength=10) + np.bincount(y_test, minlength=10)
    )
    assert np.all(np.abs(counts - 0.25) < 0.02)
    again = data.load_digits()
    np.testing.assert_array_equal(X_train, again[0])


@pytest.mark.parametrize("test_size", [0.0, 1.0, -0.5, 2])
def test_load_digits_rejects_bad_test_size(test_size):
    with pytest.raises(ValueError, match="test_size"):
        data.load_digits(test_size=test_size)
