"""dl_course.theory.implicit_bias against NumPy's SVD and lstsq, torch autograd, scikit-learn
and closed forms."""

import numpy as np
import pytest
import torch

from dl_course import data
from dl_course.theory import implicit_bias as ib
from dl_course.training import DivergenceError

# -- norms, rank, degrees of freedom -----------------------------------------------------------


def test_nuclear_norm_is_numpys_nuc_norm_and_batches():
    W = np.random.default_rng(0).standard_normal((4, 5, 3))
    expected = [np.linalg.norm(w, "nuc") for w in W]
    np.testing.assert_allclose(ib.nuclear_norm(W), expected, rtol=1e-12)
    assert ib.nuclear_norm(W[0]) == pytest.approx(expected[0], rel=1e-12)


def test_effective_rank_counts_equal_singular_values_and_ignores_scale():
    rng = np.random.default_rng(1)
    Q1, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    Q2, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    for k in (1, 2, 5):
        sigma = np.zeros((6, 5))
        sigma[range(k), range(k)] = 3.0
        W = Q1 @ sigma @ Q2
        assert ib.effective_rank(W) == pytest.approx(k, rel=1e-9)
        assert ib.effective_rank(7.0 * W) == pytest.approx(k, rel=1e-9)
    # between 1 and 2 for two unequal singular values, by the entropy formula
    p = np.array([0.8, 0.2])
    expected = np.exp(-(p * np.log(p)).sum())
    assert ib.effective_rank(np.diag([4.0, 1.0])) == pytest.approx(expected)


@pytest.mark.parametrize(("d", "p", "r"), [(4, 3, 1), (5, 5, 2), (6, 4, 3), (3, 7, 3)])
def test_jacobian_rank_is_the_effective_parameter_count(d, p, r):
    rng = np.random.default_rng(d * 100 + p * 10 + r)
    U, V = rng.standard_normal((d, r)), rng.standard_normal((p, r))
    J = ib.factorization_jacobian(U, V)
    assert J.shape == (d * p, r * (d + p))
    assert np.linalg.matrix_rank(J) == ib.effective_parameter_count(d, p, r) == r * (d + p - r)


def test_factorization_jacobian_is_torchs():
    rng = np.random.default_rng(2)
    U, V = rng.standard_normal((4, 2)), rng.standard_normal((3, 2))
    jac_u, jac_v = torch.autograd.functional.jacobian(
        lambda u, v: u @ v.T, (torch.tensor(U), torch.tensor(V))
    )
    expected = np.hstack([jac_u.reshape(12, -1).numpy(), jac_v.reshape(12, -1).numpy()])
    np.testing.assert_allclose(ib.factorization_jacobian(U, V), expected, atol=1e-12)


def test_norm_and_rank_checks():
    with pytest.raises(ValueError, match="W must be a matrix"):
        ib.nuclear_norm([1.0, 2.0])
    with pytest.raises(ValueError, match="zero matrix"):
        ib.effective_rank(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="r must be <= 3"):
        ib.effective_parameter_count(3, 5, 4)
    with pytest.raises(ValueError, match="same number of columns"):
        ib.factorization_jacobian(np.ones((3, 2)), np.ones((3, 1)))
    with pytest.raises(TypeError, match="d must be an integer"):
        ib.effective_parameter_count(2.5, 3, 1)


# -- matrix sensing ------------------------------------------------------------------------------


def test_sensing_problem_has_the_stated_rank_scale_and_measurements():
    prob = ib.make_sensing_problem(6, 5, 2, 30, seed=4)
    assert prob.A.shape == (30, 6, 5) and prob.y.shape == (30,)
    assert np.linalg.matrix_rank(prob.W_star) == 2
    assert np.linalg.norm(prob.W_star, 2) == pytest.approx(1.0)
    np.testing.assert_allclose(prob.y, [np.sum(a * prob.W_star) for a in prob.A])


def test_min_norm_interpolant_is_lstsq_and_batches():
    probs = [ib.make_sensing_problem(5, 4, 1, 12, seed=s) for s in range(3)]
    A, y = np.stack([p.A for p in probs]), np.stack([p.y for p in probs])
    W = ib.min_norm_interpolant(A, y)
    for k, prob in enumerate(probs):
        expected = np.linalg.lstsq(prob.A.reshape(12, 20), prob.y, rcond=None)[0]
        np.testing.assert_allclose(W[k].ravel(), expected, atol=1e-12)
        np.testing.assert_allclose(ib.min_norm_interpolant(prob.A, prob.y), W[k], atol=1e-12)
        np.testing.assert_allclose(np.einsum("mij,ij->m", prob.A, W[k]), prob.y, atol=1e-10)


def test_depth_one_gradient_descent_from_zero_finds_the_min_norm_interpolant():
    prob = ib.make_sensing_problem(5, 5, 1, 10, seed=5)
    run = ib.train_factorization(prob.A, prob.y, 1.0, depth=1, lr=0.1, steps=3000)
    np.testing.assert_allclose(run.W[0], ib.min_norm_interpolant(prob.A, prob.y), atol=1e-8)


@pytest.mark.parametrize("depth", [2, 3])
def test_one_factorization_step_is_a_torch_gradient_step(depth):
    prob = ib.make_sensing_problem(4, 3, 1, 7, seed=6)
    scales, lr, width = np.array([0.5, 2.0]), 0.05, 3
    run = ib.train_factorization(prob.A, prob.y, scales, depth=depth, lr=lr, steps=1, seed=9)
    # the documented initialization, drawn the same way
    rng = np.random.default_rng(9)
    shapes = [(width, 3)] + [(width, width)] * (depth - 2) + [(4, width)]
    draws = [rng.standard_normal((2, *shape)) for shape in shapes]
    A = torch.tensor(prob.A)
    for s, scale in enumerate(scales):
        factors = [torch.tensor(scale / np.sqrt(width) * f[s], requires_grad=True) for f in draws]
        W = factors[0]
        for f in factors[1:]:
            W = f @ W
        loss = 0.5 * torch.mean((torch.einsum("mij,ij->m", A, W) - torch.tensor(prob.y)) ** 2)
        loss.backward()
        with torch.no_grad():
            stepped = [f - lr * f.grad for f in factors]
            W = stepped[0]
            for f in stepped[1:]:
                W = f @ W
        np.testing.assert_allclose(run.W[s], W.numpy(), rtol=1e-10, atol=1e-14)


def test_small_initialization_recovers_a_low_rank_matrix():
    prob = ib.make_sensing_problem(6, 6, 1, 24, seed=7)
    run = ib.train_factorization(prob.A, prob.y, [1e-3, 1.0], lr=0.2, steps=3000)
    error = np.linalg.norm(run.W - prob.W_star, axis=(-2, -1))
    assert error[0] < 0.05 < error[1]
    frobenius = ib.min_norm_interpolant(prob.A, prob.y)
    assert ib.nuclear_norm(run.W[0]) < ib.nuclear_norm(frobenius)


def test_train_factorization_checks_and_divergence():
    prob = ib.make_sensing_problem(3, 3, 1, 4, seed=0)
    with pytest.raises(ValueError, match="y must have shape"):
        ib.train_factorization(prob.A, prob.y[:3], 0.1)
    with pytest.raises(ValueError, match="init_scales must be > 0"):
        ib.train_factorization(prob.A, prob.y, [0.1, 0.0])
    with pytest.raises(ValueError, match="depth must be <= 6"):
        ib.train_factorization(prob.A, prob.y, 0.1, depth=7)
    with pytest.raises(ValueError, match="lr must be > 0"):
        ib.train_factorization(prob.A, prob.y, 0.1, lr=0.0)
    with pytest.raises(DivergenceError), np.errstate(all="ignore"):
        ib.train_factorization(prob.A, prob.y, 3.0, lr=50.0, steps=200)


# -- logistic regression and the SVM ------------------------------------------------------------


def brute_force_direction(X, y, num=200_001):
    """The unit vector of largest margin in 2-D, by trying every angle of a fine grid."""
    angles = np.linspace(-np.pi, np.pi, num)
    U = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    margins = np.min(y[:, None] * (X @ U.T), axis=0)
    return U[np.argmax(margins)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_svm_direction_is_the_max_margin_direction(seed):
    X, y, w_star = data.make_separable(20, 2, margin=0.1, seed=seed)
    w = ib.svm_direction(X, y)
    assert np.all(y * (X @ w) > 0)
    assert w @ brute_force_direction(X, y) > 1 - 1e-6
    assert np.min(y * (X @ w)) >= np.min(y * (X @ w_star))  # the largest margin


def test_logistic_gd_matches_torch_and_turns_to_the_svm():
    X = np.array([[1.0, 0.0], [0.0, 1.0], [3.0, 0.5], [-0.5, 2.0]])
    y = np.array([1, -1, 1, -1])
    run = ib.gd_logistic_direction(X, y, lr=2.0, steps=5000, record=[0, 5, 5000])
    w = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([w], lr=2.0)
    for _ in range(5):
        opt.zero_grad()
        loss = torch.nn.functional.softplus(-torch.tensor(y * 1.0) * (torch.tensor(X) @ w))
        loss.mean().backward()
        opt.step()
    np.testing.assert_allclose(run.w[1], w.detach().numpy(), rtol=1e-12)
    svm = ib.svm_direction(X, y)
    np.testing.assert_allclose(svm, [1 / np.sqrt(2), -1 / np.sqrt(2)], atol=1e-6)
    direction = run.w[-1] / np.linalg.norm(run.w[-1])
    assert direction @ svm > 0.999
    assert run.loss[-1] < run.loss[1] < run.loss[0] == pytest.approx(np.log(2))


def test_logistic_gd_batches_data_sets():
    sets = [data.make_separable(10, 3, margin=0.1, seed=s) for s in range(3)]
    X, y = np.stack([s[0] for s in sets]), np.stack([s[1] for s in sets])
    run = ib.gd_logistic_direction(X, y, lr=1.0, steps=50, record=[50])
    for b in range(3):
        alone = ib.gd_logistic_direction(X[b], y[b], lr=1.0, steps=50, record=[50])
        np.testing.assert_allclose(run.w[0, b], alone.w[0], rtol=1e-12)


def test_logistic_checks():
    X, y = np.ones((3, 2)), np.array([1, -1, 1])
    with pytest.raises(ValueError, match=r"must take values in \[-1, 1\]"):
        ib.gd_logistic_direction(X, [0, 1, 1])
    with pytest.raises(ValueError, match="y must have shape"):
        ib.gd_logistic_direction(X, [1, -1])
    with pytest.raises(ValueError, match="record must be <= 10"):
        ib.gd_logistic_direction(X, y, steps=10, record=[0, 11])
    with pytest.raises(ValueError, match="increasing"):
        ib.gd_logistic_direction(X, y, steps=10, record=[5, 2])
    with pytest.raises(ValueError, match="C must be > 0"):
        ib.svm_direction(X, y, C=0.0)


# -- two-layer ReLU networks --------------------------------------------------------------------


def test_relu_network_is_torchs_and_invariant_under_rescaling():
    rng = np.random.default_rng(3)
    a, W, X = rng.standard_normal(6), rng.standard_normal((6, 4)), rng.standard_normal((9, 4))
    net = torch.nn.Sequential(
        torch.nn.Linear(4, 6, bias=False), torch.nn.ReLU(), torch.nn.Linear(6, 1, bias=False)
    ).double()
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor(W))
        net[2].weight.copy_(torch.tensor(a[None]))
    expected = net(torch.tensor(X))[:, 0].detach().numpy()
    np.testing.assert_allclose(ib.relu_network(a, W, X), expected, rtol=1e-12)
    c = rng.uniform(0.1, 10.0, size=6)
    a2, W2 = ib.rescale_neurons(a, W, c)
    np.testing.assert_allclose(ib.relu_network(a2, W2, X), expected, rtol=1e-10)
    assert ib.path_norm(a2, W2) == pytest.approx(ib.path_norm(a, W), rel=1e-12)
    l2 = (a**2).sum() + (W**2).sum()
    assert (a2**2).sum() + (W2**2).sum() != pytest.approx(l2, rel=1e-3)


def test_path_norm_is_the_minimum_of_the_l2_penalty_over_rescalings():
    rng = np.random.default_rng(4)
    a, W = rng.standard_normal(5), rng.standard_normal((5, 3))
    cs = np.geomspace(1e-2, 1e2, 40_001)[:, None]  # one grid of factors for every neuron
    penalty = 0.5 * (a**2 / cs**2 + cs**2 * np.sum(W**2, axis=1))
    assert penalty.min(axis=0).sum() == pytest.approx(ib.path_norm(a, W), rel=1e-6)


def test_merged_path_norms_merge_parallel_neurons():
    a = np.array([1.0, 2.0, -1.0, 0.5])
    W = np.array([[1.0, 0.0], [3.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    groups = ib.merged_path_norms(a, W)
    np.testing.assert_allclose(groups, [7.0, 1.0, 1.0])  # 1 + 6 merged; the sign splits
    assert groups.sum() == pytest.approx(ib.path_norm(a, W))


def test_one_relu_training_step_is_a_torch_gradient_step():
    rng = np.random.default_rng(5)
    X, y = rng.standard_normal((8, 3)), rng.standard_normal(8)
    lr, wd, width = 0.1, 0.01, 4
    run = ib.train_two_layer_relu(X, y, [0.5], width=width, lr=lr, steps=1, weight_decay=wd)
    init = np.random.default_rng(0)
    W0 = 0.5 * init.standard_normal((width, 3)) / np.sqrt(3)
    a0 = 0.5 * init.standard_normal(width) / np.sqrt(width)
    W, a = torch.tensor(W0, requires_grad=True), torch.tensor(a0, requires_grad=True)
    out = torch.relu(torch.tensor(X) @ W.T) @ a
    loss = 0.5 * torch.mean((out - torch.tensor(y)) ** 2) + 0.5 * wd * (a @ a + (W * W).sum())
    loss.backward()
    np.testing.assert_allclose(run.a[0, 0], (a - lr * a.grad).detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(run.W[0, 0], (W - lr * W.grad).detach().numpy(), rtol=1e-12)


def test_relu_training_conserves_balance_and_weight_decay_removes_it():
    rng = np.random.default_rng(6)
    X = rng.standard_normal((20, 3))
    y = np.maximum(X @ np.array([1.0, -1.0, 0.5]), 0.0)
    plain = ib.train_two_layer_relu(X, y, [1.0], width=10, lr=0.01, steps=2000)
    # gradient flow conserves a_j^2 - ||w_j||^2; small steps nearly do
    assert abs(plain.balance[0, 0] - plain.balance_init[0, 0]) < 0.02 * plain.balance_init[0, 0]
    decayed = ib.train_two_layer_relu(X, y, [1.0], width=10, lr=0.01, steps=2000, weight_decay=0.1)
    # under gradient flow the imbalance decays exactly like exp(-2 lr wd t)
    predicted = plain.balance_init[0, 0] * np.exp(-2 * 0.01 * 0.1 * 2000)
    assert decayed.balance[0, 0] == pytest.approx(predicted, rel=0.05)


def test_relu_checks():
    with pytest.raises(ValueError, match="c must be > 0"):
        ib.rescale_neurons([1.0], [[1.0, 2.0]], [-1.0])
    with pytest.raises(ValueError, match=r"W must have shape a.shape \+ \(d,\)"):
        ib.path_norm([1.0, 2.0], [[1.0, 2.0]])
    with pytest.raises(ValueError, match="X must have shape"):
        ib.relu_network([1.0], [[1.0, 2.0]], np.ones((3, 3)))
    with pytest.raises(ValueError, match="weight_decay must be >= 0"):
        ib.train_two_layer_relu(np.ones((3, 2)), np.ones(3), 0.1, weight_decay=-1.0)
    with pytest.raises(ValueError, match="min_cosine must be <= 1"):
        ib.merged_path_norms([1.0], [[1.0, 0.0]], min_cosine=1.5)
