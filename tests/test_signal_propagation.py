"""dl_course.theory.signal_propagation against closed forms, torch autograd and torch.optim."""

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from dl_course import data
from dl_course.theory import signal_propagation as sp

# -- the gated-orthogonal model ----------------------------------------------------------------


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8, 1.0])
def test_isometry_gain_is_one_over_sqrt_p(p):
    gain = sp.isometry_gain(p)
    assert gain == pytest.approx(1 / math.sqrt(p), rel=1e-15)
    assert (gain**2 * p) ** 50 == pytest.approx(1.0, rel=1e-12)


@pytest.mark.parametrize(("gain", "p"), [(1.0, 0.5), (math.sqrt(2), 0.5), (1.6, 0.5), (1.2, 0.8)])
def test_monte_carlo_agrees_with_the_closed_form(gain, p):
    result = sp.gated_jacobian(gain, p, depth=8, width=32, trials=400, seed=1)
    expected = (gain**2 * p) ** np.arange(1, 9)
    np.testing.assert_allclose(result.predicted, expected, rtol=1e-14)
    error = np.abs(result.msv.mean(axis=0) - expected)
    assert np.all(error < 4 * result.standard_error)  # every depth, within 4 standard errors
    assert np.all(result.standard_error < 0.1 * expected)  # ...which are small


def test_one_trial_has_no_standard_error():
    assert np.all(np.isnan(sp.gated_jacobian(1.0, 0.5, 3, 4, trials=1).standard_error))


def test_jacobian_msv_is_the_mean_of_the_last_layer():
    result = sp.gated_jacobian(1.3, 0.6, depth=5, width=16, trials=3, seed=4)
    assert sp.jacobian_msv(1.3, 0.6, 5, 16, trials=3, seed=4) == pytest.approx(
        result.msv[:, -1].mean(), rel=1e-15
    )


def test_msv_is_the_mean_squared_singular_value():
    result = sp.gated_jacobian(1.1, 0.7, depth=6, width=20, trials=2, seed=0)
    s = result.singular_values
    np.testing.assert_allclose(np.mean(s**2, axis=1), result.msv[:, -1], rtol=1e-12)
    assert s.shape == (2, 20) and np.all(np.diff(s, axis=1) <= 1e-12)


def test_without_gates_the_jacobian_is_gain_power_depth_times_orthogonal():
    result = sp.gated_jacobian(1.5, 1.0, depth=7, width=12, trials=2, seed=0)
    np.testing.assert_allclose(result.singular_values, 1.5**7, rtol=1e-12)
    np.testing.assert_allclose(result.msv, np.broadcast_to(result.predicted, (2, 7)), rtol=1e-12)
    assert np.all(result.active == 12)


def test_draws_are_coupled_across_gain_and_p():
    a = sp.gated_jacobian(1.0, 0.5, depth=4, width=10, trials=2, seed=3)
    b = sp.gated_jacobian(2.0, 0.5, depth=4, width=10, trials=2, seed=3)
    np.testing.assert_allclose(b.jacobians, 2.0**4 * a.jacobians, rtol=1e-13)
    wider = sp.gated_jacobian(1.0, 0.8, depth=4, width=10, trials=2, seed=3)
    assert np.all(wider.active >= a.active)  # a larger p opens a superset of the gates


def test_a_shallow_run_is_the_prefix_of_a_deep_one():
    deep = sp.gated_jacobian(1.2, 0.5, depth=6, width=9, trials=2, seed=5, keep_all=True)
    shallow = sp.gated_jacobian(1.2, 0.5, depth=4, width=9, trials=2, seed=5)
    np.testing.assert_array_equal(deep.history[:, 3], shallow.jacobians)
    np.testing.assert_array_equal(deep.history[:, -1], deep.jacobians)
    np.testing.assert_array_equal(deep.msv[:, :4], shallow.msv)
    assert shallow.history is None


def test_rank_is_at_most_the_fewest_open_gates():
    result = sp.gated_jacobian(math.sqrt(2), 0.5, depth=10, width=40, trials=3, seed=0)
    s = result.singular_values
    rank = np.sum(s > 1e-10 * s[:, :1], axis=1)
    assert np.all(rank <= result.active.min(axis=1))


def test_gate_counts_are_binomial():
    result = sp.gated_jacobian(1.0, 0.3, depth=50, width=64, trials=4, seed=0)
    counts = result.active.ravel()
    assert counts.mean() == pytest.approx(0.3 * 64, abs=4 * math.sqrt(64 * 0.21 / counts.size))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"p": 0.0}, r"\(0, 1\]"),
        ({"p": 1.5}, r"\(0, 1\]"),
        ({"p": -0.2}, r"\(0, 1\]"),
        ({"depth": 0}, "depth"),
        ({"gain": 0.0}, "gain"),
        ({"gain": -1.0}, "gain"),
        ({"width": 0}, "width"),
        ({"trials": 0}, "trials"),
        ({"trials": 1000, "width": 256}, "memory"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_input_is_refused(kwargs, match):
    args = {"gain": 1.0, "p": 0.5, "depth": 3, "width": 8, "trials": 1, "seed": 0} | kwargs
    with pytest.raises(ValueError, match=match):
        sp.jacobian_msv(**args)


def test_isometry_gain_refuses_bad_p():
    for p in (0.0, 1.01, float("nan")):
        with pytest.raises(ValueError, match="p"):
            sp.isometry_gain(p)
    with pytest.raises(TypeError, match="p"):
        sp.isometry_gain("half")


# -- variance map and finite networks --------------------------------------------------------


def test_variance_map_closed_forms():
    layers = np.arange(1, 11)
    np.testing.assert_allclose(
        sp.variance_map("relu", 1.7, 1.5, 10), 1.5 * 1.7**2 * (1.7**2 / 2) ** (layers - 1)
    )
    np.testing.assert_allclose(sp.variance_map("linear", 0.9, 2.0, 10), 2.0 * 0.81**layers)
    with_bias = sp.variance_map("relu", 1.0, 1.0, 3, bias_std=0.5)
    np.testing.assert_allclose(with_bias, [1.25, 0.875, 0.6875])


def test_tanh_expectation_matches_direct_integration():
    from scipy.integrate import quad

    q = 0.7
    exact = quad(lambda z: math.tanh(math.sqrt(q) * z) ** 2 * math.exp(-z * z / 2), -12, 12)[0]
    exact /= math.sqrt(2 * math.pi)
    assert sp.variance_map("tanh", 1.0, q, 2)[1] == pytest.approx(exact, rel=1e-10)


def test_tanh_fixed_point():
    for gain in (1.05, math.sqrt(2), 3.0):
        q = sp.tanh_fixed_point(gain)
        assert sp.variance_map("tanh", gain, q / gain**2, 3) == pytest.approx(q, rel=1e-9)
    gain = 1.01
    assert sp.tanh_fixed_point(gain) == pytest.approx((1 - 1 / gain**2) / 2, rel=0.05)
    assert sp.tanh_fixed_point(0.9) == 0.0 and sp.tanh_fixed_point(1.0) == 0.0
    assert sp.tanh_fixed_point(0.9, bias_std=0.1) > 0


@pytest.mark.parametrize(
    ("init", "activation"), [("he", "relu"), ("xavier", "tanh"), ("he", "tanh")]
)
def test_measured_variances_follow_the_variance_map(init, activation):
    """The mean over networks is unbiased; its spread is a few percent at width 512, depth 6."""
    measured = sp.preactivation_variances(init, activation, 6, 512, networks=16, n_inputs=32)
    gain = math.sqrt(2) if init == "he" else 1.0
    predicted = sp.variance_map(activation, gain, 1.0, 6)
    np.testing.assert_allclose(measured.mean(axis=0), predicted, rtol=0.15)


def test_torch_default_shrinks_relu_variance_sixfold_per_layer():
    measured = sp.preactivation_variances("torch", "relu", 10, 256, networks=8).mean(axis=0)
    ratios = measured[1:] / measured[:-1]
    assert np.exp(np.mean(np.log(ratios))) == pytest.approx(1 / 6, rel=0.1)
    assert measured[0] == pytest.approx(1 / 3, rel=0.05)


def test_preactivation_variances_refuses_bad_input():
    with pytest.raises(ValueError, match="init"):
        sp.preactivation_variances("glorot", "relu", 3, 8)
    with pytest.raises(ValueError, match="activation"):
        sp.preactivation_variances("he", "gelu", 3, 8)
    with pytest.raises(ValueError, match="n_inputs"):
        sp.preactivation_variances("he", "relu", 3, 8, n_inputs=0)


def test_input_dependence_of_one_linear_layer_is_the_closed_form():
    rng = np.random.default_rng(0)
    half = rng.normal(size=(50, 4))
    x = np.vstack([half, -half])  # exactly zero mean over the inputs
    linear = torch.nn.Linear(4, 3)
    model = torch.nn.Sequential(linear, torch.nn.ReLU(), torch.nn.Linear(3, 2))
    W, b = linear.weight.detach().double().numpy(), linear.bias.detach().double().numpy()
    z = x @ W.T + b
    variance = np.mean(z.var(axis=0, ddof=1))
    expected = variance / np.mean(z**2)
    share = sp.input_dependence(model, x)
    assert share.shape == (2,) and share[0] == pytest.approx(expected, rel=1e-12)
    assert model[0].weight.dtype == torch.float32  # the model itself is untouched
    constant = torch.nn.Sequential(torch.nn.Linear(4, 3))
    with torch.no_grad():
        constant[0].weight.zero_()
    assert sp.input_dependence(constant, x)[0] == 0.0  # forgets the input entirely


def test_input_dependence_refuses_bad_input():
    with pytest.raises(TypeError, match="Sequential"):
        sp.input_dependence(torch.nn.Linear(2, 2), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="at least 2"):
        sp.input_dependence(torch.nn.Sequential(torch.nn.Linear(2, 2)), np.zeros((1, 2)))
    with pytest.raises(ValueError, match="nn.Linear"):
        sp.input_dependence(torch.nn.Sequential(torch.nn.ReLU()), np.zeros((3, 2)))


# -- Jacobians of real networks ----------------------------------------------------------------


@pytest.mark.parametrize("activation", ["relu", "tanh", "linear"])
@pytest.mark.parametrize("weights", ["orthogonal", "gaussian"])
def test_network_jacobian_equals_torch_autograd(activation, weights):
    result = sp.network_jacobian(activation, weights, 1.3, 4, 7, trials=2, keep_weights=True)
    phi = {"relu": torch.relu, "tanh": torch.tanh, "linear": lambda t: t}[activation]
    for t in range(2):
        layers = torch.from_numpy(result.layers[t])

        def net(x, layers=layers):
            for W in layers:
                x = phi(W @ x)
            return x

        expected = torch.autograd.functional.jacobian(net, torch.from_numpy(result.inputs[t]))
        np.testing.assert_allclose(result.jacobians[t], expected.numpy(), rtol=1e-12, atol=1e-14)


def test_orthogonal_linear_network_is_an_exact_isometry_up_to_the_gain():
    result = sp.network_jacobian("linear", "orthogonal", 1.1, 20, 30, trials=2)
    np.testing.assert_allclose(result.singular_values, 1.1**20, rtol=1e-10)
    assert sp.spectrum_variance("linear", "orthogonal", 20, 1.0) == 0.0


def test_gaussian_linear_spectrum_variance_is_the_depth():
    """Products of L Gaussian matrices: E[lambda^2] = L + 1 (Fuss-Catalan), so Var = L."""
    depth = 4
    assert sp.spectrum_variance("linear", "gaussian", depth, 1.0) == depth
    result = sp.network_jacobian("linear", "gaussian", 1.0, depth, 200, trials=8)
    lam = result.singular_values**2
    assert lam.mean() == pytest.approx(1.0, abs=0.1)
    assert lam.var() == pytest.approx(depth, rel=0.2)


def test_relu_spectrum_variance_and_tanh_limit():
    assert sp.spectrum_variance("relu", "orthogonal", 10, 1.0) == pytest.approx(10.0)
    assert sp.spectrum_variance("relu", "gaussian", 10, 1.0) == pytest.approx(20.0)
    small = sp.spectrum_variance("tanh", "orthogonal", 10, 1e-4)
    assert 0 < small < 1e-3
    assert sp.spectrum_variance("tanh", "gaussian", 10, 1e-4) == pytest.approx(10.0, rel=1e-3)


def test_network_jacobian_default_input_variance():
    assert sp.network_jacobian("tanh", "orthogonal", 1.2, 2, 4).q0 == pytest.approx(
        sp.tanh_fixed_point(1.2)
    )
    assert sp.network_jacobian("relu", "gaussian", 1.2, 2, 4).q0 == 1.0
    with pytest.raises(ValueError, match="weights"):
        sp.network_jacobian("relu", "uniform", 1.0, 2, 4)
    with pytest.raises(ValueError, match="q0"):
        sp.network_jacobian("tanh", "orthogonal", 1.0, 2, 4)  # q* = 0: no valid default


# -- training --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    X, _, y, _ = data.load_digits()
    return (X - X.mean(axis=0)) / (X.std(axis=0) + 0.1), y


def test_one_sgd_step_equals_torch_optim(digits):
    X, y = digits
    X, y = X[:200], y[:200]
    ours = sp.train_deep_mlps(X, y, depth=2, gain=1.4, width=16, seeds=2, steps=1, lr=0.1, seed=3)
    generator = torch.Generator().manual_seed(3)
    sizes = [64, 16, 16, 10]
    stacks = sp._stacked_weights(sizes, 2, 1.4, "orthogonal", generator)
    index = np.random.default_rng(3).integers(0, 200, size=(2, 64))
    X_t, y_t = torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y)
    for s in range(2):
        layers = []
        for W in stacks:
            linear = torch.nn.Linear(W.shape[2], W.shape[1])
            with torch.no_grad():
                linear.weight.copy_(W[s])
                linear.bias.zero_()
            layers += [linear, torch.nn.ReLU()]
        model = torch.nn.Sequential(*layers[:-1])
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        loss = torch.nn.functional.cross_entropy(model(X_t[index[s]]), y_t[index[s]])
        assert ours.batch_loss[s, 0] == pytest.approx(loss.item(), rel=1e-5)
        loss.backward()
        opt.step()
        with torch.no_grad():
            full = torch.nn.functional.cross_entropy(model(X_t), y_t).item()
        assert ours.final_loss[s] == pytest.approx(full, rel=1e-5)


def test_training_is_seeded_learns_and_reports_divergence(digits):
    X, y = digits
    a = sp.train_deep_mlps(X, y, depth=2, gain=math.sqrt(2), steps=40, seeds=3, lr=0.1)
    b = sp.train_deep_mlps(X, y, depth=2, gain=math.sqrt(2), steps=40, seeds=3, lr=0.1)
    np.testing.assert_array_equal(a.final_loss, b.final_loss)
    assert a.batch_loss.shape == (3, 40)
    assert np.all(a.final_loss < math.log(10) - 0.5) and not a.diverged.any()
    wild = sp.train_deep_mlps(X, y, depth=12, gain=4.0, steps=20, seeds=2, lr=0.5)
    assert wild.diverged.all() and np.all(wild.final_loss == np.inf)
    before = torch.random.get_rng_state()
    sp.train_deep_mlps(X, y, depth=1, gain=1.0, steps=2, seeds=1, weights="gaussian")
    assert torch.equal(before, torch.random.get_rng_state())


def test_training_refuses_bad_input(digits):
    X, y = digits
    with pytest.raises(ValueError, match="depth"):
        sp.train_deep_mlps(X, y, depth=0, gain=1.0)
    with pytest.raises(ValueError, match="gain"):
        sp.train_deep_mlps(X, y, depth=2, gain=0.0)
    with pytest.raises(ValueError, match="length"):
        sp.train_deep_mlps(X, y[:-1], depth=2, gain=1.0)


def test_import_does_not_load_torch():
    code = "import sys, dl_course.theory.signal_propagation; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
