"""dl_course.initialization against torch.nn.init (same formulas, same draws) and closed forms."""

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from dl_course import initialization as init

SHAPES = [(300, 100), (7, 13), (64, 64), (16, 3, 5, 5)]  # the last one: a conv kernel


def _torch_fans(shape):
    return torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))


@pytest.mark.parametrize("shape", SHAPES)
def test_fans_agree_with_torch(shape):
    assert init.fans(shape) == _torch_fans(shape)


@pytest.mark.parametrize(
    ("nonlinearity", "param"),
    [
        ("linear", None),
        ("conv2d", None),
        ("sigmoid", None),
        ("tanh", None),
        ("relu", None),
        ("relu", 0),
        ("leaky_relu", None),
        ("leaky_relu", 0.2),
        ("leaky_relu", 0),
        ("leaky_relu", math.sqrt(5)),
        ("selu", None),
    ],
)
def test_gain_table_agrees_with_torch(nonlinearity, param):
    assert init.calculate_gain(nonlinearity, param) == torch.nn.init.calculate_gain(
        nonlinearity, param
    )


def test_std_formulas_are_the_closed_forms():
    assert init.xavier_std(100, 300) == pytest.approx(math.sqrt(2 / 400), rel=1e-15)
    assert init.he_std(100) == pytest.approx(math.sqrt(2 / 100), rel=1e-15)
    assert init.he_std(100, gain=5 / 3) == pytest.approx(5 / 3 / 10, rel=1e-15)
    assert init.uniform_bound(1.0) ** 2 / 3 == pytest.approx(1.0, rel=1e-15)  # Var U(-a, a)
    assert init.torch_default_std(48) ** 2 == pytest.approx(1 / (3 * 48), rel=1e-14)
    assert init.scheme_variance("he", 10, 20) == 0.2
    assert init.scheme_variance("xavier", 10, 30) == 0.05
    assert init.scheme_variance("lecun", 10, 30) == 0.1
    assert init.scheme_variance("torch", 10, 30) == pytest.approx(1 / 30, rel=1e-15)


def test_torch_default_linear_bound_is_one_over_sqrt_fan_in():
    """nn.Linear's weights lie in [-1/sqrt(fan_in), 1/sqrt(fan_in)]: variance 1/(3 fan_in)."""
    fan_in = 200
    bound = init.uniform_bound(init.torch_default_std(fan_in))
    assert bound == pytest.approx(1 / math.sqrt(fan_in), rel=1e-14)
    torch.manual_seed(0)
    weight = torch.nn.Linear(fan_in, 400).weight.detach().double()
    assert weight.abs().max().item() <= bound
    assert weight.var().item() == pytest.approx(1 / (3 * fan_in), rel=0.02)


# -- the torch versions give torch.nn.init's values for the same generator state ---------------

PAIRS = [
    (init.xavier_uniform_, torch.nn.init.xavier_uniform_, {}, {}),
    (init.xavier_uniform_, torch.nn.init.xavier_uniform_, {"gain": 5 / 3}, {"gain": 5 / 3}),
    (init.xavier_normal_, torch.nn.init.xavier_normal_, {"gain": 0.5}, {"gain": 0.5}),
    (
        init.he_uniform_,
        torch.nn.init.kaiming_uniform_,
        {"gain": init.calculate_gain("relu")},
        {"nonlinearity": "relu"},
    ),
    (
        init.he_normal_,
        torch.nn.init.kaiming_normal_,
        {"gain": init.calculate_gain("relu"), "mode": "fan_out"},
        {"nonlinearity": "relu", "mode": "fan_out"},
    ),
    (
        init.he_uniform_,
        torch.nn.init.kaiming_uniform_,
        {"gain": init.calculate_gain("leaky_relu", 0.2)},
        {"a": 0.2},
    ),
    (init.torch_default_, torch.nn.init.kaiming_uniform_, {}, {"a": math.sqrt(5)}),
    (init.orthogonal_, torch.nn.init.orthogonal_, {"gain": 2.0}, {"gain": 2.0}),
]


@pytest.mark.parametrize(("ours", "theirs", "our_kw", "their_kw"), PAIRS)
@pytest.mark.parametrize("shape", SHAPES)
def test_same_values_as_torch_for_the_same_generator(ours, theirs, our_kw, their_kw, shape):
    a, b = torch.empty(shape, dtype=torch.float64), torch.empty(shape, dtype=torch.float64)
    ours(a, generator=torch.Generator().manual_seed(3), **our_kw)
    theirs(b, generator=torch.Generator().manual_seed(3), **their_kw)
    assert torch.equal(a, b)


def test_nn_linear_default_is_torch_default_():
    torch.manual_seed(5)
    linear = torch.nn.Linear(30, 20)  # weight first, then bias
    torch.manual_seed(5)
    weight = init.torch_default_(torch.empty(20, 30))
    assert torch.equal(linear.weight.detach(), weight)


def test_torch_versions_fill_in_place_without_grad():
    weight = torch.nn.Parameter(torch.empty(5, 4))
    out = init.he_normal_(weight, generator=torch.Generator().manual_seed(0))
    assert out is weight and weight.grad_fn is None and weight.requires_grad


def test_orthogonal_torch_matrices_are_orthogonal():
    tall = init.orthogonal_(torch.empty(50, 20, dtype=torch.float64), gain=3.0)
    wide = init.orthogonal_(torch.empty(20, 50, dtype=torch.float64))
    torch.testing.assert_close(tall.T @ tall, 9.0 * torch.eye(20, dtype=torch.float64))
    torch.testing.assert_close(wide @ wide.T, torch.eye(20, dtype=torch.float64))


def test_scheme_normal_has_the_scheme_variance():
    weight = torch.empty(400, 500, dtype=torch.float64)
    init.scheme_normal_(weight, "xavier", generator=torch.Generator().manual_seed(1))
    assert weight.var().item() == pytest.approx(2 / 900, rel=0.01)
    assert abs(weight.mean().item()) < 4 * math.sqrt(2 / 900 / weight.numel())


def test_scheme_normal_matches_the_builder_formula_bit_for_bit():
    """std = variance ** 0.5, as dl_course.mlp.build_mlp always computed it."""
    a, b = torch.empty(10, 3), torch.empty(10, 3)
    init.scheme_normal_(a, "he", generator=torch.Generator().manual_seed(2))
    b.normal_(0.0, (2.0 / 3) ** 0.5, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)


# -- NumPy samplers: the right moments -------------------------------------------------------

SAMPLERS = [
    (init.xavier_normal, {}, 2 / (500 + 400), "normal"),
    (init.xavier_uniform, {"gain": 2.0}, 4 * 2 / (500 + 400), "uniform"),
    (init.he_normal, {}, 2 / 500, "normal"),
    (init.he_normal, {"mode": "fan_out"}, 2 / 400, "normal"),
    (init.he_uniform, {"gain": 1.0}, 1 / 500, "uniform"),
    (init.torch_default, {}, 1 / (3 * 500), "uniform"),
]


@pytest.mark.parametrize(("sampler", "kwargs", "variance", "kind"), SAMPLERS)
def test_numpy_samplers_have_the_right_moments(sampler, kwargs, variance, kind):
    W = sampler((400, 500), seed=0, **kwargs)
    assert W.shape == (400, 500) and W.dtype == np.float64
    n = W.size
    assert abs(W.mean()) < 4 * math.sqrt(variance / n)
    # the sample variance has relative standard error sqrt(2/n) (normal) or sqrt(0.8/n) (uniform)
    assert W.var() == pytest.approx(variance, rel=4 * math.sqrt(2 / n))
    kurtosis = np.mean(W**4) / W.var() ** 2
    assert kurtosis == pytest.approx(3.0 if kind == "normal" else 1.8, abs=0.05)
    if kind == "uniform":
        assert np.abs(W).max() <= math.sqrt(3 * variance)


def test_numpy_samplers_are_seeded_and_batched():
    a = init.he_normal((6, 4), seed=1)
    assert np.array_equal(a, init.he_normal((6, 4), seed=1))
    assert not np.array_equal(a, init.he_normal((6, 4), seed=2))
    stack = init.xavier_uniform((6, 4), batch=(2, 3), seed=0)
    assert stack.shape == (2, 3, 6, 4)
    rng = np.random.default_rng(7)
    first, second = init.he_normal((3, 3), seed=rng), init.he_normal((3, 3), seed=rng)
    assert not np.array_equal(first, second)  # a Generator is advanced, not reseeded


@pytest.mark.parametrize("shape", [(40, 40), (60, 25), (25, 60), (8, 3, 3)])
def test_numpy_orthogonal_is_orthogonal(shape):
    W = init.orthogonal(shape, gain=1.5, batch=3, seed=0)
    assert W.shape == (3, *shape)
    M = W.reshape(3, shape[0], -1)
    small = min(M.shape[1:])
    gram = M @ np.swapaxes(M, 1, 2) if M.shape[1] <= M.shape[2] else np.swapaxes(M, 1, 2) @ M
    np.testing.assert_allclose(gram, np.broadcast_to(2.25 * np.eye(small), gram.shape), atol=1e-12)


def test_numpy_orthogonal_is_haar_distributed():
    """With the sign fix, E[Q] = 0 and E[Q_ij^2] = 1/n; the trace has mean 0 and variance 1."""
    n, count = 6, 20_000
    Q = init.orthogonal((n, n), batch=count, seed=0)
    assert np.abs(Q.mean(axis=0)).max() < 5 / math.sqrt(n * count)
    traces = np.trace(Q, axis1=1, axis2=2)
    assert abs(traces.mean()) < 5 / math.sqrt(count)
    assert traces.var() == pytest.approx(1.0, abs=0.05)
    # without the sign fix LAPACK's R has a negative diagonal, and the mean of Q_00 is not 0
    raw, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((count, n, n)))
    assert abs(raw[:, 0, 0].mean()) > 0.2


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: init.fans((5,)), ValueError, "at least 2 dimensions"),
        (lambda: init.fans(5), TypeError, "sequence"),
        (lambda: init.fans((5, 0)), ValueError, r"shape\[1\]"),
        (lambda: init.calculate_gain("swish"), ValueError, "nonlinearity"),
        (lambda: init.calculate_gain("leaky_relu", "x"), TypeError, "param"),
        (lambda: init.xavier_std(0, 5), ValueError, "fan_in"),
        (lambda: init.he_std(10, gain=0.0), ValueError, "gain"),
        (lambda: init.he_std(10, gain=-1.0), ValueError, "gain"),
        (lambda: init.scheme_variance("glorot", 3, 3), ValueError, "scheme"),
        (lambda: init.he_normal((3, 3), mode="fan"), ValueError, "mode"),
        (lambda: init.he_normal((3, 3), seed=-1), ValueError, "seed"),
        (lambda: init.xavier_normal((3, 3), batch=0), ValueError, "batch"),
        (lambda: init.orthogonal((3, 3), gain=0), ValueError, "gain"),
        (lambda: init.he_normal_(np.zeros((3, 3))), TypeError, "torch.Tensor"),
        (lambda: init.he_normal_(torch.zeros(3, 3, dtype=torch.int64)), TypeError, "floating"),
        (lambda: init.orthogonal_(torch.zeros(3)), ValueError, "2 dimensions"),
        (lambda: init.xavier_normal_(torch.zeros(3, 3), generator=1), TypeError, "Generator"),
        (lambda: init.scheme_normal_(torch.zeros(3, 3), "torch"), ValueError, "torch_default_"),
    ],
)
def test_bad_input_is_refused(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_import_does_not_load_torch():
    code = "import sys, dl_course.initialization; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
