import numpy as np
import pytest

from dl_course import data
from dl_course.perceptron import margin_sweep, novikoff_bound, predict, train_perceptron


def test_worked_example_of_chapter_one():
    result = train_perceptron(np.array([[2.0, 1.0], [-1.0, 2.0]]), np.array([1, -1]))
    np.testing.assert_array_equal(result.w, [3.0, -1.0])
    assert result.b == 0.0
    assert result.n_updates == 2 and result.converged
    np.testing.assert_array_equal(result.history, [[0, 0, 0], [2, 1, 1], [3, -1, 0]])
    np.testing.assert_array_equal(result.mistake_indices, [0, 1])
    assert result.n_epochs == 2


def reference_perceptron(X, y, lr, max_epochs, bias):
    """The textbook double loop, one example at a time."""
    w, b, updates = np.zeros(X.shape[1]), 0.0, 0
    for _ in range(max_epochs):
        clean = True
        for x_i, y_i in zip(X, y, strict=True):
            if y_i * (w @ x_i + b) <= 0:
                w, b, updates, clean = (
                    w + lr * y_i * x_i,
                    b + (lr * y_i if bias else 0.0),
                    updates + 1,
                    False,
                )
        if clean:
            return w, b, updates, True
    return w, b, updates, False


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("bias", [True, False])
def test_matches_the_plain_loop(seed, bias):
    X, y, _ = data.make_separable(60, 3, 0.05, seed=seed)
    X = X + (0.0 if not bias else 0.3)  # shift so that a bias is useful
    w, b, updates, converged = reference_perceptron(X, y, 0.5, 50, bias)
    result = train_perceptron(X, y, lr=0.5, max_epochs=50, bias=bias)
    np.testing.assert_allclose(result.w, w, rtol=1e-12, atol=1e-12)
    assert result.b == pytest.approx(b)
    assert (result.n_updates, result.converged) == (updates, converged)


@pytest.mark.parametrize("seed", range(20))
def test_updates_never_exceed_novikoff_bound(seed):
    rng = np.random.default_rng(seed)
    margin = float(rng.uniform(0.02, 0.5))
    X, y, w_star = data.make_separable(
        int(rng.integers(10, 200)), int(rng.integers(1, 8)), margin, seed=seed
    )
    for bias in (True, False):
        result = train_perceptron(X, y, bias=bias, max_epochs=100_000)
        assert result.converged
        assert result.n_updates <= novikoff_bound(X, y, w_star, bias=bias)
        assert np.all(predict(X, result.w, result.b) == y)


def test_learning_rate_only_scales_the_weights():
    X, y, _ = data.make_separable(80, 2, 0.05, seed=3)
    base = train_perceptron(X, y, lr=1.0)
    for lr in (1e-3, 0.5, 40.0):
        scaled = train_perceptron(X, y, lr=lr)
        assert scaled.n_updates == base.n_updates
        np.testing.assert_allclose(scaled.history, lr * base.history, rtol=1e-12)


def test_xor_never_converges():
    X, labels = data.xor()
    result = train_perceptron(X, 2 * labels - 1, max_epochs=300)
    assert not result.converged
    assert result.n_epochs == 300
    assert result.n_updates >= 300  # at least one mistake in every pass


def test_novikoff_bound_values():
    X = np.array([[3.0, 0.0], [-1.0, 0.0]])
    y = np.array([1, -1])
    w_star = np.array([1.0, 0.0])
    assert novikoff_bound(X, y, w_star, bias=False) == pytest.approx(9.0)  # R^2 = 9, gamma = 1
    assert novikoff_bound(X, y, w_star, bias=True) == pytest.approx(10.0)  # R^2 = 9 + 1


def test_predict_treats_zero_as_positive():
    np.testing.assert_array_equal(predict([[0.0, 0.0], [1.0, -2.0]], [1.0, 1.0]), [1, -1])


@pytest.mark.parametrize(
    "X, y, kwargs, error, match",
    [
        ([1.0, 2.0], [1, -1], {}, ValueError, "X must be 2-D"),
        ([[1.0], [2.0]], [1, 0], {}, ValueError, r"y must take values in \[-1, 1\], found \[0\]"),
        ([[1.0], [2.0]], [1], {}, ValueError, "y must have length 2"),
        ([[1.0], [float("nan")]], [1, -1], {}, ValueError, "X must contain only finite"),
        ([[1.0], [2.0]], [1, -1], {"lr": 0.0}, ValueError, "lr must be > 0"),
        ([[1.0], [2.0]], [1, -1], {"max_epochs": 0}, ValueError, "max_epochs must be >= 1"),
        ([[1.0], [2.0]], [1, -1], {"bias": 1}, TypeError, "bias must be True or False"),
        ([["a"], ["b"]], [1, -1], {}, TypeError, "X must be an array of real numbers"),
        ([[1.0], [2.0]], ["a", "b"], {}, TypeError, "y must hold integer labels"),
        ([[1.0], [2.0]], [1.5, -1], {}, ValueError, "y must hold whole-number labels"),
    ],
)
def test_train_perceptron_rejects_bad_input(X, y, kwargs, error, match):
    with pytest.raises(error, match=match):
        train_perceptron(X, y, **kwargs)


@pytest.mark.parametrize(
    "w_star, match",
    [
        ([1.0, 0.0, 0.0], "w_star must have length 2"),
        ([2.0, 0.0], "unit norm"),
        ([-1.0, 0.0], "does not separate"),
    ],
)
def test_novikoff_bound_rejects_bad_w_star(w_star, match):
    X, y = np.array([[1.0, 0.0], [-1.0, 0.0]]), np.array([1, -1])
    with pytest.raises(ValueError, match=match):
        novikoff_bound(X, y, w_star)


def test_mistakes_per_epoch_add_up():
    X, y, _ = data.make_separable(50, 3, 0.05, seed=2)
    result = train_perceptron(X, y)
    assert result.mistakes_per_epoch.sum() == result.n_updates
    assert result.mistakes_per_epoch[-1] == 0 and np.all(result.mistakes_per_epoch[:-1] > 0)
    # Within a pass the mistakes come in the order of the examples.
    bounds = np.cumsum(result.mistakes_per_epoch)[:-1]
    for chunk in np.split(result.mistake_indices, bounds):
        assert np.all(np.diff(chunk) > 0)


def test_margin_sweep_respects_the_bound():
    sweep = margin_sweep([0.05, 0.2], n=40, dims=(2, 4), sets_per_margin=6, seed=1)
    assert sweep["n_updates"].shape == (12,)
    np.testing.assert_array_equal(sweep["dim"][:6], [2, 3, 4, 2, 3, 4])
    assert sweep["converged"].all()
    assert np.all(sweep["n_updates"] <= sweep["bound"])
    np.testing.assert_array_equal(sweep["margin"], np.repeat([0.05, 0.2], 6))
    assert np.all(sweep["actual_margin"] >= sweep["margin"])
    # the bound is R^2 / gamma^2 with the actual margin; R^2 counts the appended 1, at most
    # (margin + 1)^2 along w_star and at most d (here <= 4) across it
    r_squared = sweep["bound"] * sweep["actual_margin"] ** 2
    assert np.all(r_squared > 1.0) and np.all(r_squared <= 1 + 1.2**2 + 4)
    X, y, w_star = data.make_separable(40, 3, 0.2, seed=1 + 6 + 1)  # row 7: margin 0.2, d = 3
    assert sweep["dim"][7] == 3
    assert sweep["actual_margin"][7] == pytest.approx(np.min(y * (X @ w_star)), rel=1e-12)
    again = margin_sweep([0.05, 0.2], n=40, dims=(2, 4), sets_per_margin=6, seed=1)
    np.testing.assert_array_equal(sweep["n_updates"], again["n_updates"])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"margins": [0.1, 0.0]}, "margins must all be > 0"),
        ({"margins": [0.1], "dims": (3, 2)}, "dims\\[1\\] must be >= 3"),
    ],
)
def test_margin_sweep_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        margin_sweep(**kwargs)
