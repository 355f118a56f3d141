import math
import subprocess
import sys
import warnings

import mpmath
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dl_course import activations as A

# A grid with negative, zero, tiny and large inputs (|x| up to 50).
GRID = np.unique(
    np.concatenate(
        [np.linspace(-50.0, 50.0, 2001), [0.0, -1e-12, 1e-12, -1e-300, 1e-300, -0.5, 0.5]]
    )
)

# torch references in float64, with the same hyperparameters as the registry's defaults.
TORCH = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": F.relu,
    "leaky_relu": lambda t: F.leaky_relu(t, 0.01),
    "prelu": lambda t: F.prelu(t, torch.tensor([A.PRELU_INIT], dtype=torch.float64)),
    "elu": lambda t: F.elu(t, 1.0),
    "gelu": F.gelu,
    "silu": F.silu,
    "identity": lambda t: t * 1.0,
}


def torch_value_and_grad(fn, x):
    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    out = fn(t)
    out.sum().backward()
    return out.detach().numpy(), t.grad.numpy()


def test_every_activation_has_a_torch_reference():
    assert set(TORCH) == set(A.ACTIVATIONS)


@pytest.mark.parametrize("name", sorted(A.ACTIVATIONS))
def test_value_and_derivative_match_torch_autograd(name):
    act = A.get(name)
    value, grad = torch_value_and_grad(TORCH[name], GRID)
    np.testing.assert_allclose(act.function(GRID), value, rtol=1e-13, atol=1e-15)
    # torch's sigmoid and tanh backward (s (1 - s), 1 - t^2) lose relative accuracy in the
    # tails, where both are below 1e-15: hence the absolute tolerance.
    np.testing.assert_allclose(act.derivative(GRID), grad, rtol=1e-10, atol=1e-15)
    assert act.function(GRID).dtype == np.float64


@pytest.mark.parametrize("alpha", [0.0, 0.2, 1.0, 3.0])
def test_slopes_other_than_the_default(alpha):
    a = torch.tensor([alpha], dtype=torch.float64)
    for mine, mine_d, ref in [
        (A.leaky_relu, A.leaky_relu_derivative, lambda t: F.leaky_relu(t, alpha)),
        (A.prelu, A.prelu_derivative, lambda t: F.prelu(t, a)),
        (A.elu, A.elu_derivative, lambda t: F.elu(t, alpha)),
    ]:
        value, grad = torch_value_and_grad(ref, GRID)
        np.testing.assert_allclose(mine(GRID, alpha), value, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(mine_d(GRID, alpha), grad, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("alpha", [0.25, -0.5, 1.7])
def test_prelu_derivative_with_respect_to_alpha(alpha):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(scale=3.0, size=50), [0.0]])
    upstream = rng.normal(size=x.shape)
    a = torch.tensor([alpha], dtype=torch.float64, requires_grad=True)
    out = F.prelu(torch.tensor(x), a)
    (out * torch.tensor(upstream)).sum().backward()
    mine = np.sum(A.prelu_alpha_derivative(x, alpha) * upstream)
    assert mine == pytest.approx(a.grad.item(), rel=1e-12)
    np.testing.assert_array_equal(A.prelu_alpha_derivative([-2.0, 0.0, 3.0], alpha), [-2, 0, 0])


def test_gelu_tanh_approximation_matches_torch_and_is_close_to_exact():
    value, grad = torch_value_and_grad(lambda t: F.gelu(t, approximate="tanh"), GRID)
    np.testing.assert_allclose(A.gelu(GRID, approximate="tanh"), value, rtol=1e-13, atol=1e-15)
    # torch's backward of the tanh form cancels in the left tail (|error| ~ 1e-14 near x = -8);
    # ours keeps full relative accuracy there (checked against mpmath below)
    np.testing.assert_allclose(
        A.gelu_derivative(GRID, approximate="tanh"), grad, rtol=1e-10, atol=2e-14
    )
    x = np.linspace(-6, 6, 12001)
    gap = np.max(np.abs(A.gelu(x) - A.gelu(x, approximate="tanh")))
    assert 4e-4 < gap < 5e-4  # the docstring's claim, and the two are not the same function


def test_relu_derivative_at_zero_is_zero_like_pytorch():
    assert A.relu_derivative(0.0) == 0.0
    assert A.relu_derivative(-0.0) == 0.0
    assert A.relu_derivative(1e-300) == 1.0
    _, grad = torch_value_and_grad(F.relu, np.array([0.0]))
    assert grad[0] == 0.0
    assert A.get("relu").derivative_at_zero == 0.0


@pytest.mark.parametrize("name", sorted(A.ACTIVATIONS))
def test_registry_properties_agree_with_the_functions(name):
    act = A.get(name)
    assert act.name == name
    assert act.derivative(0.0) == act.derivative_at_zero
    assert act.saturation in A.SATURATION_TYPES
    left, right = act.derivative(np.array([-40.0, 40.0]))
    flat_left, flat_right = abs(left) < 1e-12, abs(right) < 1e-12
    expected = {
        "saturating": (True, True),
        "half-saturating": (True, False),
        "non-saturating": (False, False),
    }[act.saturation]
    assert (flat_left, flat_right) == expected
    negative = act.derivative(np.linspace(-10.0, -1e-9, 1000))
    assert act.dying == bool(np.all(negative == 0.0))
    np.testing.assert_array_equal(act(GRID), act.function(GRID))


def test_derivatives_agree_with_central_differences():
    x = np.linspace(-6.0, 6.0, 241) + 0.013  # avoid the kink at 0
    h = 1e-6
    for act in A.ACTIVATIONS.values():
        numeric = (act.function(x + h) - act.function(x - h)) / (2 * h)
        np.testing.assert_allclose(act.derivative(x), numeric, atol=1e-8, err_msg=act.name)


def test_derivative_tails_keep_full_relative_accuracy():
    mpmath.mp.dps = 40
    for x in (-45.0, -30.0, 30.0, 45.0):
        s = 1 / (1 + mpmath.exp(-x))
        assert A.sigmoid_derivative(x) == pytest.approx(float(s * (1 - s)), rel=1e-13)
        assert A.tanh_derivative(x) == pytest.approx(float(mpmath.sech(x) ** 2), rel=1e-13)
        silu_d = s * (1 + x * (1 - s))
        assert A.silu_derivative(x) == pytest.approx(float(silu_d), rel=1e-12)
    for x in (-8.0, -20.0, -35.0):  # the left tail, where 1 + erf(x / sqrt 2) cancels
        assert A.gelu(x) == pytest.approx(float(x * mpmath.ncdf(x)), rel=1e-12)
        gd = mpmath.ncdf(x) + x * mpmath.npdf(x)
        assert A.gelu_derivative(x) == pytest.approx(float(gd), rel=1e-10)
        u = mpmath.sqrt(2 / mpmath.pi) * (x + 0.044715 * x**3)
        tanh_form = x * (1 + mpmath.tanh(u)) / 2
        assert A.gelu(x, approximate="tanh") == pytest.approx(float(tanh_form), rel=1e-12)
    for x in (-4.0, -8.0, -9.0):
        u = mpmath.sqrt(2 / mpmath.pi) * (x + 0.044715 * x**3)
        du = mpmath.sqrt(2 / mpmath.pi) * (1 + 3 * 0.044715 * x**2)
        tanh_d = (1 + mpmath.tanh(u)) / 2 + x * mpmath.sech(u) ** 2 * du / 2
        assert A.gelu_derivative(x, approximate="tanh") == pytest.approx(float(tanh_d), rel=1e-10)


def test_no_overflow_or_invalid_values_for_large_inputs():
    x = np.array([-1e3, -745.0, -50.0, -1.0, 0.0, 1.0, 50.0, 745.0, 1e3])
    functions = [
        A.sigmoid,
        A.sigmoid_derivative,
        A.tanh,
        A.tanh_derivative,
        A.relu,
        A.relu_derivative,
        A.leaky_relu,
        A.leaky_relu_derivative,
        A.elu,
        A.elu_derivative,
        A.gelu,
        A.gelu_derivative,
        A.silu,
        A.silu_derivative,
        lambda v: A.gelu(v, approximate="tanh"),
        lambda v: A.gelu_derivative(v, approximate="tanh"),
        lambda v: A.prelu(v, 0.3),
        lambda v: A.prelu_derivative(v, 0.3),
    ]
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        for fn in functions:
            assert np.all(np.isfinite(fn(x)))


def test_sigmoid_derivative_is_at_most_a_quarter():
    z = np.linspace(-20, 20, 400_001)
    d = A.sigmoid_derivative(z)
    assert d.max() == 0.25 and z[d.argmax()] == 0.0
    assert np.all(d <= 0.25)
    np.testing.assert_allclose(d, A.sigmoid(z) * (1 - A.sigmoid(z)), atol=1e-16)


def test_known_identities_and_landmarks():
    x = np.linspace(-8, 8, 1601)
    np.testing.assert_allclose(A.tanh(x), 2 * A.sigmoid(2 * x) - 1, atol=1e-15)
    np.testing.assert_allclose(A.silu(x), x * A.sigmoid(x), atol=1e-15)
    assert A.sigmoid(0.0) == 0.5 and A.sigmoid(-50.0) > 0
    # the negative dips the chapter quotes
    fine = np.linspace(-3, 0, 300_001)
    assert fine[np.argmin(A.silu(fine))] == pytest.approx(-1.2785, abs=1e-3)
    assert A.silu(fine).min() == pytest.approx(-0.2785, abs=1e-4)
    crossing = fine[np.argmin(np.abs(A.gelu_derivative(fine)))]
    assert crossing == pytest.approx(-0.7518, abs=1e-3)
    assert A.elu(-50.0) == pytest.approx(-1.0)
    assert A.elu(-50.0, alpha=2.0) == pytest.approx(-2.0)


def test_scalar_and_nd_inputs_keep_their_shape():
    assert A.relu(3.0).shape == ()
    assert A.sigmoid([[0.0, 1.0], [2.0, 3.0]]).shape == (2, 2)
    assert A.gelu_derivative(np.zeros((2, 3, 4))).shape == (2, 3, 4)


def test_names_per_backend_come_from_the_registry():
    assert A.names() == tuple(A.ACTIVATIONS) == A.names("numpy")
    assert A.names("engine") == ("sigmoid", "tanh", "relu")
    assert set(A.names("torch")) == set(A.ACTIVATIONS) - {"prelu"}
    for name, act in A.ACTIVATIONS.items():
        assert act.backends[0] == "numpy"
        assert ("engine" in act.backends) == act.engine == (name in A.names("engine"))
        assert ("torch" in act.backends) == (act.torch_module is not None)
    with pytest.raises(ValueError, match="backend must be one of"):
        A.names("jax")


def test_check_name_lists_what_the_backend_allows():
    assert A.check_name("gelu") == "gelu"
    assert A.check_name("identity", "torch") == "identity"
    with pytest.raises(
        ValueError, match=r"activation must be one of \('sigmoid', 'tanh', 'relu'\)"
    ):
        A.check_name("gelu", "engine")
    with pytest.raises(ValueError, match="act must be one of .*got 'swish'"):
        A.check_name("swish", argname="act")  # aliases are for get() only
    with pytest.raises(ValueError, match="got 3"):
        A.check_name(3)


@pytest.mark.parametrize("name", A.names("engine"))
def test_engine_entries_are_autograd_methods_with_the_same_values_and_derivatives(name):
    from dl_course.autograd import Tensor

    t = Tensor(GRID.copy())
    out = getattr(t, name)()
    out.sum().backward()
    np.testing.assert_allclose(out.data, A.get(name).function(GRID), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(t.grad, A.get(name).derivative(GRID), rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("name", A.names("torch"))
def test_torch_modules_match_the_registry_defaults(name):
    module = getattr(torch.nn, A.get(name).torch_module)()
    value, grad = torch_value_and_grad(module, GRID)
    np.testing.assert_allclose(value, A.get(name).function(GRID), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(grad, A.get(name).derivative(GRID), rtol=1e-10, atol=1e-15)


def test_import_is_free_of_torch_matplotlib_and_sklearn():
    heavy = ("torch", "matplotlib", "sklearn")
    code = f"import sys, dl_course.activations; print([m for m in {heavy} if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_get_accepts_aliases_and_lists_valid_names():
    assert A.get("swish") is A.ACTIVATIONS["silu"]
    assert A.get("ReLU") is A.ACTIVATIONS["relu"]
    with pytest.raises(ValueError, match="unknown activation 'softplus'.*valid names are:.*gelu"):
        A.get("softplus")
    with pytest.raises(TypeError, match="name must be a string"):
        A.get(3)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: A.relu([1.0, float("nan")]), ValueError, "x must contain only finite"),
        (lambda: A.sigmoid(["a"]), TypeError, "x must be an array of real numbers"),
        (lambda: A.tanh([]), ValueError, "x must not be empty"),
        (lambda: A.leaky_relu(1.0, alpha=-0.1), ValueError, "alpha must be >= 0"),
        (lambda: A.elu(1.0, alpha="1"), TypeError, "alpha must be a real number"),
        (lambda: A.prelu(1.0, float("inf")), ValueError, "alpha must be finite"),
        (lambda: A.gelu(1.0, approximate="fast"), ValueError, "approximate must be"),
        (lambda: A.gelu_derivative(1.0, approximate=None), ValueError, "approximate must be"),
    ],
)
def test_bad_input_is_rejected(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_prelu_accepts_any_real_slope():
    np.testing.assert_array_equal(A.prelu([-2.0, 3.0], -0.5), [1.0, 3.0])


# ----------------------------------------------------------------------------- maxout


def test_relu_and_leaky_relu_are_maxouts():
    x = GRID[:, None]
    relu_value, winners = A.maxout(x, W=[[0.0], [1.0]], b=[0.0, 0.0])
    np.testing.assert_array_equal(relu_value, A.relu(GRID))
    np.testing.assert_array_equal(winners, (GRID > 0).astype(int))  # tie at 0 -> piece 0
    leaky_value, _ = A.maxout(x, W=[[0.01], [1.0]], b=[0.0, 0.0])
    np.testing.assert_allclose(leaky_value, A.leaky_relu(GRID), rtol=1e-15)
    grad_x, _, _ = A.maxout_gradients(x, W=[[0.0], [1.0]], b=[0.0, 0.0])
    np.testing.assert_array_equal(grad_x[:, 0], A.relu_derivative(GRID))


def test_maxout_matches_torch_autograd():
    rng = np.random.default_rng(1)
    n, k, d = 40, 4, 3
    x, W, b = rng.normal(size=(n, d)), rng.normal(size=(k, d)), rng.normal(size=k)
    values, winners = A.maxout(x, W, b)
    grad_x, grad_W, grad_b = A.maxout_gradients(x, W, b)

    xt = torch.tensor(x, requires_grad=True)
    Wt = torch.tensor(W, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)
    out, idx = (xt @ Wt.T + bt).max(dim=1)
    out.sum().backward()
    np.testing.assert_allclose(values, out.detach().numpy(), rtol=1e-14)
    np.testing.assert_array_equal(winners, idx.numpy())
    np.testing.assert_allclose(grad_x, xt.grad.numpy(), rtol=1e-14)  # row i: only example i
    np.testing.assert_allclose(grad_W.sum(axis=0), Wt.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(grad_b.sum(axis=0), bt.grad.numpy(), rtol=1e-14)
    assert grad_W.shape == (n, k, d) and grad_b.shape == (n, k)


def test_maxout_single_input_and_ties():
    value, winner = A.maxout([1.0, 2.0], W=[[1.0, 0.0], [0.0, 0.5], [2.0, 0.0]], b=[0.0, 0.0, 0.0])
    assert value.shape == () and winner.shape == ()
    assert value == 2.0 and winner == 2
    value, winner = A.maxout([1.0], W=[[1.0], [1.0]], b=[0.0, 0.0])
    assert winner == 0  # ties go to the lowest index
    gx, gW, gb = A.maxout_gradients([1.0, 2.0], W=[[1.0, 0.0], [0.0, 2.0]], b=[0.0, 0.0])
    np.testing.assert_array_equal(gx, [0.0, 2.0])
    np.testing.assert_array_equal(gW, [[0.0, 0.0], [1.0, 2.0]])
    np.testing.assert_array_equal(gb, [0.0, 1.0])


@pytest.mark.parametrize(
    "x, W, b, match",
    [
        ([[1.0, 2.0]], [[1.0], [2.0]], [0.0, 0.0], "x must have 1 features"),
        ([[1.0]], [[1.0], [2.0]], [0.0], "b must have length 2"),
        ([1.0], [1.0, 2.0], [0.0], "W must be 2-D"),
        (np.zeros((2, 2, 1)), [[1.0]], [0.0], "x must be 1-D or 2-D"),
    ],
)
def test_maxout_rejects_bad_shapes(x, W, b, match):
    with pytest.raises(ValueError, match=match):
        A.maxout(x, W, b)
    with pytest.raises(ValueError, match=match):
        A.maxout_gradients(x, W, b)


# ----------------------------------------------------------------------------- gradient flow


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "relu", "gelu"])
def test_backprop_chain_matches_torch_autograd(name):
    rng = np.random.default_rng(2)
    trials, depth, width = 3, 5, 6
    x = rng.normal(size=(trials, width))
    weights = rng.normal(size=(trials, depth, width, width)) / math.sqrt(width)
    readout = rng.normal(size=(trials, width))
    pre, grads = A.backprop_chain(name, x, weights, readout)

    h = torch.tensor(x, requires_grad=True)  # so that every z_l is part of the graph
    zs = []
    for layer in range(depth):
        z = torch.einsum("tij,tj->ti", torch.tensor(weights[:, layer]), h)
        z.retain_grad()
        zs.append(z)
        h = TORCH[name](z)
    (torch.tensor(readout) * h).sum().backward()
    for layer, z in enumerate(zs):
        np.testing.assert_allclose(pre[:, layer], z.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(grads[:, layer], z.grad.numpy(), rtol=1e-10, atol=1e-300)


def test_backprop_chain_rejects_bad_shapes():
    x, W, r = np.zeros((2, 3)), np.zeros((2, 4, 3, 3)), np.ones((2, 3))
    with pytest.raises(ValueError, match=r"weights must have shape \(2, depth, 3, 3\)"):
        A.backprop_chain("relu", x, W[:, :, :2], r)
    with pytest.raises(ValueError, match="readout must have shape"):
        A.backprop_chain("relu", x, W, r[:, :2])
    with pytest.raises(ValueError, match="unknown activation"):
        A.backprop_chain("step", x, W, r)


def test_gradient_flow_is_seeded_and_shares_weights_across_activations():
    a = A.gradient_flow("relu", 6, width=8, trials=3, seed=4)
    b = A.gradient_flow("relu", 6, width=8, trials=3, seed=4)
    c = A.gradient_flow("relu", 6, width=8, trials=3, seed=5)
    np.testing.assert_array_equal(a.grad_norms, b.grad_norms)
    assert not np.array_equal(a.grad_norms, c.grad_norms)
    assert a.grad_norms.shape == (3, 6) and a.derivatives.shape == (3, 6, 8)
    assert a.depth == 6 and a.activation == "relu"
    # same seed -> same weights: the first layer's pre-activations z_1 = W_1 x agree, so
    # ReLU' (1 where z_1 > 0) and ELU' (1 where z_1 > 0, exp(z_1) < 1 elsewhere) flag the
    # same units
    elu = A.gradient_flow("elu", 6, width=8, trials=3, seed=4)
    np.testing.assert_array_equal(a.derivatives[:, 0] == 1.0, elu.derivatives[:, 0] == 1.0)
    assert 0 < np.mean(a.derivatives[:, 0]) < 1


def test_gradient_flow_sigmoid_decays_at_least_fourfold_per_layer():
    flow = A.gradient_flow("sigmoid", 30, width=64, trials=16, seed=0)
    assert flow.log_slope < math.log(0.25)
    assert flow.log_slope == pytest.approx(flow.predicted_log_slope, rel=0.05)
    # the layer-by-layer prediction tracks the measured log-norms to within 5%
    np.testing.assert_allclose(np.log(flow.predicted_norms), flow.mean_log_norms, rtol=0.05)
    assert np.all(flow.derivatives <= 0.25)
    # the first layer's gradient is tiny, the last layer's is not
    assert np.median(flow.grad_norms[:, 0]) < 1e-15 < 0.05 < np.median(flow.grad_norms[:, -1])


def test_gradient_flow_gain_scales_a_linear_chain_exactly():
    identity = A.Activation(
        "identity", lambda v: A.leaky_relu(v, 1.0), lambda v: A.leaky_relu_derivative(v, 1.0),
        1.0, "non-saturating", False,
    )  # fmt: skip
    base = A.gradient_flow(identity, 5, width=10, trials=4, gain=1.0, seed=1)
    double = A.gradient_flow(identity, 5, width=10, trials=4, gain=2.0, seed=1)
    # layer l has 5 - l weight matrices above it (0-based column l)
    factors = 2.0 ** np.arange(4, -1, -1)
    np.testing.assert_allclose(double.grad_norms, base.grad_norms * factors, rtol=1e-12)
    assert double.log_slope - base.log_slope == pytest.approx(math.log(2.0), rel=1e-9)
    assert double.predicted_log_slope == pytest.approx(math.log(2.0), rel=1e-12)
    np.testing.assert_allclose(double.predicted_norms, factors, rtol=1e-12)


def test_gradient_flow_exact_zero_gradient_has_no_log_slope():
    flow = A.gradient_flow("relu", 20, width=1, trials=2, seed=0)
    assert np.any(flow.grad_norms == 0.0)
    assert np.isneginf(flow.mean_log_norms).any()
    with pytest.raises(ValueError, match="exactly zero"):
        _ = flow.log_slope
    with pytest.raises(ValueError, match="depth >= 2"):
        _ = A.gradient_flow("tanh", 1, width=4, trials=2).log_slope


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"depth": 0}, ValueError, "depth must be >= 1"),
        ({"depth": 3, "width": 0}, ValueError, "width must be >= 1"),
        ({"depth": 3, "gain": 0.0}, ValueError, "gain must be > 0"),
        ({"depth": 3, "trials": 2.5}, TypeError, "trials must be an integer"),
        ({"depth": 3, "seed": -1}, ValueError, "seed must be >= 0"),
        ({"depth": 1000, "width": 200, "trials": 1}, ValueError, "at most 20,000,000"),
    ],
)
def test_gradient_flow_rejects_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        A.gradient_flow("tanh", **kwargs)
