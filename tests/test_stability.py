"""dl_course.theory.stability against closed forms, dl_course.optim and torch autograd."""

import math

import numpy as np
import pytest
import torch

from dl_course import optim
from dl_course import quadratic as qd
from dl_course.theory import stability as st


@pytest.fixture
def bowl():
    return qd.make_quadratic([0.5, 2.0, 10.0], seed=4)


def closed_form(H, x0, lr, steps):
    """Q diag((1 - lr lam)^t) Q^T x0 for t = 0..steps."""
    lam, Q = np.linalg.eigh(H)
    factors = (1.0 - lr * lam)[None, :] ** np.arange(steps + 1)[:, None]
    return (factors * (x0 @ Q)) @ Q.T


@pytest.mark.parametrize("product", [0.3, 1.0, 1.5, 2.0, 2.3])
def test_gd_on_quadratic_is_the_closed_form_per_eigendirection(bowl, product):
    x0 = np.array([1.0, -2.0, 0.5])
    lr = product / 10.0
    path = st.gd_on_quadratic(bowl.H, x0, lr, 60)
    assert path.shape == (61, 3)
    np.testing.assert_allclose(path, closed_form(bowl.H, x0, lr, 60), rtol=1e-9, atol=1e-12)


def test_gd_on_quadratic_agrees_with_optimize(bowl):
    x0 = np.array([0.3, 0.1, -1.0])
    ours = st.gd_on_quadratic(bowl.H, x0, 0.15, 40)
    theirs = optim.optimize(bowl.grad, x0, "sgd", lr=0.15, steps=40)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-14)


def test_zero_steps_and_saddles(bowl):
    x0 = np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(st.gd_on_quadratic(bowl.H, x0, 0.1, 0), [x0])
    saddle = np.diag([1.0, -1.0])
    path = st.gd_on_quadratic(saddle, [1.0, 1.0], 0.5, 3)
    np.testing.assert_allclose(path[:, 1], 1.5 ** np.arange(4))  # negative curvature: escape


def test_divergent_run_overflows_quietly():
    path = st.gd_on_quadratic([[10.0]], [1.0], 1.0, 400)
    assert np.isinf(path[-1, 0])


@pytest.mark.parametrize(
    ("lr", "lam", "expected"),
    [
        (0.05, 10.0, "monotone"),
        (0.1, 10.0, "monotone"),  # factor 0: removed in one step
        (0.1 * (1 + 1e-9), 10.0, "oscillating"),
        (0.15, 10.0, "oscillating"),
        (0.2, 10.0, "oscillating"),  # factor -1: flips for ever at constant size
        (2 / 3, 3.0, "oscillating"),  # 2 up to round-off
        (0.2 * (1 + 1e-9), 10.0, "divergent"),
        (1.0, 10.0, "divergent"),
    ],
)
def test_classify_step_size_boundaries(lr, lam, expected):
    assert st.classify_step_size(lr, lam) == expected


def test_classification_matches_the_top_coordinate(bowl):
    u = np.linalg.eigh(bowl.H)[1][:, -1]
    for product in 0.025 + 0.05 * np.arange(50):
        c = st.gd_on_quadratic(bowl.H, u, product / 10.0, 30) @ u
        c = c[np.abs(c) > 1e-9]  # before round-off in the other directions takes over
        kind = st.classify_step_size(product / 10.0, 10.0)
        flips = np.all(np.sign(c[1:]) == -np.sign(c[:-1]))
        assert flips == (kind != "monotone")
        assert (abs(c[-1]) > 1.0) == (kind == "divergent")
    c = st.gd_on_quadratic(bowl.H, u, 0.2, 500) @ u  # exactly at the edge
    np.testing.assert_allclose(np.abs(c), 1.0, rtol=1e-9)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (([[1.0, 2.0]], [1.0], 0.1, 3), ValueError),  # not square
        (([[1.0, 2.0], [0.0, 1.0]], [1.0, 1.0], 0.1, 3), ValueError),  # not symmetric
        (([[1.0]], [1.0, 2.0], 0.1, 3), ValueError),  # x0 of the wrong length
        (([[1.0]], [1.0], 0.0, 3), ValueError),
        (([[1.0]], [1.0], -0.1, 3), ValueError),
        (([[1.0]], [1.0], 0.1, -1), ValueError),
        (([[1.0]], [1.0], 0.1, 2.0), TypeError),
        (([[np.nan]], [1.0], 0.1, 2), ValueError),
        (([[1.0]], [1.0], True, 2), TypeError),
    ],
)
def test_gd_on_quadratic_rejects_bad_input(args, error):
    with pytest.raises(error):
        st.gd_on_quadratic(*args)


@pytest.mark.parametrize(
    ("lr", "lam", "error"),
    [
        (0.0, 1.0, ValueError),
        (0.1, 0.0, ValueError),
        (0.1, -2.0, ValueError),
        ("0.1", 1.0, TypeError),
        (0.1, math.inf, ValueError),
    ],
)
def test_classify_step_size_rejects_bad_input(lr, lam, error):
    with pytest.raises(error, match="lr|lam_max"):
        st.classify_step_size(lr, lam)


# --- the network half --------------------------------------------------------------------------


@pytest.fixture
def tiny_task():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 3))
    Y = np.eye(2)[rng.integers(0, 2, size=12)]
    return X, Y, [3, 4, 4, 2]


def test_manual_gradient_matches_autograd(tiny_task):
    X, Y, sizes = tiny_task
    params = st.init_mlp_stack(sizes, [0, 1, 2], dtype=torch.float64)
    X_t, Y_t = torch.tensor(X), torch.tensor(Y)
    grads, loss = st.mlp_loss_and_grad(params, X_t, Y_t)
    for k in range(3):
        leaves = [p[k].clone().requires_grad_() for p in params]
        h = X_t
        for layer in range(len(leaves) // 2 - 1):
            h = torch.tanh(h @ leaves[2 * layer] + leaves[2 * layer + 1])
        ref = 0.5 * ((h @ leaves[-2] + leaves[-1] - Y_t) ** 2).sum() / len(X)
        ref.backward()
        assert math.isclose(loss[k].item(), ref.item(), rel_tol=1e-12)
        for g, leaf in zip(grads, leaves, strict=True):
            np.testing.assert_allclose(g[k].numpy(), leaf.grad.numpy(), rtol=1e-10, atol=1e-14)


def dense_hessian(run_or_params, k, X, Y):
    params = [torch.tensor(p[k], dtype=torch.float64) for p in run_or_params]
    shapes = [p.shape for p in params]
    flat = torch.cat([p.reshape(-1) for p in params])

    def loss(theta):
        pieces, start = [], 0
        for shape in shapes:
            size = math.prod(shape)
            pieces.append(theta[start : start + size].reshape(shape))
            start += size
        h = torch.tensor(X)
        for layer in range(len(pieces) // 2 - 1):
            h = torch.tanh(h @ pieces[2 * layer] + pieces[2 * layer + 1])
        return 0.5 * ((h @ pieces[-2] + pieces[-1] - torch.tensor(Y)) ** 2).sum() / len(X)

    return torch.autograd.functional.hessian(loss, flat).numpy()


def test_hessian_vector_products_match_the_dense_hessian(tiny_task):
    X, Y, sizes = tiny_task
    params = st.init_mlp_stack(sizes, [3, 4], dtype=torch.float64)
    gen = torch.Generator().manual_seed(1)
    v = [torch.randn(p.shape, generator=gen, dtype=torch.float64) for p in params]
    hv = st.hessian_vector_products(params, v, torch.tensor(X), torch.tensor(Y))
    for k in range(2):
        H = dense_hessian([p.numpy() for p in params], k, X, Y)
        flat_v = np.concatenate([a[k].reshape(-1).numpy() for a in v])
        flat_hv = np.concatenate([a[k].reshape(-1).numpy() for a in hv])
        np.testing.assert_allclose(flat_hv, H @ flat_v, rtol=1e-9, atol=1e-12)


def test_tracked_sharpness_is_the_top_eigenvalue(tiny_task):
    X, Y, sizes = tiny_task
    run = st.train_tracking_sharpness(
        X,
        Y,
        sizes,
        [0.1, 0.3],
        [0, 1],
        steps=40,
        every=20,
        lanczos_iters=40,
        dtype=torch.float64,
    )
    assert run.loss.shape == (2, 41) and run.sharpness.shape == (2, 3)
    np.testing.assert_array_equal(run.sharpness_steps, [0, 20, 40])
    for k in range(2):
        eig = np.linalg.eigvalsh(dense_hessian(run.params, k, X, Y))
        top = eig[np.argmax(np.abs(eig))]
        assert math.isclose(run.sharpness[k, -1], top, rel_tol=1e-6)
        assert run.residual[k, -1] < 1e-3


def test_members_do_not_interact_and_follow_gradient_descent(tiny_task):
    X, Y, sizes = tiny_task
    kw = {"steps": 15, "every": 5, "dtype": torch.float64}
    both = st.train_tracking_sharpness(X, Y, sizes, [0.2, 0.5], [7, 8], **kw)
    alone = st.train_tracking_sharpness(X, Y, sizes, [0.5], [8], **kw)
    np.testing.assert_allclose(both.loss[1], alone.loss[0], rtol=1e-12)
    # member 1 with torch.optim.SGD on the same loss
    start = st.init_mlp_stack(sizes, [8], dtype=torch.float64)
    leaves = [p[0].clone().requires_grad_() for p in start]
    sgd = torch.optim.SGD(leaves, lr=0.5)
    X_t, Y_t = torch.tensor(X), torch.tensor(Y)
    for _ in range(15):
        sgd.zero_grad()
        h = X_t
        for layer in range(len(leaves) // 2 - 1):
            h = torch.tanh(h @ leaves[2 * layer] + leaves[2 * layer + 1])
        (0.5 * ((h @ leaves[-2] + leaves[-1] - Y_t) ** 2).sum() / len(X)).backward()
        sgd.step()
    for final, leaf in zip(both.params, leaves, strict=True):
        np.testing.assert_allclose(final[1], leaf.detach().numpy(), rtol=1e-10, atol=1e-13)


def test_member_loss_feeds_the_landscape_module(tiny_task):
    landscape = pytest.importorskip("dl_course.theory.landscape")
    X, Y, sizes = tiny_task
    run = st.train_tracking_sharpness(
        X, Y, sizes, [0.3], [2], steps=10, every=10, lanczos_iters=46, dtype=torch.float64
    )
    loss_fn, params = st.member_loss(run, 0, X, Y)
    assert math.isclose(loss_fn().item(), run.loss[0, -1], rel_tol=1e-10)
    top = landscape.hessian_top_eigenvalue(loss_fn, params, iters=200, tol=1e-10)
    assert math.isclose(top, run.sharpness[0, -1], rel_tol=1e-6)


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"sizes": [3, 4, 3]}, ValueError),  # output width differs from Y
        ({"sizes": "34"}, TypeError),
        ({"lrs": [0.1, -0.1]}, ValueError),
        ({"seeds": [0]}, ValueError),  # length mismatch
        ({"seeds": [0, -1]}, ValueError),
        ({"steps": 0}, ValueError),
        ({"every": 0}, ValueError),
        ({"lanczos_iters": 1.5}, TypeError),
        ({"X": np.zeros((5, 3))}, ValueError),  # rows differ from Y
    ],
)
def test_train_tracking_sharpness_rejects_bad_input(tiny_task, change, error):
    X, Y, sizes = tiny_task
    kw = {"X": X, "Y": Y, "sizes": sizes, "lrs": [0.1, 0.2], "seeds": [0, 1], "steps": 2}
    kw.update(change)
    with pytest.raises(error):
        st.train_tracking_sharpness(**kw)


def test_few_lanczos_steps_underestimate_and_residual_bounds_the_error(tiny_task):
    X, Y, sizes = tiny_task
    run = st.train_tracking_sharpness(
        X,
        Y,
        sizes,
        [0.2, 0.6],
        [5, 6],
        steps=30,
        every=10,
        lanczos_iters=2,
        warmup_iters=2,
        dtype=torch.float64,
    )
    for k in range(2):
        eig = np.linalg.eigvalsh(dense_hessian(run.params, k, X, Y))
        estimate, residual = run.sharpness[k, -1], run.residual[k, -1]
        assert estimate <= eig.max() + 1e-10  # a Ritz value never exceeds the top eigenvalue
        assert np.min(np.abs(eig - estimate)) <= residual * abs(estimate) + 1e-10


def test_member_loss_rejects_a_bad_index(tiny_task):
    X, Y, sizes = tiny_task
    run = st.train_tracking_sharpness(X, Y, sizes, [0.1], [0], steps=1, dtype=torch.float64)
    with pytest.raises(ValueError, match="k"):
        st.member_loss(run, 1, X, Y)
