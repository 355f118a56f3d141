import numpy as np
import pytest
import torch

from dl_course.autograd import Tensor, cross_entropy, topological_order, unbroadcast

rng = np.random.default_rng(0)


def compare(fn, *shapes, torch_fn=None):
    """Gradients of sum(fn(*inputs) * weights) from the engine and from torch.autograd."""
    arrays = [rng.normal(size=s) for s in shapes]
    ours = [Tensor(a) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*ours)
    weights = rng.normal(size=out.shape)
    (out * weights).sum().backward()
    ref = (torch_fn or fn)(*theirs)
    (ref * torch.tensor(weights)).sum().backward()
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=1e-12, atol=1e-12)
    for t, r in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(t.grad, r.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "fn, shapes",
    [
        (lambda a, b: a + b, [(3, 4), (4,)]),
        (lambda a, b: a + b, [(3, 1), (1, 4)]),
        (lambda a, b: a - b, [(2, 3), (2, 3)]),
        (lambda a, b: a * b, [(5, 1, 3), (4, 1)]),
        (lambda a, b: a / (b * b + 1.0), [(3, 3), (3,)]),
        (lambda a, b: a @ b, [(3, 4), (4, 2)]),
        (lambda a, b: a @ b, [(4,), (4, 2)]),
        (lambda a, b: a @ b, [(3, 4), (4,)]),
        (lambda a, b: a @ b, [(4,), (4,)]),
        (lambda a, b: a @ b, [(2, 3, 4), (4, 5)]),
        (lambda a, b: a @ b, [(3, 4), (2, 4, 5)]),
        (lambda a: a**3, [(4, 2)]),
        (lambda a: (a * a + 0.5) ** -0.5, [(4,)]),
        (lambda a: -a, [(3,)]),
        (lambda a: 2.0 - a, [(3,)]),
        (lambda a: 1.0 / (a * a + 1.0), [(3,)]),
        (lambda a: 3.0 * a + 1.0, [(3,)]),
        (lambda a: a.relu(), [(20,)]),
        (lambda a: a.tanh(), [(4, 3)]),
        (lambda a: a.sigmoid(), [(4, 3)]),
        (lambda a: a.exp(), [(4, 3)]),
        (lambda a: (a * a + 0.1).log(), [(4, 3)]),
        (lambda a: a.sum(), [(4, 3)]),
        (lambda a: a.sum(axis=0), [(4, 3)]),
        (lambda a: a.sum(axis=1, keepdims=True), [(4, 3)]),
        (lambda a: a.mean(), [(4, 3)]),
        (lambda a: a.mean(axis=(0, 2)), [(4, 3, 2)]),
        (lambda a: a.reshape(3, 4), [(2, 6)]),
        (lambda a: a.reshape((12,)), [(2, 6)]),
        (lambda a: a.T, [(2, 5)]),
    ],
)
def test_operations_match_torch(fn, shapes):
    compare(fn, *shapes)


def test_numpy_array_on_the_left_defers_to_tensor():
    a = rng.normal(size=(3, 3))
    x = Tensor(rng.normal(size=(3,)))
    out = a @ x
    assert isinstance(out, Tensor)
    (a + x).sum().backward()
    np.testing.assert_allclose(x.grad, np.full(3, 3.0))


def test_a_two_layer_network_matches_torch():
    X, y = rng.normal(size=(16, 5)), rng.integers(0, 3, size=16)
    W1, b1, W2, b2 = (
        rng.normal(size=(5, 8)),
        rng.normal(size=8),
        rng.normal(size=(8, 3)),
        rng.normal(size=3),
    )
    params = [Tensor(p) for p in (W1, b1, W2, b2)]
    loss = cross_entropy(((Tensor(X) @ params[0] + params[1]).tanh() @ params[2]) + params[3], y)
    loss.backward()
    tparams = [torch.tensor(p, requires_grad=True) for p in (W1, b1, W2, b2)]
    logits = torch.tanh(torch.tensor(X) @ tparams[0] + tparams[1]) @ tparams[2] + tparams[3]
    tloss = torch.nn.functional.cross_entropy(logits, torch.tensor(y))
    tloss.backward()
    assert loss.data == pytest.approx(tloss.item(), rel=1e-12)
    for ours, theirs in zip(params, tparams, strict=True):
        np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=1e-10, atol=1e-13)


def test_cross_entropy_is_stable_for_huge_logits():
    logits = Tensor([[1e4, 0.0, -1e4], [0.0, 1e4, 0.0]])
    loss = cross_entropy(logits, [1, 1])
    assert np.isfinite(loss.data) and loss.data == pytest.approx(0.5e4)
    loss.backward()
    assert np.all(np.isfinite(logits.grad))


def test_finite_differences_agree():
    x0 = rng.normal(size=(3, 2))

    def f(x):
        return ((x @ Tensor([[1.0, -2.0], [0.5, 1.0]])).sigmoid() * x).sum()

    x = Tensor(x0)
    f(x).backward()
    eps, numeric = 1e-6, np.zeros_like(x0)
    for index in np.ndindex(x0.shape):
        step = np.zeros_like(x0)
        step[index] = eps
        numeric[index] = (f(Tensor(x0 + step)).data - f(Tensor(x0 - step)).data) / (2 * eps)
    np.testing.assert_allclose(x.grad, numeric, rtol=1e-7, atol=1e-9)


def test_graph_is_public_and_read_only():
    W, x = Tensor(np.ones((2, 3))), Tensor(np.ones(3))
    h = (W @ x).relu()
    assert h.op == "relu" and h.parents[0].op == "@"
    assert h.parents[0].parents == (W, x) and W.parents == () and W.op == ""
    assert topological_order(h) == [W, x, h.parents[0], h]
    with pytest.raises(AttributeError):
        h.op = "tanh"
    with pytest.raises(AttributeError):
        h.parents = ()
    assert repr(h).endswith("op='relu')")


@pytest.mark.parametrize(
    "grad_shape, shape",
    [((4, 3), (3,)), ((4, 3), (4, 1)), ((2, 4, 3), (1, 3)), ((2, 3), ()), ((3,), (3,))],
)
def test_unbroadcast_inverts_numpy_broadcasting(grad_shape, shape):
    grad = rng.normal(size=grad_shape)
    summed = unbroadcast(grad, shape)
    assert summed.shape == shape
    # the adjoint of broadcasting: <broadcast(v), grad> = <v, unbroadcast(grad)>
    v = rng.normal(size=shape)
    assert np.sum(np.broadcast_to(v, grad_shape) * grad) == pytest.approx(np.sum(v * summed))


def test_unbroadcast_rejects_shapes_that_do_not_broadcast():
    with pytest.raises(ValueError, match="does not broadcast"):
        unbroadcast(np.ones((4, 3)), (2,))
    with pytest.raises(ValueError, match="does not broadcast"):
        unbroadcast(np.ones(3), (1, 3))
    with pytest.raises(TypeError, match="shape must be a tuple"):
        unbroadcast(np.ones(3), 3)


def test_reused_values_accumulate_and_zero_grad_resets():
    x = Tensor(3.0)
    y = x * x + x  # x is used three times
    y.backward()
    assert x.grad == pytest.approx(7.0)
    y.backward()  # gradients accumulate, as in PyTorch
    assert x.grad == pytest.approx(14.0)
    x.zero_grad()
    assert x.grad == 0.0


def test_deep_graphs_do_not_hit_the_recursion_limit():
    x = Tensor(1.0)
    y = x
    for _ in range(5000):
        y = y * 1.0001
    y.backward()
    assert x.grad == pytest.approx(1.0001**5000)


def test_backward_with_explicit_grad_for_non_scalars():
    x = Tensor([1.0, 2.0])
    (x * 3.0).backward(np.array([1.0, 10.0]))
    np.testing.assert_allclose(x.grad, [3.0, 30.0])


@pytest.mark.parametrize(
    "action, error, match",
    [
        (lambda: Tensor([1.0, 2.0]).backward(), ValueError, "needs a grad argument"),
        (lambda: Tensor([1.0]).backward(np.ones(2)), ValueError, "grad must have shape"),
        (lambda: Tensor([0.0, 1.0]).log(), ValueError, "strictly positive"),
        (lambda: Tensor(["a"]), TypeError, "numeric"),
        (lambda: Tensor(Tensor(1.0)), TypeError, "not a Tensor"),
        (lambda: Tensor(1.0) + "x", TypeError, "unsupported operand"),
        (lambda: Tensor(2.0) ** Tensor(2.0), TypeError, "exponent must be a real number"),
        (lambda: Tensor(2.0) @ Tensor([1.0]), ValueError, "at least one dimension"),
        (lambda: cross_entropy(Tensor([1.0, 2.0]), [0]), ValueError, "shape \\(N, C\\)"),
        (lambda: cross_entropy(Tensor([[1.0, 2.0]]), [2]), ValueError, "labels must take values"),
        (lambda: cross_entropy(np.ones((1, 2)), [0]), TypeError, "logits must be a Tensor"),
    ],
)
def test_bad_input_is_rejected(action, error, match):
    with pytest.raises(error, match=match):
        action()
