"""dl_course.gradient_noise: per-example gradients against torch, the variance law exactly."""

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dl_course import gradient_noise as gn
from dl_course import linear


def problem(n=40, d=5, c=3, seed=0):
    rng = np.random.default_rng(seed)
    X, y = rng.normal(size=(n, d)), rng.integers(0, c, size=n)
    return X, y, rng.normal(size=(c, d)), rng.normal(size=c)


def test_example_gradients_agree_with_torch_and_average_to_the_full_gradient():
    X, y, W, b = problem()
    G = gn.softmax_example_gradients(X, y, W, b)
    assert G.shape == (40, 3 * 5 + 3)
    for i in (0, 7, 39):
        Wt = torch.tensor(W, requires_grad=True)
        bt = torch.tensor(b, requires_grad=True)
        loss = F.cross_entropy((torch.tensor(X[i]) @ Wt.T + bt)[None], torch.tensor(y[i : i + 1]))
        loss.backward()
        np.testing.assert_allclose(
            G[i], np.r_[Wt.grad.numpy().ravel(), bt.grad.numpy()], rtol=1e-10
        )
    grad_W, grad_b = linear.objective_grad(X, y, W, b)
    np.testing.assert_allclose(G.mean(axis=0), np.r_[grad_W.ravel(), grad_b], atol=1e-14)


def exact_variance(G, batch_size, replace):
    """E ||g_B - g||^2 by enumerating every batch (all equally likely)."""
    n = len(G)
    pools = (
        itertools.product(range(n), repeat=batch_size)
        if replace
        else itertools.combinations(range(n), batch_size)
    )
    full = G.mean(axis=0)
    return np.mean([np.sum((G[list(batch)].mean(axis=0) - full) ** 2) for batch in pools])


@pytest.mark.parametrize("replace", [False, True])
@pytest.mark.parametrize("batch_size", [1, 2, 3, 5, 6])
def test_formula_equals_enumeration_of_every_batch(batch_size, replace):
    G = np.random.default_rng(1).normal(size=(6, 4))
    formula = gn.minibatch_variance_formula(G, batch_size, replace=replace)
    assert math.isclose(
        formula, exact_variance(G, batch_size, replace), rel_tol=1e-12, abs_tol=1e-15
    )


@pytest.mark.parametrize("replace", [False, True])
def test_monte_carlo_estimate_agrees_with_the_formula(replace):
    G = np.random.default_rng(2).normal(size=(50, 8)) * np.arange(1, 9)
    for batch_size in (1, 10, 40):
        mean, stderr = gn.minibatch_gradient_variance(
            G, batch_size, trials=3000, replace=replace, seed=batch_size
        )
        assert (
            abs(mean - gn.minibatch_variance_formula(G, batch_size, replace=replace)) < 4 * stderr
        )


def test_a_batch_of_everything_without_replacement_has_no_noise():
    G = np.random.default_rng(3).normal(size=(20, 3))
    mean, _ = gn.minibatch_gradient_variance(G, 20, trials=10)
    assert mean < 1e-28 and gn.minibatch_variance_formula(G, 20) == 0.0


def test_the_seed_fixes_the_estimate():
    G = np.random.default_rng(4).normal(size=(30, 3))
    first = gn.minibatch_gradient_variance(G, 4, trials=50, seed=7)
    assert first == gn.minibatch_gradient_variance(G, 4, trials=50, seed=7)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda G: gn.minibatch_variance_formula(G, 0), ValueError, "batch_size must be >= 1"),
        (lambda G: gn.minibatch_variance_formula(G, 11), ValueError, "batch_size must be <= 10"),
        (lambda G: gn.minibatch_variance_formula(G[0], 1), ValueError, "G must be 2-D"),
        (
            lambda G: gn.minibatch_gradient_variance(G, 2, trials=1),
            ValueError,
            "trials must be >= 2",
        ),
        (lambda G: gn.minibatch_gradient_variance(G, 2, replace=1), TypeError, "replace must be"),
    ],
)
def test_bad_input_is_refused(call, error, match):
    with pytest.raises(error, match=match):
        call(np.ones((10, 2)))


def test_example_gradients_check_shapes_and_labels():
    X, y, W, b = problem()
    with pytest.raises(ValueError, match="W must have shape"):
        gn.softmax_example_gradients(X, y, W[:, :2], b)
    with pytest.raises(ValueError, match="y must take values"):
        gn.softmax_example_gradients(X, y + 5, W, b)
