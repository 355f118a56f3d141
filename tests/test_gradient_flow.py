import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy import integrate

from dl_course import data
from dl_course import gradient_flow as gf
from dl_course.activations import get
from dl_course.mlp import build_mlp
from dl_course.training import batches

# -------------------------------------------------------------------------- per-layer factor


def test_per_layer_factor_of_a_geometric_profile():
    norms = 3.0 * 0.8 ** np.arange(10, 0, -1)  # first layer smallest: vanishing by 0.8
    assert math.isclose(gf.per_layer_factor(norms), 0.8, rel_tol=1e-12)
    assert math.isclose(gf.per_layer_factor(norms[::-1]), 1 / 0.8, rel_tol=1e-12)


@pytest.mark.parametrize(
    ("norms", "match"),
    [
        ([1.0], "at least two"),
        ([1.0, 0.0], "positive"),
        ([[1.0, 2.0]], "1-D"),
        ([1, np.nan], "finite"),
    ],
)
def test_per_layer_factor_rejects_bad_input(norms, match):
    with pytest.raises(ValueError, match=match):
        gf.per_layer_factor(norms)


# ------------------------------------------------------------------------------ mean field


def _quad(fn, q):
    density = lambda z: math.exp(-z * z / (2 * q)) / math.sqrt(2 * math.pi * q)  # noqa: E731
    lim = 14 * math.sqrt(q)
    return integrate.quad(lambda z: fn(z) * density(z), -lim, lim, points=[0.0], limit=200)[0]


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "relu", "gelu"])
@pytest.mark.parametrize("q", [1e-4, 0.3, 2.0, 40.0])
def test_gaussian_mean_matches_adaptive_quadrature(name, q):
    act = get(name)
    for fn in (lambda z: act.function(z) ** 2, lambda z: act.derivative(z) ** 2):
        reference = _quad(lambda z, fn=fn: float(fn(np.array([z]))[0]), q)
        assert math.isclose(gf.gaussian_mean(fn, q), reference, rel_tol=1e-6, abs_tol=1e-12)


def test_gaussian_mean_closed_forms():
    assert math.isclose(gf.gaussian_mean(np.square, 2.5), 2.5, rel_tol=1e-9)
    assert math.isclose(gf.gaussian_mean(lambda z: (z > 0) * 1.0, 3.0), 0.5, rel_tol=1e-12)
    assert math.isclose(gf.gaussian_mean(np.cos, 0.0), 1.0)  # a point mass at zero
    with pytest.raises(ValueError, match="variance"):
        gf.gaussian_mean(np.square, -1.0)


@pytest.mark.parametrize("gain", [0.5, 2**0.5, 3.0])
def test_mean_field_relu_is_exact(gain):
    mf = gf.mean_field("relu", gain, 12, input_variance=0.7)
    q_closed = gain**2 * 0.7 * (gain**2 / 2) ** np.arange(12)
    assert np.allclose(mf.variances, q_closed, rtol=1e-9)
    assert np.allclose(mf.chi, gain**2 / 2, rtol=1e-9)
    assert math.isclose(mf.per_layer_factor, gain / 2**0.5, rel_tol=1e-9)
    assert np.allclose(mf.norms, (gain / 2**0.5) ** np.arange(12, 0, -1))


def test_mean_field_follows_the_variance_recursion():
    # independent recursion with scipy's adaptive quadrature
    act, gain, q = get("sigmoid"), 1.3, 1.3**2
    mf = gf.mean_field("sigmoid", gain, 4)
    for layer in range(4):
        assert math.isclose(mf.variances[layer], q, rel_tol=1e-6)
        chi = gain**2 * _quad(lambda z: float(act.derivative(np.array([z]))[0]) ** 2, q)
        assert math.isclose(mf.chi[layer], chi, rel_tol=1e-6)
        q = gain**2 * _quad(lambda z: float(act.function(np.array([z]))[0]) ** 2, q)


def test_mean_field_limits_for_tanh():
    assert math.isclose(gf.mean_field("tanh", 0.5, 300).chi[-1], 0.25, rel_tol=1e-6)
    assert gf.mean_field("tanh", 2.0, 300).chi[-1] > 1.2  # the chaotic phase: chi > 1
    sigmoid = gf.mean_field("sigmoid", 4.0, 50)
    assert np.all(sigmoid.chi < 4.0**2 / 16)  # sigmoid' <= 1/4


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"activation": "relu", "gain": 0.0, "depth": 3}, ValueError, "gain"),
        ({"activation": "relu", "gain": 1.0, "depth": 0}, ValueError, "depth"),
        ({"activation": "relu", "gain": 1.0, "depth": 2.5}, TypeError, "depth"),
        ({"activation": "nope", "gain": 1.0, "depth": 3}, ValueError, "nope"),
        ({"activation": "relu", "gain": 1.0, "depth": 3, "input_variance": 0}, ValueError, "input"),
        ({"activation": "relu", "gain": 30.0, "depth": 500}, ValueError, "overflows"),
    ],
)
def test_mean_field_rejects_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        gf.mean_field(**kwargs)


# --------------------------------------------------------------------------- torch networks


def test_scaled_mlp_is_build_mlp_times_the_gain():
    model = gf.scaled_mlp("tanh", 3, 16, 1.7, n_in=5, n_out=4, seed=3)
    reference = build_mlp([5, 16, 16, 16, 4], "tanh", init="lecun", bias=False, seed=3)
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 4 and all(m.bias is None for m in linears)
    for mine, ref in zip(linears, reference[0::2], strict=True):
        assert mine.weight.dtype == torch.float64
        assert torch.allclose(mine.weight, 1.7 * ref.weight.double())
    assert gf.scaled_mlp("relu", 2, 8, dtype="float32")[0].weight.dtype == torch.float32


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"activation": "gelu"}, ValueError, "activation"),
        ({"activation": "relu", "gain": -1.0}, ValueError, "gain"),
        ({"activation": "relu", "depth": 0}, ValueError, "depth"),
        ({"activation": "relu", "dtype": "float16"}, ValueError, "dtype"),
        ({"activation": "relu", "width": 2.0}, TypeError, "width"),
    ],
)
def test_scaled_mlp_rejects_bad_input(kwargs, error, match):
    kwargs = {"depth": 2, **kwargs}
    with pytest.raises(error, match=match):
        gf.scaled_mlp(**kwargs)


def _reference_gradients(model, X, y, derivative):
    """delta_l, dL/dW_l and f'(z_l) with plain autograd: retain_grad and backward()."""
    X = torch.as_tensor(X, dtype=torch.float64)
    pre, h = [], X
    linears = list(model)[0::2]
    for linear in linears[:-1]:
        z = linear(h)
        z.retain_grad()
        pre.append(z)
        h = torch.tanh(z) if derivative == "tanh" else torch.relu(z)
    logits = linears[-1](h)
    torch.nn.functional.cross_entropy(logits, torch.as_tensor(y), reduction="sum").backward()
    deltas = [z.grad for z in pre]
    if derivative == "tanh":
        slopes = [1 - torch.tanh(z.detach()) ** 2 for z in pre]
    else:
        slopes = [(z.detach() > 0).double() for z in pre]
    return deltas, [m.weight.grad for m in linears], slopes


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_layer_gradients_agree_with_plain_autograd(activation):
    model = gf.scaled_mlp(activation, 5, 12, 1.3, n_in=7, n_out=4, seed=1)
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(9, 7)), rng.integers(0, 4, size=9)
    measured = gf.layer_gradients(model, X, y)
    assert all(p.grad is None for p in model.parameters())  # untouched by the measurement
    deltas, weight_grads, slopes = _reference_gradients(model, X, y, activation)
    rms = [d.pow(2).sum(1).mean().sqrt().item() for d in deltas]
    assert np.allclose(measured.grad_norms, rms, rtol=1e-12)
    assert np.allclose(measured.weight_grad_norms, [g.norm().item() for g in weight_grads])
    assert np.allclose(measured.mean_sq_derivative, [s.pow(2).mean().item() for s in slopes])
    weights = [m.weight.detach() for m in model[0::2]]
    expected = [(w**2).sum().item() / w.shape[0] for w in weights]
    assert np.allclose(measured.weight_factors, expected)


def test_predicted_norms_are_the_product_of_the_factors():
    profile = gf.gradient_profile("tanh", 6, 1.2, width=16, batch=8, seed=2)
    expected, norm = [], profile.output_grad_norm
    for layer in range(5, -1, -1):
        norm *= math.sqrt(profile.weight_factors[layer + 1] * profile.mean_sq_derivative[layer])
        expected.append(norm)
    assert np.allclose(profile.predicted_norms, expected[::-1])
    assert math.isclose(profile.per_layer_factor, gf.per_layer_factor(profile.grad_norms))


def test_a_wide_network_follows_the_mean_field_prediction():
    for activation, gain in (("relu", 2**0.5), ("tanh", 0.8), ("sigmoid", 1.0)):
        profile = gf.gradient_profile(activation, 30, gain, width=256, batch=64, seed=0)
        predicted = gf.mean_field(activation, gain, 30).per_layer_factor
        assert abs(math.log(profile.per_layer_factor / predicted)) < 0.02


def test_gradient_profile_and_gain_sweep_are_reproducible_and_agree():
    gains = [0.7, 1.0, 1.9]
    sweep = gf.gain_sweep("relu", gains, 8, width=16, batch=8, n_seeds=2)
    assert sweep.factors.shape == (2, 3)
    again = gf.gain_sweep("relu", gains, 8, width=16, batch=8, n_seeds=2)
    assert np.array_equal(sweep.factors, again.factors)
    single = gf.gradient_profile("relu", 8, 1.9, width=16, batch=8, seed=1)
    assert np.allclose(sweep.profiles[1][2].grad_norms, single.grad_norms, rtol=1e-10)
    with pytest.raises(ValueError, match="positive"):
        gf.gain_sweep("relu", [1.0, -1.0], 3)


def test_layer_gradients_rejects_bad_models_and_data():
    model = gf.scaled_mlp("relu", 2, 8, n_out=3)
    X, y = np.zeros((4, 8)), np.array([0, 1, 2, 0])
    with pytest.raises(ValueError, match="columns"):
        gf.layer_gradients(model, np.zeros((4, 5)), y)
    with pytest.raises(ValueError, match=r"\[0, 1, 2\]"):
        gf.layer_gradients(model, X, np.array([0, 1, 5, 0]))
    with pytest.raises(ValueError, match="alternate"):
        gf.layer_gradients(build_mlp([8, 8, 3], norm="batch"), X, y)
    with pytest.raises(TypeError, match="Sequential"):
        gf.layer_gradients(torch.nn.Linear(8, 3), X, y)


# ------------------------------------------------------------------------- Jacobian products


def test_chain_of_layer_jacobians_is_the_end_to_end_jacobian():
    model = gf.scaled_mlp("tanh", 4, 6, 1.4, n_in=5, n_out=3, seed=4)
    x = torch.randn(3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    jacobians = gf.layer_jacobians(model, x)
    assert [tuple(J.shape) for J in jacobians] == [(3, 6, 5)] + [(3, 6, 6)] * 3 + [(3, 3, 6)]
    full = torch.stack([torch.autograd.functional.jacobian(model, xi) for xi in x])
    assert torch.allclose(gf.chain_product(jacobians), full)
    numpy_product = gf.chain_product([J.numpy() for J in jacobians])
    assert np.allclose(numpy_product, full.numpy())


def test_chain_product_rejects_bad_input():
    with pytest.raises(ValueError, match="non-empty"):
        gf.chain_product([])
    with pytest.raises(ValueError, match="columns"):
        gf.chain_product([np.ones((3, 2)), np.ones((2, 4))])


# ------------------------------------------------------------------ spectral radius vs norm


def test_spectral_radius_and_largest_singular_value():
    theta = 0.3
    rotation = 0.9 * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    assert math.isclose(gf.spectral_radius(rotation), 0.9)  # complex eigenvalues
    assert math.isclose(gf.largest_singular_value(rotation), 0.9)  # normal: equal
    shear = np.array([[1.0, 4.0], [0.0, 1.0]])
    assert gf.spectral_radius(shear) == 1.0
    assert math.isclose(gf.largest_singular_value(shear), 2 + 5**0.5)  # (4 + sqrt(20)) / 2
    assert math.isclose(gf.largest_singular_value(np.ones((2, 3))), 6**0.5)
    with pytest.raises(ValueError, match="square"):
        gf.spectral_radius(np.ones((2, 3)))
    with pytest.raises(ValueError, match="finite"):
        gf.largest_singular_value([[np.inf]])


def test_power_norms():
    A = np.array([[0.5, 2.0], [0.0, 0.9]])
    expected = [np.linalg.norm(np.linalg.matrix_power(A, k), 2) for k in range(40)]
    assert np.allclose(gf.power_norms(A, 39), expected, rtol=1e-12)
    nilpotent = np.array([[0.0, 3.0], [0.0, 0.0]])
    assert np.allclose(gf.power_norms(nilpotent, 4), [1.0, 3.0, 0.0, 0.0, 0.0], rtol=1e-12, atol=0)
    assert gf.power_norms(A, 0).tolist() == [1.0]
    growing = gf.power_norms(2.0 * np.eye(3), 900)  # 2^900 ~ 1e271, beyond float64 if unscaled^2
    assert math.isclose(growing[900], 2.0**900, rel_tol=1e-9)
    with pytest.raises(ValueError, match="k_max"):
        gf.power_norms(A, -1)


# ---------------------------------------------------------------------------------- IEEE 754


def test_nonfinite_counts_mixes_arrays_and_tensors():
    values = [np.array([1.0, np.inf, np.nan]), torch.tensor([[np.nan, -np.inf], [0.0, 2.0]])]
    assert gf.nonfinite_counts(values) == {"finite": 3, "inf": 2, "nan": 2}
    with pytest.raises(TypeError, match="floating"):
        gf.nonfinite_counts(np.array([1, 2]))


def test_module_outputs_follow_the_forward_pass():
    model = gf.scaled_mlp("relu", 2, 4, n_in=3, n_out=2, seed=0)
    X = np.random.default_rng(0).normal(size=(5, 3))
    outputs = gf.module_outputs(model, X)
    assert len(outputs) == len(model)
    assert np.allclose(outputs[-1], model(torch.as_tensor(X)).detach().numpy())
    with pytest.raises(TypeError, match="Sequential"):
        gf.module_outputs(torch.nn.Linear(3, 2), X)


# --------------------------------------------------------------------------- gradient clipping


def _random_grads(seed, scale, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    shapes = [(7, 5), (5,), (3, 7), (3,)]
    return [scale * torch.randn(s, generator=g, dtype=dtype) for s in shapes]


def _torch_params(grads):
    params = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
    for p, g in zip(params, grads, strict=True):
        p.grad = g.clone()
    return params


@pytest.mark.parametrize("norm_type", [1.0, 2.0, 3.5, math.inf])
@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_clip_by_norm_matches_torch(norm_type, scale, dtype):
    grads = _random_grads(0, scale, dtype)
    before = [g.clone() for g in grads]
    clipped, total = gf.clip_by_norm(grads, 1.0, norm_type)
    params = _torch_params(grads)
    torch_total = torch.nn.utils.clip_grad_norm_(params, 1.0, norm_type)
    assert math.isclose(total, torch_total.item(), rel_tol=1e-5)
    for mine, p in zip(clipped, params, strict=True):
        assert mine.dtype == p.grad.numpy().dtype
        assert np.allclose(mine, p.grad.numpy(), rtol=1e-5, atol=0)
    assert all(torch.equal(g, b) for g, b in zip(grads, before, strict=True))  # read only
    assert math.isclose(gf.global_norm(grads, norm_type), total)


def test_clip_grad_norm_in_place_matches_torch_on_a_module():
    model = gf.scaled_mlp("relu", 2, 8, 2.0, n_in=4, n_out=3, bias=True, dtype="float32")
    twin = build_mlp([4, 8, 8, 3], seed=0)
    twin.load_state_dict(model.state_dict())
    X, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    for net in (model, twin):
        torch.nn.functional.cross_entropy(net(X), y).backward()
    model[0].bias.grad = None  # parameters without a gradient are skipped
    twin[0].bias.grad = None
    total = gf.clip_grad_norm_(model, 0.01)
    torch_total = torch.nn.utils.clip_grad_norm_(twin.parameters(), 0.01)
    assert math.isclose(total, torch_total.item(), rel_tol=1e-5)
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        assert (p.grad is None) == (q.grad is None)
        if p.grad is not None:
            assert torch.allclose(p.grad, q.grad, rtol=1e-5, atol=0)
    assert math.isclose(
        gf.global_norm([p.grad for p in model.parameters() if p.grad is not None]),
        0.01,
        rel_tol=1e-4,
    )


def test_clip_by_value_matches_torch():
    grads = _random_grads(1, 2.0)
    grads[0][0, 0] = float("nan")
    params = _torch_params(grads)
    torch.nn.utils.clip_grad_value_(params, 0.5)
    clipped = gf.clip_by_value(grads, 0.5)
    for mine, p in zip(clipped, params, strict=True):
        assert np.array_equal(mine, p.grad.numpy(), equal_nan=True)
    in_place = _torch_params(grads)
    gf.clip_grad_value_(in_place, 0.5)
    for p, q in zip(in_place, params, strict=True):
        assert torch.equal(p.grad.nan_to_num(7.0), q.grad.nan_to_num(7.0))


def test_nonfinite_gradients_are_handled_like_torch():
    for bad in (math.inf, math.nan):
        grads = _random_grads(2, 1.0)
        grads[1][2] = bad
        clipped, total = gf.clip_by_norm(grads, 1.0)
        params = _torch_params(grads)
        torch_total = torch.nn.utils.clip_grad_norm_(params, 1.0)
        assert (math.isinf(total) and torch_total.isinf()) or (
            math.isnan(total) and torch_total.isnan()
        )
        for mine, p in zip(clipped, params, strict=True):
            assert np.array_equal(mine, p.grad.numpy(), equal_nan=True)


def test_float64_total_norm_clips_what_torch_zeroes():
    grads = [torch.full((4,), 1e20, dtype=torch.float32)]  # squares overflow float32
    params = _torch_params(grads)
    assert torch.nn.utils.clip_grad_norm_(params, 1.0).isinf()
    assert torch.all(params[0].grad == 0)  # torch: the step is silently zeroed
    clipped, total = gf.clip_by_norm(grads, 1.0)
    assert math.isclose(total, 2e20, rel_tol=1e-6)
    assert math.isclose(float(np.linalg.norm(clipped[0])), 1.0, rel_tol=1e-5)


def test_global_norm_edge_cases():
    assert gf.global_norm([]) == 0.0
    assert gf.global_norm([np.zeros(0), np.array([3.0, 4.0])]) == 5.0
    assert gf.global_norm(np.array([-7.0, 2.0]), math.inf) == 7.0


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda g: gf.clip_by_norm(g, 0.0), ValueError, "max_norm"),
        (lambda g: gf.clip_by_norm(g, 1.0, norm_type=0.0), ValueError, "norm_type"),
        (lambda g: gf.clip_by_norm(g, 1.0, norm_type="2"), TypeError, "norm_type"),
        (lambda g: gf.clip_by_norm(g, 1.0, norm_type=True), TypeError, "norm_type"),
        (lambda g: gf.clip_by_value(g, -1.0), ValueError, "clip_value"),
        (lambda g: gf.clip_by_norm("abc", 1.0), TypeError, "grads"),
        (lambda g: gf.clip_by_norm([np.array([1, 2])], 1.0), TypeError, "floating"),
        (lambda g: gf.clip_grad_norm_([np.ones(2)], 1.0), TypeError, "torch tensor"),
        (lambda g: gf.clip_grad_norm_(5, 1.0), TypeError, "parameters"),
        (lambda g: gf.clip_grad_value_(_torch_params(g), 0.0), ValueError, "clip_value"),
    ],
)
def test_clipping_rejects_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call(_random_grads(3, 1.0))


# ---------------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def digits():
    return data.load_digits()


def _net(seed, gain=2.0, dtype="float32"):
    return gf.scaled_mlp("relu", 10, 64, gain, n_in=64, bias=True, seed=seed, dtype=dtype)


def test_train_with_clipping_matches_a_torch_sgd_loop(digits):
    X, _, y, _ = digits
    ours, theirs = _net(0, dtype="float64"), _net(0, dtype="float64")  # no float32 round-off
    run = gf.train_with_clipping(ours, X, y, lr=0.05, steps=20, batch_size=100, max_norm=5.0)
    opt = torch.optim.SGD(theirs.parameters(), lr=0.05)
    X_t, y_t = torch.tensor(X), torch.tensor(y)
    rng, order, losses = np.random.default_rng(0), [], []
    for _ in range(20):  # 20 steps cross an epoch boundary; round-off grows ~3x per step
        if not order:
            order = batches(len(y), 100, rng)[::-1]
        index = order.pop()
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(theirs(X_t[index]), y_t[index])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(theirs.parameters(), 5.0)
        opt.step()
        losses.append(loss.item())
    assert np.allclose(run.losses, losses, rtol=1e-7)
    for p, q in zip(ours.parameters(), theirs.parameters(), strict=True):
        assert torch.allclose(p, q, rtol=1e-7, atol=1e-10)
        assert p.grad is None  # cleared after training
    assert not run.diverged and len(run.grad_norms) == 20 and run.grad_norms[0] > 5.0


def test_clipping_rescues_the_diverging_network(digits):
    X, _, y, _ = digits
    plain = gf.train_with_clipping(_net(1), X, y, lr=0.05, steps=60)
    assert plain.diverged and len(plain.losses) < 10
    assert not math.isfinite(plain.losses[-1]) or plain.losses[-1] > 100 * plain.initial_loss
    for clip in ({"max_norm": 5.0}, {"clip_value": 0.1}):
        run = gf.train_with_clipping(_net(1), X, y, lr=0.05, steps=60, **clip)
        assert not run.diverged and run.losses[-10:].mean() < 0.5 * run.initial_loss


def test_train_with_clipping_rejects_bad_input(digits):
    X, _, y, _ = digits
    with pytest.raises(ValueError, match="not both"):
        gf.train_with_clipping(_net(0), X, y, lr=0.1, steps=1, max_norm=1.0, clip_value=1.0)
    with pytest.raises(ValueError, match="lr"):
        gf.train_with_clipping(_net(0), X, y, lr=0.0, steps=1)
    with pytest.raises(TypeError, match="Module"):
        gf.train_with_clipping("net", X, y, lr=0.1, steps=1)
    with pytest.raises(ValueError, match="length"):
        gf.train_with_clipping(_net(0), X, y[:-1], lr=0.1, steps=1)


def test_importing_the_module_stays_cheap():
    code = (
        "import sys, dl_course.gradient_flow; "
        "print([m for m in ('torch', 'matplotlib', 'sklearn') if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout.replace("'", '"')) == []
