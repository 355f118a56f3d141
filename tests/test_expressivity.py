import numpy as np
import pytest
import torch

from dl_course.expressivity import (
    ACTIVATIONS,
    bump,
    collapse_affine,
    count_linear_pieces,
    forward,
    layer_jacobian,
    numerical_rank,
    staircase_network,
    step,
    sup_error,
    tent_network,
)

W1_SOURCE = np.array([[2.0, 0.0], [0.0, 2.0], [1.0, -1.0]])


def random_stack(widths, seed=0):
    rng = np.random.default_rng(seed)
    weights = [rng.normal(size=(m, n)) for n, m in zip(widths[:-1], widths[1:], strict=True)]
    biases = [rng.normal(size=m) for m in widths[1:]]
    return weights, biases


# -- linear collapse --------------------------------------------------------------------------


def test_collapse_matches_the_closed_form_for_two_layers():
    (W1, W2), (b1, b2) = random_stack((3, 4, 2), seed=1)
    W, b = collapse_affine([W1, W2], [b1, b2])
    np.testing.assert_allclose(W, W2 @ W1, rtol=1e-14)
    np.testing.assert_allclose(b, W2 @ b1 + b2, rtol=1e-14)


def test_collapse_matches_the_sum_formula_for_five_layers():
    weights, biases = random_stack((3, 5, 4, 6, 2, 3), seed=2)
    W, b = collapse_affine(weights, biases)
    expected_W = np.linalg.multi_dot(weights[::-1])
    # b~ = sum_l (W_L ... W_{l+1}) b_l
    expected_b = np.zeros(3)
    for layer, bl in enumerate(biases):
        above = np.eye(len(bl))
        for W_k in weights[layer + 1 :]:
            above = W_k @ above  # W_L ... W_{l+1}
        expected_b += above @ bl
    np.testing.assert_allclose(W, expected_W, rtol=1e-12)
    np.testing.assert_allclose(b, expected_b, rtol=1e-12)


def test_collapsed_map_equals_the_torch_linear_stack():
    widths = (4, 7, 7, 5, 2)
    weights, biases = random_stack(widths, seed=3)
    layers = []
    for W, b in zip(weights, biases, strict=True):
        linear = torch.nn.Linear(W.shape[1], W.shape[0], dtype=torch.float64)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(W))
            linear.bias.copy_(torch.from_numpy(b))
        layers.append(linear)
    X = np.random.default_rng(4).normal(size=(50, 4))
    reference = torch.nn.Sequential(*layers)(torch.from_numpy(X)).detach().numpy()
    W, b = collapse_affine(weights, biases)
    np.testing.assert_allclose(X @ W.T + b, reference, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(forward(weights, biases, X, "identity"), reference, rtol=1e-12)


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
def test_forward_matches_torch(activation):
    weights, biases = random_stack((3, 6, 5, 2), seed=5)
    X = np.random.default_rng(6).normal(size=(20, 3))
    act = getattr(torch, activation)
    a = torch.from_numpy(X)
    for k, (W, b) in enumerate(zip(weights, biases, strict=True)):
        a = a @ torch.from_numpy(W).T + torch.from_numpy(b)
        if k < len(weights) - 1:
            a = act(a)
    np.testing.assert_allclose(
        forward(weights, biases, X, activation), a.numpy(), rtol=1e-12, atol=1e-14
    )


def test_a_nonlinearity_escapes_the_collapse():
    weights, biases = random_stack((2, 8, 8, 1), seed=7)
    X = np.random.default_rng(8).normal(size=(40, 2))
    W, b = collapse_affine(weights, biases)
    assert np.allclose(forward(weights, biases, X, "identity"), X @ W.T + b)
    assert not np.allclose(forward(weights, biases, X, "tanh"), X @ W.T + b, atol=1e-3)


@pytest.mark.parametrize(
    "weights, biases, error, match",
    [
        (np.ones((2, 2)), [np.ones(2)], TypeError, "weights must be a list"),
        ([], [], ValueError, "at least one layer"),
        ([np.ones((2, 2))], [], ValueError, "one vector per layer"),
        ([np.ones(2)], [np.ones(2)], ValueError, r"weights\[0\] must be 2-D"),
        ([np.ones((2, 3))], [np.ones(3)], ValueError, r"biases\[0\] must have length 2"),
        (
            [np.ones((2, 3)), np.ones((4, 3))],
            [np.ones(2), np.ones(4)],
            ValueError,
            r"weights\[1\] must have 2 columns",
        ),
        ([np.full((1, 1), np.nan)], [np.ones(1)], ValueError, "only finite"),
    ],
)
def test_collapse_rejects_bad_layers(weights, biases, error, match):
    with pytest.raises(error, match=match):
        collapse_affine(weights, biases)


def test_forward_rejects_bad_input():
    weights, biases = random_stack((3, 2), seed=0)
    with pytest.raises(ValueError, match="X must have 3 columns"):
        forward(weights, biases, np.ones((4, 2)))
    with pytest.raises(ValueError, match="activation must be one of"):
        forward(weights, biases, np.ones((4, 3)), activation="softplus")
    with pytest.raises(ValueError, match="X must be 2-D"):
        forward(weights, biases, np.ones(3))


# -- steps, bumps and the staircase network ----------------------------------------------------


def test_step_is_the_sigmoid_and_does_not_overflow():
    x = np.linspace(-3, 3, 13)
    expected = torch.sigmoid(torch.from_numpy(4.0 * (x - 0.5))).numpy()
    np.testing.assert_allclose(step(x, 0.5, 4.0), expected, rtol=1e-14)
    with np.errstate(over="raise", invalid="raise"):
        np.testing.assert_array_equal(step([-1.0, 1.0], 0.0, 1e6), [0.0, 1.0])
    assert step(0.0, 0.0, 3.0) == 0.5


def test_steps_tend_to_the_unit_step_away_from_the_centre():
    x = np.array([-0.1, -0.01, 0.01, 0.1])
    errors = [np.max(np.abs(step(x, 0.0, s) - (x > 0))) for s in (10.0, 100.0, 1000.0)]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-4


def test_bump_is_a_difference_of_steps_and_approximates_an_indicator():
    x = np.linspace(-1, 2, 301)
    np.testing.assert_allclose(
        bump(x, 0.2, 0.7, 30.0), step(x, 0.2, 30.0) - step(x, 0.7, 30.0), rtol=1e-15
    )
    far = (np.abs(x - 0.2) > 0.05) & (np.abs(x - 0.7) > 0.05)
    indicator = ((x > 0.2) & (x < 0.7)).astype(float)
    assert np.max(np.abs(bump(x, 0.2, 0.7, 1000.0) - indicator)[far]) < 1e-15


def test_staircase_network_parameters_match_the_construction():
    net = staircase_network(lambda x: x**2, (0.0, 3.0), n_bumps=4, steepness=50.0)
    np.testing.assert_allclose(net.nodes, [0, 1, 2, 3])
    np.testing.assert_allclose(net.edges, [-0.5, 0.5, 1.5, 2.5, 3.5])
    np.testing.assert_allclose(net.heights, [0, 1, 4, 9])
    assert net.n_hidden == 8 and net.steepness == 50.0 and net.cell_width == 1.0
    np.testing.assert_allclose(net.w, 50.0)
    # unit 2j steps up at edge j, unit 2j + 1 steps down at edge j + 1
    np.testing.assert_allclose(-net.b / net.w, [-0.5, 0.5, 0.5, 1.5, 1.5, 2.5, 2.5, 3.5])
    np.testing.assert_allclose(net.alpha, [0, 0, 1, -1, 4, -4, 9, -9])


def test_staircase_network_is_a_sum_of_bumps_and_a_torch_network():
    f = np.cos
    net = staircase_network(f, (-1.0, 2.0), n_bumps=7, steepness=40.0)
    x = np.linspace(-1.5, 2.5, 401)
    by_bumps = sum(
        c * bump(x, left, right, 40.0)
        for c, left, right in zip(net.heights, net.edges[:-1], net.edges[1:], strict=True)
    )
    np.testing.assert_allclose(net(x), by_bumps, rtol=1e-12, atol=1e-14)
    hidden = torch.nn.Linear(1, net.n_hidden, dtype=torch.float64)
    out = torch.nn.Linear(net.n_hidden, 1, bias=False, dtype=torch.float64)
    with torch.no_grad():
        hidden.weight.copy_(torch.from_numpy(net.w[:, None]))
        hidden.bias.copy_(torch.from_numpy(net.b))
        out.weight.copy_(torch.from_numpy(net.alpha[None, :]))
    model = torch.nn.Sequential(hidden, torch.nn.Sigmoid(), out)
    reference = model(torch.from_numpy(x[:, None])).detach().numpy()[:, 0]
    np.testing.assert_allclose(net(x), reference, rtol=1e-12, atol=1e-14)
    assert net.hidden(x).shape == (401, 14)


def test_staircase_is_the_infinite_steepness_limit():
    net = staircase_network(np.sin, (0.0, 3.0), n_bumps=6, steepness=1e4)
    x = np.array([0.0, 0.2, 0.61, 1.4, 2.9, 3.0])  # none on an edge
    cells = np.round(x / net.cell_width).astype(int)
    np.testing.assert_allclose(net.staircase(x), np.sin(net.nodes[cells]))
    np.testing.assert_allclose(net(x), net.staircase(x), atol=1e-12)
    # exactly on an edge both the network and the limit take the average of the neighbours
    edge = net.edges[2]
    mean = (net.heights[1] + net.heights[2]) / 2
    assert net.staircase([edge])[0] == pytest.approx(mean)
    assert net([edge])[0] == pytest.approx(mean, abs=1e-12)
    assert net.staircase([-10.0])[0] == 0.0


def lipschitz_bound(n, kappa):
    """omega(h) + 6 M sigmoid(-kappa / 2) for sin on [0, 2 pi] (L = M = 1)."""
    h = 2 * np.pi / (n - 1)
    return h + 6.0 / (1.0 + np.exp(kappa / 2))


@pytest.mark.parametrize("kappa", [10.0, 20.0, 50.0])
def test_sup_error_falls_like_one_over_n_and_obeys_the_proof_bound(kappa):
    interval = (0.0, 2 * np.pi)
    ns = np.array([16, 32, 64, 128, 256])
    errors = []
    for n in ns:
        h = 2 * np.pi / (n - 1)
        net = staircase_network(np.sin, interval, n, steepness=kappa / h)
        errors.append(sup_error(np.sin, net, interval, n_grid=20_001))
        assert errors[-1] <= lipschitz_bound(n, kappa)
    ratios = np.array(errors[:-1]) / np.array(errors[1:])
    assert np.all((ratios > 1.8) & (ratios < 2.3))
    # the leading term L h (1/2 - (1 + ln kappa) / kappa) of the error near the steepest point
    predicted = 2 * np.pi / (ns[-1] - 1) * (0.5 - (1 + np.log(kappa)) / kappa)
    assert errors[-1] == pytest.approx(predicted, rel=0.08)


def test_fixed_steepness_stops_improving():
    interval = (0.0, 2 * np.pi)
    errors = [
        sup_error(np.sin, staircase_network(np.sin, interval, n, 5.0), interval)
        for n in (8, 64, 512)
    ]
    assert errors[2] > 0.5 * errors[1] and errors[2] > 0.05


def test_sup_error_closed_form():
    interval = (0.0, 1.0)
    assert sup_error(lambda x: x, lambda x: x**2, interval, n_grid=1001) == pytest.approx(0.25)
    assert sup_error(np.sin, np.sin, interval) == 0.0


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"n_bumps": 1}, ValueError, "n_bumps must be >= 2"),
        ({"n_bumps": 3.0}, TypeError, "n_bumps must be an integer"),
        ({"steepness": 0.0}, ValueError, "steepness must be > 0"),
        ({"steepness": float("inf")}, ValueError, "steepness must be finite"),
        ({"interval": (1.0, 1.0)}, ValueError, r"interval\[1\] must be > 1.0"),
        ({"interval": (0.0,)}, ValueError, "interval must be a pair"),
        ({"interval": "ab"}, ValueError, "interval must be a pair"),
        ({"f": 3.0}, TypeError, "f must be a callable"),
        ({"f": lambda x: 1.0}, ValueError, "f must be vectorized"),
        ({"f": lambda x: np.log(x - 1)}, ValueError, "f returned NaN"),
    ],
)
def test_staircase_network_rejects_bad_input(kwargs, error, match):
    args = {"f": np.sin, "interval": (0.0, 1.0), "n_bumps": 4, "steepness": 10.0} | kwargs
    with np.errstate(invalid="ignore", divide="ignore"), pytest.raises(error, match=match):
        staircase_network(**args)


def test_step_bump_and_sup_error_reject_bad_input():
    with pytest.raises(ValueError, match="steepness must be > 0"):
        step([0.0], 0.0, -1.0)
    with pytest.raises(ValueError, match="right must be > 0.5"):
        bump([0.0], 0.5, 0.5)
    with pytest.raises(ValueError, match="x must contain only finite"):
        step([np.nan])
    with pytest.raises(ValueError, match="n_grid must be >= 2"):
        sup_error(np.sin, np.cos, (0.0, 1.0), n_grid=1)
    with pytest.raises(TypeError, match="g must be a callable"):
        sup_error(np.sin, None, (0.0, 1.0))
    net = staircase_network(np.sin, (0.0, 1.0), 3, 10.0)
    with pytest.raises(ValueError, match="x must be 1-D"):
        net(np.ones((2, 2)))


# -- the sawtooth -----------------------------------------------------------------------------


@pytest.mark.parametrize("depth", range(1, 9))
def test_tent_network_makes_a_sawtooth_with_two_to_the_depth_pieces(depth):
    weights, biases = tent_network(depth)
    assert [W.shape for W in weights] == [(2, 1)] + [(2, 2)] * (depth - 1) + [(1, 2)]
    x = np.linspace(0.0, 1.0, 2**depth * 4 + 1)  # every kink k / 2**depth is a grid point
    y = forward(weights, biases, x[:, None], "relu")[:, 0]
    assert count_linear_pieces(x, y) == 2**depth
    # closed form: the sawtooth with 2**(depth - 1) teeth
    teeth = 2 ** (depth - 1) * x
    np.testing.assert_allclose(y, 2 * np.abs(teeth - np.floor(teeth + 0.5)), atol=1e-12)


def test_tent_network_returns_independent_arrays():
    weights, _ = tent_network(3)
    weights[1][0, 0] = 99.0
    assert weights[2][0, 0] == 2.0


def test_count_linear_pieces_closed_forms():
    x = np.linspace(-2, 2, 401)
    assert count_linear_pieces(x, 3 * x + 1) == 1
    assert count_linear_pieces(x, np.abs(x)) == 2
    assert count_linear_pieces(x, np.maximum(np.abs(x) - 1, 0)) == 3
    # a kink strictly inside a grid segment shows up as an extra short piece: 3, not 2
    coarse = np.array([-1.0, 0.0, 1.0, 2.0])
    assert count_linear_pieces(coarse, np.abs(coarse - 0.5)) == 3
    on_kink = np.array([-1.0, 0.5, 2.0])
    assert count_linear_pieces(on_kink, np.abs(on_kink - 0.5)) == 2
    assert count_linear_pieces(x, x**2) == 400


def test_a_shallow_relu_net_has_at_most_one_more_piece_than_units():
    rng = np.random.default_rng(0)
    for k in (1, 3, 8):
        w, b, alpha = rng.normal(size=k), rng.normal(size=k), rng.normal(size=k)
        kinks = -b / w
        x = np.union1d(np.linspace(-5, 5, 101), kinks[np.abs(kinks) < 5])
        y = np.maximum(np.outer(x, w) + b, 0) @ alpha
        assert count_linear_pieces(x, y) <= k + 1


@pytest.mark.parametrize(
    "x, y, kwargs, match",
    [
        ([0.0, 1.0], [0.0], {}, "y must have the shape of x"),
        ([0.0], [0.0], {}, "at least two strictly increasing"),
        ([0.0, 0.0, 1.0], [0.0, 0.0, 1.0], {}, "strictly increasing"),
        ([0.0, 1.0], [0.0, 1.0], {"rtol": 0.0}, "rtol must be > 0"),
    ],
)
def test_count_linear_pieces_rejects_bad_input(x, y, kwargs, match):
    with pytest.raises(ValueError, match=match):
        count_linear_pieces(x, y, **kwargs)


def test_tent_network_rejects_bad_depth():
    with pytest.raises(ValueError, match="depth must be >= 1"):
        tent_network(0)


# -- the layer Jacobian -----------------------------------------------------------------------


def test_source_example_rank_two():
    J = layer_jacobian(W1_SOURCE, np.zeros(3), [1.0, 0.0])
    # unit 2 sits exactly at the kink (pre-activation 0) and counts as inactive
    np.testing.assert_array_equal(J, [[2, 0], [0, 0], [1, -1]])
    assert numerical_rank(J) == 2
    J_all = layer_jacobian(W1_SOURCE, np.full(3, 0.1), [1.0, 0.0])
    np.testing.assert_array_equal(J_all, W1_SOURCE)
    assert numerical_rank(J_all) == 2


def test_collapsed_constant_layer_has_rank_zero():
    J = layer_jacobian([[0.0, 0.0]], [1.0], [0.7, -3.0])
    np.testing.assert_array_equal(J, [[0.0, 0.0]])
    assert numerical_rank(J) == 0


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_layer_jacobian_matches_torch(activation):
    rng = np.random.default_rng(1)
    W, b = rng.normal(size=(4, 3)), rng.normal(size=4)
    F = torch.nn.functional
    act = {
        "identity": lambda z: z,
        "relu": torch.relu,
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "leaky_relu": F.leaky_relu,
        "prelu": lambda z: F.prelu(z, torch.tensor([0.25], dtype=torch.float64)),
        "elu": F.elu,
        "gelu": F.gelu,
        "silu": F.silu,
    }[activation]
    for x in rng.normal(size=(5, 3)):
        reference = torch.autograd.functional.jacobian(
            lambda v: act(torch.from_numpy(W) @ v + torch.from_numpy(b)), torch.from_numpy(x)
        )
        np.testing.assert_allclose(
            layer_jacobian(W, b, x, activation), reference.numpy(), rtol=1e-12, atol=1e-15
        )


def test_layer_jacobian_batches_and_ranks_by_activation_pattern():
    points = np.array([[1.0, 0.5], [-1.0, 1.0], [-1.0, -2.0], [-2.0, -1.0]])
    J = layer_jacobian(W1_SOURCE, np.zeros(3), points)
    assert J.shape == (4, 3, 2)
    for k, x in enumerate(points):
        np.testing.assert_array_equal(J[k], layer_jacobian(W1_SOURCE, np.zeros(3), x))
    # right half-plane: rank 2; one active unit: rank 1; all units off: rank 0
    np.testing.assert_array_equal(numerical_rank(J), [2, 1, 1, 0])


def test_numerical_rank_uses_the_tolerance():
    A = np.diag([1.0, 1e-3, 1e-20])
    assert numerical_rank(A) == 2
    assert numerical_rank(A, tol=1e-2) == 1
    assert numerical_rank(np.zeros((3, 2))) == 0
    assert numerical_rank(np.outer([1.0, 2.0, 3.0], [1.0, -1.0])) == 1


@pytest.mark.parametrize(
    "args, error, match",
    [
        ((W1_SOURCE, np.zeros(2), [1.0, 0.0]), ValueError, "must have length 3"),
        ((W1_SOURCE, np.zeros(3), [1.0, 0.0, 0.0]), ValueError, "x must have 2 entries"),
        ((W1_SOURCE, np.zeros(3), np.ones((2, 2, 2))), ValueError, "x must be 1-D or 2-D"),
        ((W1_SOURCE[0], np.zeros(3), [1.0, 0.0]), ValueError, "must be 2-D"),
    ],
)
def test_layer_jacobian_rejects_bad_input(args, error, match):
    with pytest.raises(error, match=match):
        layer_jacobian(*args)
    with pytest.raises(ValueError, match="activation must be one of"):
        layer_jacobian(W1_SOURCE, np.zeros(3), [1.0, 0.0], activation="softplus")


def test_numerical_rank_rejects_bad_input():
    with pytest.raises(ValueError, match="J must be a matrix"):
        numerical_rank([1.0, 2.0])
    with pytest.raises(ValueError, match="tol must be >= 0"):
        numerical_rank(np.eye(2), tol=-1.0)
    with pytest.raises(TypeError, match="J must be an array of real numbers"):
        numerical_rank([["a"]])
