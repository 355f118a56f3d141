"""dl_course.regularization: against scikit-learn, torch, closed forms and brute-force enumeration."""

import itertools

import numpy as np
import pytest
import torch
from sklearn.linear_model import ElasticNet, Lasso, Ridge

from dl_course import regularization as reg


def sparse_problem(n=50, d=20, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    w = np.zeros(d)
    w[:4] = [2.0, -1.5, 1.0, 0.5]
    return X, X @ w + 0.5 * rng.normal(size=n)


# -- ridge, lasso, elastic net -------------------------------------------------------------------


@pytest.mark.parametrize("lam", [0.01, 1.0, 30.0])
def test_ridge_is_sklearn_ridge_and_the_normal_equations(lam):
    X, y = sparse_problem()
    ours = reg.ridge(X, y, lam)
    np.testing.assert_allclose(
        ours, Ridge(alpha=lam, fit_intercept=False).fit(X, y).coef_, atol=1e-12
    )
    np.testing.assert_allclose(
        ours, np.linalg.solve(X.T @ X + lam * np.eye(20), X.T @ y), atol=1e-12
    )


def test_ridge_path_and_minimum_norm_limit():
    X, y = sparse_problem()
    lams = np.geomspace(1e-3, 1e2, 6)
    path = reg.ridge(X, y, lams)
    assert path.shape == (6, 20)
    for lam, row in zip(lams, path, strict=True):
        np.testing.assert_allclose(row, reg.ridge(X, y, lam), atol=1e-12)
    wide = X[:10]  # underdetermined: lam = 0 is the minimum-norm solution
    np.testing.assert_allclose(
        reg.ridge(wide, y[:10], 0.0), np.linalg.pinv(wide) @ y[:10], atol=1e-10
    )


def test_soft_threshold_is_the_proximal_map_of_the_l1_norm():
    v = np.array([-2.0, -0.3, 0.0, 0.5, 1.7])
    np.testing.assert_allclose(reg.soft_threshold(v, 0.5), [-1.5, 0.0, 0.0, 0.0, 1.2])
    grid = np.linspace(-3, 3, 60001)  # brute-force minimization, one coordinate at a time
    for value in v:
        best = grid[np.argmin(0.5 * (grid - value) ** 2 + 0.5 * np.abs(grid))]
        assert abs(best - reg.soft_threshold(value, 0.5)) < 1e-4


@pytest.mark.parametrize("alpha", [0.01, 0.1, 0.3])
def test_ista_is_sklearn_lasso(alpha):
    X, y = sparse_problem()
    res = reg.proximal_gradient(X, y, alpha)
    ref = Lasso(alpha=alpha, fit_intercept=False, tol=1e-12, max_iter=100000).fit(X, y).coef_
    assert res.converged
    np.testing.assert_allclose(res.coef, ref, atol=1e-9)
    assert np.array_equal(res.coef == 0, ref == 0)  # the same exact zeros
    assert reg.kkt_violation(X, y, res.coef, alpha) < 1e-9
    assert (
        reg.elastic_net_objective(X, y, res.coef, alpha)
        <= reg.elastic_net_objective(X, y, ref, alpha) + 1e-12
    )


@pytest.mark.parametrize("l1_ratio", [0.2, 0.5, 0.9])
def test_ista_is_sklearn_elastic_net(l1_ratio):
    X, y = sparse_problem(seed=1)
    res = reg.proximal_gradient(X, y, 0.2, l1_ratio)
    ref = ElasticNet(alpha=0.2, l1_ratio=l1_ratio, fit_intercept=False, tol=1e-12, max_iter=100000)
    np.testing.assert_allclose(res.coef, ref.fit(X, y).coef_, atol=1e-9)
    assert reg.kkt_violation(X, y, res.coef, 0.2, l1_ratio) < 1e-9


def test_elastic_net_without_l1_is_ridge_with_the_1_over_n_scaling():
    X, y = sparse_problem()
    res = reg.proximal_gradient(X, y, 0.1, l1_ratio=0.0)
    np.testing.assert_allclose(res.coef, reg.ridge(X, y, 0.1 * len(y)), atol=1e-9)


def test_the_path_is_solved_at_once_and_agrees_with_single_penalties():
    X, y = sparse_problem()
    alphas = np.array([0.02, 0.2, 2.0])
    path = reg.proximal_gradient(X, y, alphas)
    assert path.coef.shape == (3, 20) and path.converged
    for alpha, row in zip(alphas, path.coef, strict=True):
        np.testing.assert_allclose(row, reg.proximal_gradient(X, y, alpha).coef, atol=1e-10)
    assert np.all(path.coef[-1] == 0)  # above max |X^T y| / n everything is zero
    assert 2.0 > np.abs(X.T @ y).max() / len(y)


def test_objective_and_kkt_by_hand():
    X, y = sparse_problem()
    w = np.linspace(-1, 1, 20)
    r = y - X @ w
    expected = r @ r / 100 + 0.3 * 0.25 * np.abs(w).sum() + 0.5 * 0.3 * 0.75 * w @ w
    assert reg.elastic_net_objective(X, y, w, 0.3, 0.25) == pytest.approx(expected)
    assert reg.kkt_violation(X, y, w, 0.3, 0.25) > 0.1


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda X, y: reg.ridge(X, y, -1.0), ValueError, "lam must be >= 0"),
        (lambda X, y: reg.proximal_gradient(X, y, -0.1), ValueError, "alpha must be >= 0"),
        (lambda X, y: reg.proximal_gradient(X, y, [0.1, -0.1]), ValueError, "alpha must be >= 0"),
        (lambda X, y: reg.proximal_gradient(X, y, 0.1, 1.5), ValueError, "l1_ratio must be <= 1"),
        (lambda X, y: reg.proximal_gradient(X, y[:-1], 0.1), ValueError, "one entry per row"),
        (lambda X, y: reg.ridge(X[:, 0], y, 1.0), ValueError, "X must be 2-D"),
        (lambda X, y: reg.soft_threshold(y, -1.0), ValueError, "threshold must be >= 0"),
        (lambda X, y: reg.kkt_violation(X, y, np.zeros(3), 0.1), ValueError, "w must have shape"),
        (lambda X, y: reg.ridge(X, y, [[1.0]]), ValueError, "lam must be 0-D or 1-D"),
    ],
)
def test_penalized_regression_rejects_bad_input(call, error, match):
    X, y = sparse_problem()
    with pytest.raises(error, match=match):
        call(X, y)


# -- weight decay --------------------------------------------------------------------------------


def small_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(4, 6), torch.nn.LayerNorm(6), torch.nn.ReLU(), torch.nn.Linear(6, 3)
    )


def test_groups_decay_weights_only():
    model = small_model()
    groups = reg.weight_decay_groups(model, 0.1)
    decayed = {id(p) for p in groups[0]["params"]}
    assert decayed == {id(model[0].weight), id(model[3].weight)}
    assert len(groups[1]["params"]) == 4 and groups[1]["weight_decay"] == 0.0


def test_with_zero_gradients_weights_shrink_geometrically_and_biases_stay():
    model = small_model()
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(reg.weight_decay_groups(model, 0.5), lr=0.1)
    for _ in range(7):
        opt.zero_grad()
        (0.0 * model(torch.ones(2, 4)).sum()).backward()
        opt.step()
    for p, p0 in zip(model.parameters(), before, strict=True):
        factor = 0.95**7 if p.ndim >= 2 else 1.0
        torch.testing.assert_close(p.detach(), factor * p0)
    plain = small_model()  # the optimizer's own weight_decay shrinks the biases too
    opt = torch.optim.SGD(plain.parameters(), lr=0.1, weight_decay=0.5)
    opt.zero_grad()
    (0.0 * plain(torch.ones(2, 4)).sum()).backward()
    opt.step()
    torch.testing.assert_close(plain[3].bias.detach(), 0.95 * before[-1])


def test_one_step_on_a_real_loss_matches_the_update_rule():
    model = small_model()
    x, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
    loss = torch.nn.functional.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(reg.weight_decay_groups(model, 0.2), lr=0.05)
    opt.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    for p, p0, g in zip(model.parameters(), before, grads, strict=True):
        decay = 0.2 * p0 if p.ndim >= 2 else 0.0
        torch.testing.assert_close(p.detach(), p0 - 0.05 * (g + decay))


def test_groups_reject_bad_input():
    with pytest.raises(TypeError, match="torch.nn.Module"):
        reg.weight_decay_groups([torch.zeros(3)], 0.1)
    with pytest.raises(ValueError, match="weight_decay must be >= 0"):
        reg.weight_decay_groups(small_model(), -0.1)


# -- dropout -------------------------------------------------------------------------------------


@pytest.mark.parametrize("p", [0.0, 0.3, 0.75])
def test_both_schemes_agree_in_exact_expectation(p):
    rng = np.random.default_rng(0)
    h, W = rng.normal(size=8), rng.normal(size=(3, 8))
    masks = reg.dropout_masks(8)
    probs = reg.mask_probabilities(masks, p)
    assert probs.sum() == pytest.approx(1.0)
    inverted = probs @ ((masks * h / (1 - p)) @ W.T)  # E over all 256 masks of the next layer
    scaled = probs @ ((masks * h) @ W.T)
    np.testing.assert_allclose(inverted, W @ reg.dropout(h, p, train=False), atol=1e-12)
    np.testing.assert_allclose(
        scaled, W @ reg.dropout(h, p, train=False, inverted=False), atol=1e-12
    )


def test_inverted_dropout_is_torchs_dropout():
    h = np.linspace(0.5, 2.0, 10_000)
    ours = reg.dropout(h, 0.4, train=True, seed=3)
    layer = torch.nn.Dropout(0.4)
    torch.manual_seed(3)
    theirs = layer(torch.tensor(h)).numpy()
    kept = theirs != 0  # torch's masks come from its own generator: compare what a mask does
    np.testing.assert_allclose(theirs[kept], h[kept] / 0.6)
    np.testing.assert_allclose(ours[ours != 0], h[ours != 0] / 0.6)
    for out in (ours, theirs):  # a Monte-Carlo mean within 4 standard errors of h
        ratio = out / h
        assert abs(ratio.mean() - 1) < 4 * ratio.std() / np.sqrt(h.size)
    layer.eval()
    np.testing.assert_array_equal(layer(torch.tensor(h)).numpy(), reg.dropout(h, 0.4, train=False))
    np.testing.assert_array_equal(reg.dropout(h, 0.0, train=True), h)


def test_masks_and_probabilities():
    masks = reg.dropout_masks(3)
    assert masks.shape == (8, 3) and len({tuple(m) for m in masks}) == 8
    p = 0.2
    brute = [np.prod([(1 - p) if m else p for m in mask]) for mask in masks]
    np.testing.assert_allclose(reg.mask_probabilities(masks, p), brute)


def softmax(z):
    return torch.softmax(torch.tensor(z), dim=-1).numpy()


@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.9])
def test_ensemble_equals_the_scaled_network(p):
    rng = np.random.default_rng(1)
    W, h = rng.normal(size=(4, 9)), rng.normal(size=9) * 2
    np.testing.assert_allclose(
        reg.exact_dropout_ensemble(W, h, p), softmax((1 - p) * W @ h), atol=1e-12
    )


def test_ensemble_equals_a_brute_force_product_over_masks():
    rng = np.random.default_rng(2)
    W, h, p = rng.normal(size=(3, 5)), rng.normal(size=5), 0.3
    product = np.ones(3)
    for bits in itertools.product([0.0, 1.0], repeat=5):  # one subnetwork at a time
        m = np.array(bits)
        weight = np.prod(np.where(m == 1, 1 - p, p))
        product *= softmax(W @ (m * h)) ** weight
    np.testing.assert_allclose(
        reg.exact_dropout_ensemble(W, h, p), product / product.sum(), atol=1e-12
    )


def test_ensemble_of_a_batch_chunks_and_arithmetic_mean():
    rng = np.random.default_rng(3)
    W, H = rng.normal(size=(3, 16)), rng.normal(size=(4, 16))  # 65536 masks: 4 chunks
    batch = reg.exact_dropout_ensemble(W, H, 0.5)
    np.testing.assert_allclose(batch, softmax(0.5 * H @ W.T), atol=1e-12)
    probs, weights = reg.subnetwork_outputs(W[:, :6], H[:, :6], 0.5)
    assert probs.shape == (64, 4, 3) and weights.shape == (64,)
    arithmetic = np.einsum("k,kbc->bc", weights, probs)
    np.testing.assert_allclose(arithmetic.sum(axis=1), 1.0)
    assert np.abs(arithmetic - reg.exact_dropout_ensemble(W[:, :6], H[:, :6], 0.5)).max() > 1e-3


@pytest.mark.parametrize(
    ("W", "h", "p", "error", "match"),
    [
        (np.ones((2, 21)), np.ones(21), 0.5, ValueError, "refused above 20 units"),
        (np.ones((2, 3)), np.ones(4), 0.5, ValueError, "h must have 3 entries"),
        (np.ones((2, 3)), np.ones(3), 1.0, ValueError, "p must be < 1"),
        (np.ones((2, 3)), np.ones(3), -0.1, ValueError, "p must be >= 0"),
        (np.ones(3), np.ones(3), 0.5, ValueError, "W must be 2-D"),
        (np.ones((2, 3)), np.ones((1, 1, 3)), 0.5, ValueError, "h must be 1-D or 2-D"),
    ],
)
def test_ensemble_rejects_bad_input(W, h, p, error, match):
    with pytest.raises(error, match=match):
        reg.exact_dropout_ensemble(W, h, p)


def test_dropout_rejects_bad_input():
    with pytest.raises(ValueError, match="p must be < 1"):
        reg.dropout(np.ones(3), 1.0, train=True)
    with pytest.raises(TypeError, match="train must be True or False"):
        reg.dropout(np.ones(3), 0.5, train=1)
    with pytest.raises(ValueError, match="n must be <= 20"):
        reg.dropout_masks(21)
    with pytest.raises(ValueError, match="only 0"):
        reg.mask_probabilities(np.full((2, 2), 0.5), 0.5)
