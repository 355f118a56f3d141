import numpy as np
import pytest
import torch

from dl_course.autograd import Tensor, cross_entropy
from dl_course.backprop import (
    CallCounter,
    MatmulCount,
    gradient_check,
    graph_nodes,
    matmul_multiplications,
    numerical_gradient,
    relative_error,
    sigmoid_network_gradients,
    time_forward_backward,
)
from dl_course.mlp import MLP

rng = np.random.default_rng(0)


# -- numerical_gradient ------------------------------------------------------------------------


def test_numerical_gradient_of_a_quadratic_form():
    A, x = rng.normal(size=(4, 4)), rng.normal(size=4)
    numeric = numerical_gradient(lambda v: v @ A @ v, x)
    np.testing.assert_allclose(numeric, (A + A.T) @ x, rtol=1e-8, atol=1e-9)


def test_numerical_gradient_matches_torch_on_a_matrix_argument():
    X = rng.normal(size=(3, 2))

    def f(M):
        return np.sum(np.tanh(M) ** 2 * np.exp(0.3 * M))

    t = torch.tensor(X, requires_grad=True)
    torch.sum(torch.tanh(t) ** 2 * torch.exp(0.3 * t)).backward()
    numeric = numerical_gradient(f, X, eps=1e-5)
    assert numeric.shape == X.shape
    np.testing.assert_allclose(numeric, t.grad.numpy(), rtol=1e-8, atol=1e-10)


def test_numerical_gradient_error_shrinks_like_eps_squared():
    x = np.array([0.7])
    exact = np.cos(0.7)
    errors = [
        abs(numerical_gradient(lambda v: np.sin(v[0]), x, eps)[0] - exact) for eps in (1e-1, 1e-2)
    ]
    assert errors[0] / errors[1] == pytest.approx(100.0, rel=0.01)


def test_numerical_gradient_accepts_tensor_results():
    numeric = numerical_gradient(lambda v: (Tensor(v) * Tensor(v)).sum(), [1.0, 3.0])
    np.testing.assert_allclose(numeric, [2.0, 6.0], rtol=1e-9)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"f": "sin"}, TypeError, "f must be callable"),
        ({"x": [1.0, np.nan]}, ValueError, "x must contain only finite"),
        ({"x": []}, ValueError, "x must not be empty"),
        ({"eps": 0.0}, ValueError, "eps must be > 0"),
        ({"eps": "small"}, TypeError, "eps must be a real number"),
        ({"f": lambda v: v}, ValueError, "f must return a scalar"),
    ],
)
def test_numerical_gradient_rejects_bad_input(kwargs, error, match):
    args = {"f": lambda v: float(v @ v), "x": [1.0, 2.0], "eps": 1e-6} | kwargs
    with pytest.raises(error, match=match):
        numerical_gradient(**args)


# -- relative_error ----------------------------------------------------------------------------


def test_relative_error_values():
    assert relative_error([3.0, 4.0], [3.0, 4.0]) == 0.0
    assert relative_error([0.0, 0.0], [0.0, 0.0]) == 0.0
    assert relative_error([3.0, 4.0], [0.0, 0.0]) == pytest.approx(1.0)
    assert relative_error([3.0, 4.0], [3.0, 4.5]) == pytest.approx(0.5 / np.hypot(3.0, 4.5))
    # a list of arrays of different shapes counts as one long vector
    parts = [np.ones((2, 2)), np.ones(3)]
    shifted = [np.ones((2, 2)), np.array([1.0, 1.0, 1.0 + 1e-6])]
    assert relative_error(parts, shifted) == pytest.approx(1e-6 / np.sqrt(7), rel=1e-6)


def test_relative_error_rejects_mismatched_sizes():
    with pytest.raises(ValueError, match="same number of entries"):
        relative_error([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="a must contain only finite"):
        relative_error([np.inf], [1.0])


# -- gradient_check ----------------------------------------------------------------------------


def small_network(activation="tanh"):
    model = MLP((4, 5, 3), activation=activation, seed=2)
    X, y = rng.normal(size=(6, 4)), np.array([0, 1, 2, 0, 1, 2])
    return model, (lambda: cross_entropy(model(X), y))


def test_gradient_check_agrees_on_a_small_network_and_restores_parameters():
    model, loss_fn = small_network()
    before = [p.data.copy() for p in model.parameters()]
    check = gradient_check(loss_fn, model.parameters())
    assert check.relative_error < 1e-8
    for p, value, grad in zip(model.parameters(), before, check.analytic, strict=True):
        np.testing.assert_array_equal(p.data, value)
        np.testing.assert_array_equal(p.grad, grad)
    assert [g.shape for g in check.numeric] == [p.shape for p in model.parameters()]


def test_gradient_check_catches_a_wrong_derivative():
    w = Tensor(rng.normal(size=3))

    def wrong_square():
        out = Tensor(w.data**2, (w,), "square")

        def _backward():
            w.grad += out.grad * w.data  # should be 2 * w.data

        out._backward = _backward
        return out.sum()

    check = gradient_check(wrong_square, [w])
    assert check.relative_error == pytest.approx(0.5, rel=1e-6)


@pytest.mark.parametrize(
    "args, error, match",
    [
        (("loss", None), TypeError, "loss_fn must be callable"),
        ((lambda: None, []), TypeError, "non-empty list of Tensors"),
        ((lambda: None, [np.ones(2)]), TypeError, "non-empty list of Tensors"),
        ((lambda: Tensor([1.0, 2.0]), [Tensor(1.0)]), ValueError, "scalar Tensor"),
    ],
)
def test_gradient_check_rejects_bad_input(args, error, match):
    with pytest.raises(error, match=match):
        gradient_check(*args)


def test_gradient_check_rejects_a_bad_eps():
    model, loss_fn = small_network()
    with pytest.raises(ValueError, match="eps must be > 0"):
        gradient_check(loss_fn, model.parameters(), eps=-1.0)


# -- sigmoid_network_gradients -----------------------------------------------------------------


def sigmoid_problem(n=5, d=3, h=4, c=2):
    return (
        rng.normal(size=(n, d)),
        rng.uniform(size=(n, c)),
        rng.normal(size=(h, d)),
        rng.normal(size=h),
        rng.normal(size=(c, h)),
        rng.normal(size=c),
    )


@pytest.mark.parametrize("half", [False, True])
def test_sigmoid_network_deltas_match_torch(half):
    X, T, W1, b1, W2, b2 = sigmoid_problem()
    params = [torch.tensor(p, requires_grad=True) for p in (W1, b1, W2, b2)]
    z = torch.sigmoid(torch.tensor(X) @ params[0].T + params[1])
    z.retain_grad()
    a_out = z @ params[2].T + params[3]
    a_out.retain_grad()
    loss = ((torch.sigmoid(a_out) - torch.tensor(T)) ** 2).sum() * (0.5 if half else 1.0)
    loss.backward()
    ours = sigmoid_network_gradients(X, T, W1, b1, W2, b2, half=half)
    assert ours.loss == pytest.approx(loss.item(), rel=1e-13)
    np.testing.assert_allclose(ours.delta_out, a_out.grad.numpy(), rtol=1e-12, atol=1e-15)
    grads = (ours.grad_W1, ours.grad_b1, ours.grad_W2, ours.grad_b2)
    for mine, theirs in zip(grads, params, strict=True):
        np.testing.assert_allclose(mine, theirs.grad.numpy(), rtol=1e-12, atol=1e-15)
    hidden_pre = z.grad.numpy() * ours.hidden * (1 - ours.hidden)  # chain rule through sigmoid
    np.testing.assert_allclose(ours.delta_hidden, hidden_pre, rtol=1e-12, atol=1e-15)


def test_half_loss_halves_every_gradient():
    problem = sigmoid_problem()
    full = sigmoid_network_gradients(*problem)
    half = sigmoid_network_gradients(*problem, half=True)
    assert full.loss == pytest.approx(2 * half.loss, rel=1e-14)
    np.testing.assert_allclose(full.grad_W1, 2 * half.grad_W1, rtol=1e-14)
    np.testing.assert_allclose(full.delta_out, 2 * half.delta_out, rtol=1e-14)


def test_single_example_as_vectors():
    X, T, W1, b1, W2, b2 = sigmoid_problem(n=1)
    batch = sigmoid_network_gradients(X, T, W1, b1, W2, b2)
    single = sigmoid_network_gradients(X[0], T[0], W1, b1, W2, b2)
    np.testing.assert_array_equal(single.grad_W1, batch.grad_W1)
    assert single.output.shape == (1, 2)


@pytest.mark.parametrize(
    "position, value, error, match",
    [
        (0, np.ones((5, 2)), ValueError, "W1 must have shape \\(4, 2\\)"),
        (1, np.ones((5, 3)), ValueError, "T must have shape \\(5, 2\\)"),
        (3, np.ones(3), ValueError, "b1 must have shape \\(4,\\)"),
        (4, np.ones((2, 3)), ValueError, "W2 must have shape \\(2, 4\\)"),
        (5, np.ones(3), ValueError, "b2 must have shape \\(2,\\)"),
        (2, np.ones((4, 3, 1)), ValueError, "W1 must be 2-D"),
        (0, [["a"]], TypeError, "X must be an array of real numbers"),
    ],
)
def test_sigmoid_network_rejects_bad_shapes(position, value, error, match):
    problem = list(sigmoid_problem())
    problem[position] = value
    with pytest.raises(error, match=match):
        sigmoid_network_gradients(*problem)


def test_sigmoid_network_rejects_a_non_bool_half():
    with pytest.raises(TypeError, match="half must be True or False"):
        sigmoid_network_gradients(*sigmoid_problem(), half=1)


# -- time_forward_backward ---------------------------------------------------------------------


def test_time_forward_backward_times_each_pass():
    model, loss_fn = small_network("relu")
    times = time_forward_backward(loss_fn, repeats=5)
    assert times.forward.shape == times.backward.shape == (5,)
    assert np.all(times.forward > 0) and np.all(times.backward > 0)
    assert times.ratio == pytest.approx(np.median(times.backward / times.forward))
    assert np.any(model.weights[0].grad != 0)  # backward really ran


def test_time_forward_backward_limits_blas_threads():
    from threadpoolctl import threadpool_info

    seen = []

    def loss_fn():
        seen.extend(pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas")
        return (Tensor(np.ones((3, 3))) @ Tensor(np.ones(3))).sum()

    time_forward_backward(loss_fn, repeats=2, warmup=0)
    assert seen and set(seen) == {1}
    seen.clear()
    time_forward_backward(loss_fn, repeats=1, warmup=0, threads=None)
    assert seen == [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_time_forward_backward_rejects_bad_input():
    with pytest.raises(TypeError, match="loss_fn must be callable"):
        time_forward_backward(3)
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        time_forward_backward(lambda: Tensor(1.0), repeats=0)
    with pytest.raises(ValueError, match="scalar Tensor"):
        time_forward_backward(lambda: Tensor([1.0, 2.0]), repeats=1)
    with pytest.raises(ValueError, match="threads must be >= 1"):
        time_forward_backward(lambda: Tensor(1.0), threads=0)


# -- counting ----------------------------------------------------------------------------------


def test_call_counter_counts_the_forward_passes_of_a_gradient_check():
    model, loss_fn = small_network()
    counted = CallCounter(loss_fn)
    gradient_check(counted, model.parameters())
    P = sum(p.data.size for p in model.parameters())
    assert counted.calls == 2 * P + 1  # two per entry, plus one for backward
    with pytest.raises(TypeError, match="fn must be callable"):
        CallCounter(3)


@pytest.mark.parametrize(
    "a, b, expected",  # m k n multiplications, a vector counting as one row or column
    [
        ((3, 4), (4, 2), 24),
        ((4,), (4, 2), 8),
        ((3, 4), (4,), 12),
        ((4,), (4,), 4),
        ((2, 3, 4), (4, 5), 120),
    ],
)
def test_matmul_multiplications_match_torch_flop_counter(a, b, expected):
    from torch.utils.flop_counter import FlopCounterMode

    A, B = rng.normal(size=a), rng.normal(size=b)
    counts = matmul_multiplications((Tensor(A) @ Tensor(B)).sum())
    assert counts == MatmulCount(forward=expected, backward=2 * expected)
    if len(a) > 1 and len(b) > 1:  # torch's counter skips products with a vector
        tA, tB = (torch.tensor(M, requires_grad=True) for M in (A, B))
        with FlopCounterMode(display=False) as forward:
            out = (tA @ tB).sum()
        with FlopCounterMode(display=False) as backward:
            out.backward()
        # torch counts a multiply-add as 2 FLOPs
        assert counts.forward == forward.get_total_flops() // 2
        assert counts.backward == backward.get_total_flops() // 2


def test_matmul_multiplications_of_an_mlp():
    model, loss_fn = small_network()
    counts = matmul_multiplications(loss_fn())
    assert counts == MatmulCount(forward=6 * (4 * 5 + 5 * 3), backward=2 * 6 * (4 * 5 + 5 * 3))
    assert matmul_multiplications(Tensor(2.0) * Tensor(3.0)) == MatmulCount(0, 0)


# -- graph_nodes -------------------------------------------------------------------------------


def test_graph_nodes_are_in_topological_order():
    W, x, b, y = Tensor(rng.normal(size=3)), Tensor(rng.normal(size=3)), Tensor(0.1), Tensor(1.0)
    loss = ((W @ x + b).sigmoid() - y) ** 2
    nodes = graph_nodes(loss)
    assert nodes[-1].tensor is loss and nodes[-1].op == "**2"
    assert [n.index for n in nodes] == list(range(len(nodes)))
    for node in nodes:
        assert all(p < node.index for p in node.parents)
        assert (node.op == "") == (not node.parents)
    ops = [n.op for n in nodes if n.op]
    assert ops == ["@", "+", "sigmoid", "*", "+", "**2"]  # a - y is a + (y * -1)
    leaves = [n.tensor for n in nodes if not n.op]
    assert len(leaves) == 5 and all(any(t is leaf for leaf in leaves) for t in (W, x, b, y))


def test_graph_nodes_reused_value():
    x = Tensor(2.0)
    nodes = graph_nodes(x * x)
    assert len(nodes) == 2 and nodes[1].parents == (0, 0)


def test_graph_nodes_rejects_arrays():
    with pytest.raises(TypeError, match="root must be a Tensor"):
        graph_nodes(np.ones(3))
