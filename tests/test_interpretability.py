import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from sklearn.linear_model import LogisticRegression

from dl_course import interpretability as it


class Quadratic(torch.nn.Module):
    """Logits (sum x^2, sum x, 3 x_0): integrals along straight paths are known in closed form."""

    def forward(self, x):
        return torch.stack([(x**2).sum(dim=1), x.sum(dim=1), 3 * x[:, 0]], dim=1)


def small_mlp(seed: int = 0, d: int = 5, classes: int = 3):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(d, 7), torch.nn.Tanh(), torch.nn.Linear(7, classes))
    return net.double()


def inputs(n: int = 6, d: int = 5, seed: int = 0):
    return torch.rand(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_saliency_is_the_per_example_jacobian_row_of_the_target():
    model, x = small_mlp(), inputs()
    target = torch.tensor([0, 1, 2, 2, 1, 0])
    jac = torch.autograd.functional.jacobian(model, x)  # (N, C, N, d)
    rows = torch.stack([jac[i, target[i], i] for i in range(len(x))])
    assert torch.allclose(it.saliency(model, x, target, absolute=False), rows, atol=1e-12)
    assert torch.allclose(it.saliency(model, x, target), rows.abs(), atol=1e-12)
    assert torch.allclose(it.saliency(model, x, 2, absolute=False), jac[range(6), 2, range(6)])


def test_gradient_x_input_of_a_linear_model_splits_the_score():
    torch.manual_seed(3)
    model = torch.nn.Linear(5, 3, bias=True).double()
    x = inputs()
    attr = it.gradient_x_input(model, x, 1)
    assert torch.allclose(attr, x * model.weight[1].detach(), atol=1e-12)
    with torch.no_grad():
        score = model(x)[:, 1] - model.bias[1]
    assert torch.allclose(attr.sum(dim=1), score, atol=1e-12)


def test_integrated_gradients_of_a_linear_model_is_exact_for_any_steps():
    torch.manual_seed(4)
    model = torch.nn.Linear(5, 3).double()
    x, base = inputs(), inputs(seed=1)
    for steps in (1, 3, 17):
        attr, gap = it.integrated_gradients(model, x, 2, baseline=base, steps=steps, return_gap=True)
        assert torch.allclose(attr, (x - base) * model.weight[2].detach(), atol=1e-12)
        assert torch.allclose(gap, torch.zeros(6, dtype=torch.float64), atol=1e-12)


def test_integrated_gradients_on_a_quadratic_match_the_closed_form_riemann_sums():
    model, x, base = Quadratic(), inputs(), inputs(seed=2)
    # midpoint rule is exact for the linear integrand 2 (b + t (x - b)) (x - b)
    attr = it.integrated_gradients(model, x, 0, baseline=base, steps=3)
    assert torch.allclose(attr, x**2 - base**2, atol=1e-12)
    # left rule over t_k = k / m: mean of t_k is (m - 1) / (2 m)
    m = 4
    left = it.integrated_gradients(model, x, 0, baseline=base, steps=m, rule="left")
    expected = 2 * (x - base) * (base + (x - base) * (m - 1) / (2 * m))
    assert torch.allclose(left, expected, atol=1e-12)
    # the default baseline is zero; one baseline example broadcasts over the batch
    assert torch.allclose(it.integrated_gradients(model, x, 0), x**2, atol=1e-12)
    one = it.integrated_gradients(model, x, 0, baseline=base[0], steps=3)
    assert torch.allclose(one, x**2 - base[0] ** 2, atol=1e-12)


def test_integrated_gradients_completeness_gap_shrinks_with_steps():
    model, x = small_mlp(seed=5), inputs()
    gaps = []
    for steps in (1, 4, 16, 64):
        attr, gap = it.integrated_gradients(model, x, 1, steps=steps, return_gap=True)
        with torch.no_grad():
            change = model(x)[:, 1] - model(torch.zeros_like(x))[:, 1]
        assert torch.allclose(gap, attr.sum(dim=1) - change, atol=1e-12)
        gaps.append(float(gap.abs().max()))
    assert all(b < a for a, b in zip(gaps, gaps[1:], strict=False))
    assert gaps[-1] < 1e-3


def test_grad_cam_with_global_average_pooling_is_the_class_activation_map():
    torch.manual_seed(6)
    conv = torch.nn.Conv2d(1, 4, 3, padding=1)
    model = torch.nn.Sequential(
        torch.nn.Unflatten(1, (1, 6, 6)), conv, torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 3),
    ).double()
    x = inputs(n=5, d=36)
    target = torch.tensor([0, 1, 2, 1, 0])
    with torch.no_grad():
        maps = model[2](model[1](model[0](x)))  # (N, K, 6, 6)
        weights = model[5].weight[target]  # (N, K)
        cam = (weights[:, :, None, None] * maps).sum(dim=1)
    got = it.grad_cam(model, x, target, model[2])
    assert got.shape == (5, 6, 6)
    assert torch.allclose(got, cam.clamp(min=0) / 36, atol=1e-12)
    assert torch.allclose(it.grad_cam(model, x, target, model[2], relu=False), cam / 36, atol=1e-12)


def test_attributions_leave_model_input_and_grads_alone():
    model, x = small_mlp(seed=7), inputs()
    model.train()
    before = [p.detach().clone() for p in model.parameters()]
    snapshot = x.clone()
    it.saliency(model, x, 0)
    it.gradient_x_input(model, x, 1)
    it.integrated_gradients(model, x, 2, steps=5, return_gap=True)
    assert model.training
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before, strict=True))
    assert torch.equal(x, snapshot) and not x.requires_grad and x.grad is None
    # eval mode is kept too
    model.eval()
    out = it.saliency(model, x, 0)
    assert not model.training and out.grad_fn is None


def test_rank_correlation_matches_scipy_with_ties():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 4, size=(7, 12)).astype(float)  # many ties
    b = rng.normal(size=(7, 12))
    b[:, :3] = 0.0
    ours = it.rank_correlation(a, b)
    ref = [spearmanr(a[i], b[i]).statistic for i in range(7)]
    assert np.allclose(ours, ref, atol=1e-12)
    assert np.isclose(it.rank_correlation(b[0], b[0] ** 3)[0], 1.0)
    with pytest.raises(ValueError, match="same shape"):
        it.rank_correlation(a, b[:, :5])


def test_randomize_layers_changes_only_the_listed_layers_and_not_the_original():
    model = small_mlp(seed=8)
    before = [p.detach().clone() for p in model.parameters()]
    state = torch.random.get_rng_state()
    r1 = it.randomize_layers(model, [model[2]], seed=1)
    r2 = it.randomize_layers(model, [model[2]], seed=1)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before, strict=True))
    assert torch.equal(r1[0].weight, model[0].weight)  # untouched layer
    assert not torch.equal(r1[2].weight, model[2].weight)  # randomized layer
    assert torch.equal(r1[2].weight, r2[2].weight)  # reproducible
    with pytest.raises(ValueError, match="not a submodule"):
        it.randomize_layers(model, [torch.nn.Linear(2, 2)])
    with pytest.raises(ValueError, match="reset_parameters"):
        it.randomize_layers(model, [model[1]])


def test_layer_outputs_and_probe_accuracy_match_direct_computation():
    model, x = small_mlp(seed=9), inputs(n=40)
    out = it.layer_outputs(model, x, {"hidden": model[1], "logits": model[2]})
    with torch.no_grad():
        hidden = torch.tanh(model[0](x))
        assert np.allclose(out["hidden"], hidden.numpy())
        assert np.allclose(out["logits"], model(x).numpy())
    rng = np.random.default_rng(1)
    F = rng.normal(size=(200, 4))
    y = (F[:, 0] + 0.5 * F[:, 1] > 0).astype(int)
    acc = it.probe_accuracy(F[:150], y[:150], F[150:], y[150:], C=0.5)
    mu, sd = F[:150].mean(axis=0), F[:150].std(axis=0)
    ref = LogisticRegression(C=0.5, max_iter=2000).fit((F[:150] - mu) / sd, y[:150])
    assert acc == pytest.approx(ref.score((F[150:] - mu) / sd, y[150:]))
    assert acc > 0.9


def test_maximize_activation_reaches_the_closed_form_optimum():
    # maximize w.x - l2 ||x||^2: the optimum is x = w / (2 l2)
    torch.manual_seed(10)
    unit = torch.nn.Linear(9, 2)
    w = unit.weight.detach().reshape(2, 3, 3)

    def objective(images):
        return unit(images.reshape(2, 9)).diagonal() - unit.bias

    images = it.maximize_activation(objective, 2, (3, 3), steps=1000, lr=0.01, l2=0.5)
    assert torch.allclose(images, w / (2 * 0.5), atol=2e-4)
    assert all(p.grad is None for p in unit.parameters())
    # total variation: the sum of absolute neighbour differences
    square = torch.tensor([[[0.0, 1.0], [2.0, 4.0]]])
    assert it.total_variation(square).item() == pytest.approx(1 + 2 + 2 + 3)


def test_maximize_activation_with_jitter_is_seeded():
    torch.manual_seed(11)
    unit = torch.nn.Linear(16, 1)

    def objective(images):
        return unit(images.reshape(len(images), 16))[:, 0]

    a = it.maximize_activation(objective, 3, (4, 4), steps=20, tv=0.1, l2=0.1, jitter=1, seed=2)
    b = it.maximize_activation(objective, 3, (4, 4), steps=20, tv=0.1, l2=0.1, jitter=1, seed=2)
    assert torch.equal(a, b)


def test_bad_inputs_are_refused_with_the_argument_named():
    model, x = small_mlp(), inputs()
    with pytest.raises(TypeError, match="model"):
        it.saliency(object(), x, 0)
    with pytest.raises(TypeError, match="x must be a torch tensor"):
        it.saliency(model, x.numpy(), 0)
    with pytest.raises(ValueError, match="x must contain only finite"):
        it.saliency(model, x * float("nan"), 0)
    with pytest.raises(ValueError, match="target must be < 3"):
        it.saliency(model, x, 3)
    with pytest.raises(ValueError, match="target must be an int or have shape"):
        it.saliency(model, x, torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="target must hold integer"):
        it.gradient_x_input(model, x, torch.zeros(6))
    with pytest.raises(ValueError, match="steps must be >= 1"):
        it.integrated_gradients(model, x, 0, steps=0)
    with pytest.raises(ValueError, match="rule must be one of"):
        it.integrated_gradients(model, x, 0, rule="simpson")
    with pytest.raises(ValueError, match="baseline must have shape"):
        it.integrated_gradients(model, x, 0, baseline=torch.zeros(2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="layer must be a submodule"):
        it.grad_cam(model, x, 0, torch.nn.ReLU())
    with pytest.raises(ValueError, match="4-D output"):
        it.grad_cam(model, x, 0, model[1])
    with pytest.raises(ValueError, match="C must be >"):
        it.probe_accuracy(np.ones((4, 2)), [0, 1, 0, 1], np.ones((2, 2)), [0, 1], C=0.0)
    with pytest.raises(ValueError, match="test_features must have 2 columns"):
        it.probe_accuracy(np.ones((4, 2)), [0, 1, 0, 1], np.ones((2, 3)), [0, 1])
    with pytest.raises(ValueError, match="objective must return"):
        it.maximize_activation(lambda im: im.sum(), 2, (2, 2), steps=1)
    with pytest.raises(TypeError, match="image_shape"):
        it.maximize_activation(lambda im: im.sum(dim=(1, 2)), 2, 4)
