"""dl_course.theory.ntk against per-example autograd loops, Monte Carlo and explicit gradient descent."""

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from dl_course.theory import ntk


def loop_ntk(model, x1, x2):
    """The reference: one backward pass per example, then the Gram matrix of the gradients."""
    params = [p for p in model.parameters() if p.requires_grad]

    def grads(x):
        rows = []
        for xi in x:
            g = torch.autograd.grad(model(xi[None]).sum(), params)
            rows.append(torch.cat([t.reshape(-1) for t in g]))
        return torch.stack(rows)

    return grads(x1) @ grads(x2).T


def mlp(sizes, act=torch.nn.ReLU, bias=True, seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    layers = []
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        if k:
            layers.append(act())
        layers.append(torch.nn.Linear(a, b, bias=bias, dtype=dtype))
    return torch.nn.Sequential(*layers)


class Residual(torch.nn.Module):
    """Not a Sequential: empirical_ntk must take the torch.func path."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.inp = torch.nn.Linear(4, 16, dtype=torch.float64)
        self.mid = torch.nn.Linear(16, 16, dtype=torch.float64)
        self.out = torch.nn.Linear(16, 1, dtype=torch.float64)

    def forward(self, x):
        h = torch.tanh(self.inp(x))
        return self.out(h + torch.relu(self.mid(h)))


X1 = torch.randn(7, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
X2 = torch.randn(5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))


# -- the empirical NTK --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model",
    [
        mlp([4, 16, 1]),
        mlp([4, 16, 8, 1], act=torch.nn.Tanh, bias=False),
        mlp([4, 12, 12, 12, 1], act=torch.nn.GELU, seed=5),
        ntk.ntk_mlp([4, 32, 16, 1], bias=True, seed=2),
    ],
)
def test_structured_equals_the_per_example_gradient_gram_matrix(model):
    assert ntk.ntk_method(model) == "structured"
    expected = loop_ntk(model, X1, X2)
    for method in ("auto", "structured", "jacobian"):
        K = ntk.empirical_ntk(model, X1, X2, method=method)
        assert K.shape == (7, 5) and K.dtype == torch.float64
        torch.testing.assert_close(K, expected, rtol=1e-10, atol=1e-10)


def test_same_tensor_twice_gives_a_symmetric_psd_kernel():
    model = mlp([4, 16, 1])
    K = ntk.empirical_ntk(model, X1, X1)
    torch.testing.assert_close(K, loop_ntk(model, X1, X1), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(K, K.T)
    assert torch.linalg.eigvalsh(K).min() > -1e-10


def test_frozen_parameters_are_left_out():
    model = mlp([4, 16, 8, 1])
    model[0].weight.requires_grad_(False)
    model[2].bias.requires_grad_(False)
    model[4].requires_grad_(False)  # a whole layer frozen
    expected = loop_ntk(model, X1, X2)
    for method in ("structured", "jacobian"):
        torch.testing.assert_close(
            ntk.empirical_ntk(model, X1, X2, method=method), expected, rtol=1e-10, atol=1e-10
        )


def test_other_modules_take_the_jacobian_path():
    model = Residual()
    assert ntk.ntk_method(model) == "jacobian"
    torch.testing.assert_close(
        ntk.empirical_ntk(model, X1, X2), loop_ntk(model, X1, X2), rtol=1e-10, atol=1e-10
    )
    dropout = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 1))
    assert ntk.ntk_method(dropout) == "jacobian"  # not elementwise in the deterministic sense


def test_the_benchmark_network_agrees_in_float32():
    model = mlp([10, 256, 256, 1], dtype=torch.float32)
    x1, x2 = torch.randn(128, 10), torch.randn(96, 10)
    fast = ntk.empirical_ntk(model, x1, x2)
    slow = ntk.empirical_ntk(model, x1, x2, method="jacobian")
    assert fast.dtype == torch.float32
    assert (fast - slow).abs().max() <= 1e-5 * slow.abs().max()


def test_output_of_shape_n_is_accepted():
    class Flat(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = mlp([4, 8, 1])

        def forward(self, x):
            return self.net(x)[:, 0]

    model = Flat()
    torch.testing.assert_close(
        ntk.empirical_ntk(model, X1, X2), loop_ntk(model, X1, X2), rtol=1e-10, atol=1e-10
    )


def test_parameters_grads_flags_and_mode_are_left_as_they_were():
    model = mlp([4, 16, 8, 1])
    model.eval()
    model[2].bias.requires_grad_(False)
    model(X1).sum().backward()
    before = {n: (p.detach().clone(), None if p.grad is None else p.grad.clone(), p.requires_grad)
              for n, p in model.named_parameters()}
    for method in ("structured", "jacobian"):
        ntk.empirical_ntk(model, X1, X2, method=method)
    assert not model.training
    for n, p in model.named_parameters():
        value, grad, flag = before[n]
        assert torch.equal(p, value) and p.requires_grad == flag
        assert (p.grad is None and grad is None) or torch.equal(p.grad, grad)


def test_works_under_no_grad():
    model = mlp([4, 8, 1])
    with torch.no_grad():
        K = ntk.empirical_ntk(model, X1, X2)
    torch.testing.assert_close(K, loop_ntk(model, X1, X2), rtol=1e-10, atol=1e-10)


def test_bad_input_is_refused():
    model = mlp([4, 8, 1])
    with pytest.raises(TypeError, match="model"):
        ntk.empirical_ntk(lambda x: x, X1, X2)
    with pytest.raises(TypeError, match="x1"):
        ntk.empirical_ntk(model, X1.numpy(), X2)
    with pytest.raises(TypeError, match="x2"):
        ntk.empirical_ntk(model, X1, X2.long())
    with pytest.raises(TypeError, match="dtype"):
        ntk.empirical_ntk(model, X1, X2.float())
    with pytest.raises(ValueError, match="x1 and x2"):
        ntk.empirical_ntk(model, X1, torch.randn(5, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="shape"):
        ntk.empirical_ntk(model, X1[0], X2)
    with pytest.raises(ValueError, match="method"):
        ntk.empirical_ntk(model, X1, X2, method="fast")
    with pytest.raises(ValueError, match="structured"):
        ntk.empirical_ntk(Residual(), X1, X2, method="structured")
    wide = mlp([4, 8, 2])
    for method in ("structured", "jacobian"):
        with pytest.raises(ValueError, match="one number per example"):
            ntk.empirical_ntk(wide, X1, X2, method=method)
    frozen = mlp([4, 8, 1]).requires_grad_(False)
    with pytest.raises(ValueError, match="trainable"):
        ntk.empirical_ntk(frozen, X1, X2)


def test_ntk_mlp_is_the_ntk_parametrization():
    net = ntk.ntk_mlp([3, 50, 1], seed=4)
    x = torch.randn(6, 3, dtype=torch.float64)
    W, v = net[1].weight, net[4].weight[0]
    expected = torch.relu(x @ W.T / math.sqrt(3)) @ v / math.sqrt(50)
    torch.testing.assert_close(net(x)[:, 0], expected)
    torch.testing.assert_close(ntk.ntk_mlp([3, 50, 1], seed=4)(x), net(x))
    torch.testing.assert_close(
        ntk.two_layer_ntk(W.detach(), v.detach(), x, x), loop_ntk(net, x, x)
    )
    with pytest.raises(ValueError, match="end with 1"):
        ntk.ntk_mlp([3, 4])
    with pytest.raises(ValueError, match="activation"):
        ntk.ntk_mlp([3, 4, 1], activation="gelu")
    with pytest.raises(TypeError, match="sizes"):
        ntk.ntk_mlp([3, 4.5, 1])


# -- the infinite-width limit -------------------------------------------------------------------


def test_arccos_kernels_against_monte_carlo():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4, 3))
    w = rng.normal(size=(400_000, 3))
    proj = np.maximum(X @ w.T, 0)
    mc1 = proj @ proj.T / len(w)
    mc0 = (proj > 0).astype(float) @ (proj > 0).T.astype(float) / len(w)
    np.testing.assert_allclose(ntk.arccos_kernel(X, X, 1), mc1, rtol=0.02, atol=0.01)
    np.testing.assert_allclose(ntk.arccos_kernel(X, X, 0), mc0, atol=0.005)
    np.testing.assert_allclose(np.diag(ntk.arccos_kernel(X, X, 0)), 0.5)
    np.testing.assert_allclose(np.diag(ntk.arccos_kernel(X, X, 1)), (X**2).sum(1) / 2)


def test_relu_ntk_is_the_wide_limit():
    x = torch.randn(6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    limit = ntk.relu_ntk(x.numpy(), x.numpy())
    gaps = []
    for width in (100, 10_000):
        net = ntk.ntk_mlp([3, width, 1], seed=1)
        K = ntk.empirical_ntk(net, x, x).numpy()
        gaps.append(np.linalg.norm(K - limit) / np.linalg.norm(limit))
    assert gaps[1] < 0.05 and gaps[1] < gaps[0] / 4


def test_relu_ntk_refuses_bad_input():
    with pytest.raises(ValueError, match="nonzero"):
        ntk.relu_ntk(np.zeros((1, 2)), np.ones((1, 2)))
    with pytest.raises(ValueError, match="same dimension"):
        ntk.arccos_kernel(np.ones((1, 2)), np.ones((1, 3)), 1)
    with pytest.raises(ValueError, match="degree"):
        ntk.arccos_kernel(np.ones((1, 2)), np.ones((1, 2)), 2)


# -- many two-layer networks at once ------------------------------------------------------------


def test_antisymmetric_init_starts_at_zero_with_the_same_limit():
    W, v = ntk.init_two_layer(8, 3, seeds=[0, 1])
    x = torch.randn(5, 3, dtype=torch.float64)
    assert W.shape == (2, 8, 3) and v.shape == (2, 8)
    torch.testing.assert_close(ntk.two_layer_forward(W, v, x), torch.zeros(2, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="even"):
        ntk.init_two_layer(7, 3, seeds=[0])


def test_one_training_step_matches_autograd():
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(9, 3)), rng.normal(size=9)
    alphas, lr = np.array([0.1, 1.0, 10.0]), 0.7
    run = ntk.train_two_layer(X, y, width=6, seeds=[3, 4], alphas=alphas, lr=lr, steps=1)
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    for a, alpha in enumerate(alphas):
        for s in range(2):
            W = run.W0[a, s].clone().requires_grad_(True)
            v = run.v0[a, s].clone().requires_grad_(True)
            f0 = ntk.two_layer_forward(run.W0[a, s], run.v0[a, s], Xt)
            g = alpha * (ntk.two_layer_forward(W, v, Xt) - f0)
            loss = ((g - yt) ** 2).mean() / (2 * alpha**2)
            gW, gv = torch.autograd.grad(loss, (W, v))
            step = lr * min(1.0, alpha)
            torch.testing.assert_close(run.W[a, s], W.detach() - step * gW)
            torch.testing.assert_close(run.v[a, s], v.detach() - step * gv)
            assert run.losses[0, a, s] == pytest.approx(loss.item(), rel=1e-12)


def test_training_fits_and_the_prediction_is_centred():
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(10, 5)), rng.normal(size=10)
    run = ntk.train_two_layer(X, y, width=256, seeds=[0], lr=2.0, steps=3000)
    assert run.losses[-1].max() < 1e-3 * run.losses[0].max()
    np.testing.assert_allclose(run.predict(X, initial=True), 0.0, atol=1e-12)
    fit = run.predict(X)[0, 0]
    assert np.mean((fit - y) ** 2) == pytest.approx(2 * run.losses[-1, 0, 0], rel=1e-10)
    assert run.feature_change().shape == (1, 1)


def test_train_two_layer_refuses_bad_input():
    X, y = np.ones((4, 2)), np.ones(4)
    with pytest.raises(ValueError, match="y must"):
        ntk.train_two_layer(X, np.ones(3), width=4, seeds=[0])
    with pytest.raises(ValueError, match="alphas"):
        ntk.train_two_layer(X, y, width=4, seeds=[0], alphas=[0.0])
    with pytest.raises(ValueError, match="seeds"):
        ntk.train_two_layer(X, y, width=4, seeds=[])
    with pytest.raises(ValueError, match="lr"):
        ntk.train_two_layer(X, y, width=4, seeds=[0], lr=-1.0)


# -- the linearized model -----------------------------------------------------------------------


def test_kernel_gd_predict_is_gradient_descent_on_a_linear_model():
    rng = np.random.default_rng(3)
    n, p, lr, steps = 8, 5, 0.9, 40  # p < n: a singular kernel
    Phi, Phi_test, y = rng.normal(size=(n, p)), rng.normal(size=(3, p)), rng.normal(size=n)
    theta = np.zeros(p)
    for _ in range(steps):
        theta -= lr * Phi.T @ (Phi @ theta - y) / n
    got = ntk.kernel_gd_predict(Phi @ Phi.T, Phi_test @ Phi.T, y, lr=lr, steps=steps)
    np.testing.assert_allclose(got, Phi_test @ theta, rtol=1e-9, atol=1e-12)
    batched = ntk.kernel_gd_predict(
        np.stack([Phi @ Phi.T] * 2), np.stack([Phi_test @ Phi.T] * 2), y, lr=lr, steps=steps
    )
    np.testing.assert_allclose(batched, np.stack([Phi_test @ theta] * 2), rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="K_train"):
        ntk.kernel_gd_predict(np.eye(3), np.ones((2, 3)), np.ones(4), lr=1.0, steps=1)


def test_import_does_not_load_torch():
    code = "import sys, dl_course.theory.ntk; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
