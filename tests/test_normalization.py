"""dl_course.normalization against torch (functional ops, autograd, BatchNorm1d, training)."""

import copy
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dl_course import normalization as nz
from dl_course.training import DivergenceError, train_classifier


def _t(a):
    return torch.tensor(np.asarray(a), dtype=torch.float64)


def _data(shape, seed=0, scale=3.0, shift=1.0):
    rng = np.random.default_rng(seed)
    return scale * rng.normal(size=shape) + shift


def _params(n, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=n), rng.normal(size=n)


# -- forward passes against torch.nn.functional -------------------------------------------------


@pytest.mark.parametrize("shape", [(2, 3), (8, 5), (100, 1), (33, 17)])
@pytest.mark.parametrize("eps", [1e-5, 1e-3, 0.5])
def test_batch_norm_equals_torch_training_mode(shape, eps):
    x = _data(shape)
    gamma, beta = _params(shape[1])
    expected = F.batch_norm(_t(x), None, None, _t(gamma), _t(beta), training=True, eps=eps)
    np.testing.assert_allclose(nz.batch_norm(x, gamma, beta, eps), expected.numpy(), atol=1e-12)


@pytest.mark.parametrize("shape", [(5,), (4, 6), (3, 4, 7), (10, 1)])
@pytest.mark.parametrize("eps", [1e-5, 0.1])
def test_layer_norm_equals_torch(shape, eps):
    x = _data(shape)
    gamma, beta = _params(shape[-1])
    expected = F.layer_norm(_t(x), (shape[-1],), _t(gamma), _t(beta), eps)
    np.testing.assert_allclose(nz.layer_norm(x, gamma, beta, eps), expected.numpy(), atol=1e-12)


@pytest.mark.parametrize("shape", [(5,), (4, 6), (3, 4, 7)])
@pytest.mark.parametrize("eps", [1e-6, 0.1])
def test_rms_norm_equals_torch(shape, eps):
    x = _data(shape)
    gamma, _ = _params(shape[-1])
    expected = F.rms_norm(_t(x), (shape[-1],), _t(gamma), eps)
    np.testing.assert_allclose(nz.rms_norm(x, gamma, eps), expected.numpy(), atol=1e-12)


def test_default_eps_are_the_api_ones():
    x = _data((6, 4))
    gamma, beta = _params(4)
    bn = F.batch_norm(_t(x), None, None, _t(gamma), _t(beta), training=True, eps=1e-5)
    np.testing.assert_allclose(nz.batch_norm(x, gamma, beta), bn.numpy(), atol=1e-12)
    rms = F.rms_norm(_t(x), (4,), _t(gamma), 1e-6)
    np.testing.assert_allclose(nz.rms_norm(x, gamma), rms.numpy(), atol=1e-12)


def test_normalized_statistics_closed_form():
    """Before the affine part: batch columns (layer rows) have mean 0 and variance var/(var+eps)."""
    x = _data((50, 4))
    ones, zeros = np.ones(4), np.zeros(4)
    y = nz.batch_norm(x, ones, zeros, eps=1e-5)
    var = x.var(axis=0)
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=0), var / (var + 1e-5), rtol=1e-12)
    z = nz.rms_norm(x, ones, eps=1e-6)
    ms = (x**2).mean(axis=1)
    np.testing.assert_allclose((z**2).mean(axis=1), ms / (ms + 1e-6), rtol=1e-12)


def test_batch_of_two_gives_plus_minus_one():
    x = np.array([[0.0, 5.0, -1.0], [2.0, -3.0, 4.0]])
    y = nz.batch_norm(x, np.ones(3), np.zeros(3), eps=1e-5)
    var = x.var(axis=0)
    np.testing.assert_allclose(np.abs(y), np.sqrt(var / (var + 1e-5)) * np.ones((2, 1)))
    np.testing.assert_array_equal(np.sign(y[0]), np.sign(x[0] - x[1]))


# -- invariances -----------------------------------------------------------------------------


def test_bias_before_batch_norm_is_redundant_and_gets_no_gradient():
    x = _data((16, 5))
    gamma, beta = _params(5)
    bias = np.array([3.0, -2.0, 0.5, 10.0, -7.0])
    np.testing.assert_allclose(
        nz.batch_norm(x + bias, gamma, beta), nz.batch_norm(x, gamma, beta), atol=1e-12
    )
    dy = _data((16, 5), seed=3)
    dx, _, _ = nz.batch_norm_backward(dy, x + bias, gamma)
    np.testing.assert_allclose(dx.sum(axis=0), 0.0, atol=1e-12)  # d loss / d bias


def test_bias_before_layer_norm_is_not_redundant():
    x = _data((16, 5))
    gamma, beta = _params(5)
    bias = np.array([3.0, -2.0, 0.5, 10.0, -7.0])
    shifted = nz.layer_norm(x + bias, gamma, beta)
    assert np.abs(shifted - nz.layer_norm(x, gamma, beta)).max() > 0.1
    # a shift that is the same for every feature is removed by LayerNorm
    np.testing.assert_allclose(
        nz.layer_norm(x + 4.0, gamma, beta), nz.layer_norm(x, gamma, beta), atol=1e-12
    )


def test_scale_invariance_of_the_three_norms():
    x = _data((8, 6))
    gamma, beta = _params(6)
    a = np.linspace(0.5, 3.0, 6)
    np.testing.assert_allclose(
        nz.batch_norm(a * x, gamma, beta, eps=1e-12), nz.batch_norm(x, gamma, beta, 1e-12)
    )
    np.testing.assert_allclose(
        nz.layer_norm(7 * x, gamma, beta, 1e-12), nz.layer_norm(x, gamma, beta, 1e-12)
    )
    np.testing.assert_allclose(nz.rms_norm(7 * x, gamma, 1e-12), nz.rms_norm(x, gamma, 1e-12))


# -- backward passes against autograd --------------------------------------------------------


def _autograd(fn, x, gamma, beta, dy):
    tensors = [_t(v).requires_grad_() for v in (x, gamma, beta)]
    (fn(*tensors) * _t(dy)).sum().backward()
    return [t.grad.numpy() for t in tensors]


@pytest.mark.parametrize("eps", [1e-5, 0.3])
def test_batch_norm_backward_equals_autograd(eps):
    x, dy = _data((12, 7)), _data((12, 7), seed=5)
    gamma, beta = _params(7)
    expected = _autograd(
        lambda x_, g_, b_: F.batch_norm(x_, None, None, g_, b_, training=True, eps=eps),
        x,
        gamma,
        beta,
        dy,
    )
    for ours, ref in zip(nz.batch_norm_backward(dy, x, gamma, eps), expected, strict=True):
        np.testing.assert_allclose(ours, ref, atol=1e-11)


@pytest.mark.parametrize("shape", [(9,), (6, 5), (2, 3, 8)])
def test_layer_norm_backward_equals_autograd(shape):
    x, dy = _data(shape), _data(shape, seed=5)
    gamma, beta = _params(shape[-1])
    expected = _autograd(
        lambda x_, g_, b_: F.layer_norm(x_, (shape[-1],), g_, b_, 1e-5), x, gamma, beta, dy
    )
    for ours, ref in zip(nz.layer_norm_backward(dy, x, gamma), expected, strict=True):
        np.testing.assert_allclose(ours, ref, atol=1e-11)


@pytest.mark.parametrize("shape", [(9,), (6, 5), (2, 3, 8)])
def test_rms_norm_backward_equals_autograd(shape):
    x, dy = _data(shape), _data(shape, seed=5)
    gamma, beta = _params(shape[-1])
    expected = _autograd(
        lambda x_, g_, b_: F.rms_norm(x_, (shape[-1],), g_, 1e-6) + 0 * b_, x, gamma, beta, dy
    )
    dx, dgamma = nz.rms_norm_backward(dy, x, gamma)
    np.testing.assert_allclose(dx, expected[0], atol=1e-11)
    np.testing.assert_allclose(dgamma, expected[1], atol=1e-11)


def test_backward_matches_finite_differences():
    x, dy = _data((5, 3)), _data((5, 3), seed=2)
    gamma, beta = _params(3)
    dx, _, _ = nz.batch_norm_backward(dy, x, gamma)
    h, i, j = 1e-6, 2, 1
    step = np.zeros_like(x)
    step[i, j] = h
    loss = [np.sum(dy * nz.batch_norm(x + s, gamma, beta)) for s in (step, -step)]
    assert dx[i, j] == pytest.approx((loss[0] - loss[1]) / (2 * h), rel=1e-6)


# -- the BatchNorm layer against torch.nn.BatchNorm1d -------------------------------------------


@pytest.mark.parametrize("momentum", [0.1, 0.5, 1.0, None])
def test_batchnorm_layer_equals_torch_in_train_and_eval_mode(momentum):
    ours = nz.BatchNorm(4, eps=1e-5, momentum=momentum)
    ref = torch.nn.BatchNorm1d(4, eps=1e-5, momentum=momentum, dtype=torch.float64)
    gamma, beta = _params(4)
    ours.gamma, ours.beta = gamma.copy(), beta.copy()
    with torch.no_grad():
        ref.weight.copy_(_t(gamma))
        ref.bias.copy_(_t(beta))
    for k, n in enumerate([8, 3, 16, 2, 5]):
        x = _data((n, 4), seed=10 + k, shift=k)
        np.testing.assert_allclose(ours(x), ref(_t(x)).detach().numpy(), atol=1e-12)
        np.testing.assert_allclose(ours.running_mean, ref.running_mean.numpy(), atol=1e-12)
        np.testing.assert_allclose(ours.running_var, ref.running_var.numpy(), atol=1e-12)
    assert ours.num_batches_tracked == ref.num_batches_tracked.item() == 5
    ours.eval()
    ref.eval()
    for n in (1, 7):
        x = _data((n, 4), seed=30 + n)
        np.testing.assert_allclose(ours(x), ref(_t(x)).detach().numpy(), atol=1e-12)
    assert ours.num_batches_tracked == 5  # eval mode tracks nothing


def test_running_var_is_unbiased_normalization_is_biased():
    layer = nz.BatchNorm(3, momentum=1.0)  # the running statistics are the last batch's
    x = _data((4, 3))
    y = layer(x)
    np.testing.assert_allclose(layer.running_var, x.var(axis=0, ddof=1), rtol=1e-12)
    np.testing.assert_allclose(y, (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + 1e-5), rtol=1e-12)
    assert not np.allclose(layer.eval()(x), y)  # eval mode divides by the unbiased one


def test_batchnorm_layer_train_eval_switch():
    layer = nz.BatchNorm(2)
    assert layer.training and layer.eval() is layer and not layer.training
    assert layer.train() is layer and layer.training
    with pytest.raises(TypeError, match="mode"):
        layer.train("yes")


# -- bad input -----------------------------------------------------------------------------


def test_batch_of_one_is_refused_like_torch():
    x = np.array([[1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match="at least 2 examples"):
        nz.batch_norm(x, np.ones(3), np.zeros(3))
    with pytest.raises(ValueError, match="at least 2 examples"):
        nz.batch_norm_backward(x, x, np.ones(3))
    with pytest.raises(ValueError, match="at least 2 examples"):
        nz.BatchNorm(3)(x)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        torch.nn.BatchNorm1d(3)(torch.ones(1, 3))


@pytest.mark.parametrize("fn", ["batch_norm", "layer_norm"])
def test_mismatched_gamma_beta(fn):
    x = _data((4, 3))
    with pytest.raises(ValueError, match=r"gamma must have shape \(3,\)"):
        getattr(nz, fn)(x, np.ones(4), np.zeros(3))
    with pytest.raises(ValueError, match=r"beta must have shape \(3,\)"):
        getattr(nz, fn)(x, np.ones(3), np.zeros((3, 1)))
    with pytest.raises(ValueError, match=r"gamma must have shape \(3,\)"):
        nz.rms_norm(x, np.ones(2))


@pytest.mark.parametrize("eps", [0.0, -1e-5, math.nan, math.inf])
def test_eps_must_be_positive(eps):
    x = _data((4, 3))
    for call in (
        lambda: nz.batch_norm(x, np.ones(3), np.zeros(3), eps),
        lambda: nz.layer_norm(x, np.ones(3), np.zeros(3), eps),
        lambda: nz.rms_norm(x, np.ones(3), eps),
        lambda: nz.BatchNorm(3, eps=eps),
    ):
        with pytest.raises(ValueError, match="eps"):
            call()
    with pytest.raises(TypeError, match="eps"):
        nz.rms_norm(x, np.ones(3), "small")


def test_wrong_ndim():
    with pytest.raises(ValueError, match="x must be 2-D"):
        nz.batch_norm(np.ones(5), np.ones(5), np.zeros(5))
    with pytest.raises(ValueError, match="x must be 2-D"):
        nz.batch_norm(np.ones((2, 3, 4)), np.ones(4), np.zeros(4))
    with pytest.raises(ValueError, match="at least 1-D"):
        nz.layer_norm(3.0, np.ones(1), np.zeros(1))
    with pytest.raises(ValueError, match="at least 1-D"):
        nz.rms_norm(np.float64(2.0), np.ones(1))
    with pytest.raises(ValueError, match="dy must have the shape"):
        nz.layer_norm_backward(np.ones((2, 3)), np.ones((3, 3)), np.ones(3))
    with pytest.raises(ValueError, match="x must have 3 features"):
        nz.BatchNorm(3)(np.ones((4, 2)))


def test_other_bad_values():
    with pytest.raises(ValueError, match="finite"):
        nz.layer_norm([[1.0, math.nan]], np.ones(2), np.zeros(2))
    with pytest.raises(TypeError, match="x must be an array of real numbers"):
        nz.rms_norm([["a", "b"]], np.ones(2))
    with pytest.raises(ValueError, match="momentum"):
        nz.BatchNorm(3, momentum=0.0)
    with pytest.raises(ValueError, match="momentum"):
        nz.BatchNorm(3, momentum=1.5)
    with pytest.raises(ValueError, match="num_features"):
        nz.BatchNorm(0)


def test_import_is_numpy_only():
    code = "import sys, dl_course.normalization; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- torch networks --------------------------------------------------------------------------


def test_build_normalized_mlp_layers_and_shared_weights():
    sizes = [6, 5, 4, 3]
    kinds = {
        None: None,
        "batch": torch.nn.BatchNorm1d,
        "layer": torch.nn.LayerNorm,
        "rms": torch.nn.RMSNorm,
    }
    nets = {norm: nz.build_normalized_mlp(sizes, norm, seed=3) for norm in kinds}
    for norm, kind in kinds.items():
        linears = [m for m in nets[norm] if isinstance(m, torch.nn.Linear)]
        assert len(linears) == 3
        plain = [m for m in nets[None] if isinstance(m, torch.nn.Linear)]
        for a, b in zip(linears, plain, strict=True):
            assert torch.equal(a.weight, b.weight)
        if kind is not None:
            norms = [m for m in nets[norm] if isinstance(m, kind)]
            assert [m.weight.shape[0] for m in norms] == [5, 4]
    assert nets["rms"][1].eps == 1e-6
    assert nets["batch"](torch.ones(2, 6)).shape == (2, 3)
    with pytest.raises(ValueError, match="norm must be one of"):
        nz.build_normalized_mlp(sizes, "group")


@pytest.fixture(scope="module")
def small_data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 8))
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 0.5)
    return X, y


@pytest.mark.parametrize("norm", [None, "batch", "layer", "rms"])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_train_together_equals_train_classifier(small_data, norm, momentum):
    X, y = small_data
    lrs, seeds = [0.05, 0.2, 0.1], [4, 9, 4]
    models = [nz.build_normalized_mlp([8, 16, 16, 3], norm, seed=s) for s in (0, 1, 2)]
    refs = [copy.deepcopy(m) for m in models]
    histories = nz.train_together(
        models,
        X,
        y,
        lr=lrs,
        epochs=3,
        batch_size=32,
        momentum=momentum,
        seeds=seeds,
        X_val=X[:40],
        y_val=y[:40],
    )
    for model, ref, lr, seed, hist in zip(models, refs, lrs, seeds, histories, strict=True):
        expected = train_classifier(
            ref,
            X,
            y,
            lr=lr,
            epochs=3,
            batch_size=32,
            momentum=momentum,
            seed=seed,
            X_val=X[:40],
            y_val=y[:40],
        )
        np.testing.assert_allclose(hist.train_loss, expected.train_loss, rtol=1e-5)
        assert hist.train_accuracy == pytest.approx(expected.train_accuracy, abs=0.01)
        assert hist.val_accuracy == pytest.approx(expected.val_accuracy, abs=0.03)
        for name, value in ref.state_dict().items():
            torch.testing.assert_close(model.state_dict()[name], value, rtol=1e-4, atol=1e-5)


def test_train_together_stops_a_diverging_model_only(small_data):
    X, y = small_data
    X = 10 * X
    models = [nz.build_normalized_mlp([8, 32, 32, 3], None, seed=0) for _ in range(2)]
    refs = [copy.deepcopy(m) for m in models]
    lrs = [1e-3, 50.0]
    histories = nz.train_together(models, X, y, lr=lrs, epochs=4, allow_divergence=True)
    expected = [
        train_classifier(r, X, y, lr=lr, epochs=4, seed=k, allow_divergence=True)
        for k, (r, lr) in enumerate(zip(refs, lrs, strict=True))
    ]
    assert [h.diverged for h in histories] == [e.diverged for e in expected] == [False, True]
    for hist, exp in zip(histories, expected, strict=True):
        np.testing.assert_allclose(hist.train_loss, exp.train_loss, rtol=1e-4)
    for name, value in refs[0].state_dict().items():
        torch.testing.assert_close(models[0].state_dict()[name], value, rtol=1e-4, atol=1e-5)
    with pytest.raises(DivergenceError, match=r"models\[1\]"):
        nz.train_together(
            [nz.build_normalized_mlp([8, 32, 32, 3], None, seed=0) for _ in range(2)],
            X,
            y,
            lr=lrs,
            epochs=4,
        )


def test_train_together_bad_input(small_data):
    X, y = small_data
    nets = [nz.build_normalized_mlp([8, 4, 3], "batch", seed=s) for s in (0, 1)]
    with pytest.raises(ValueError, match="architecture"):
        nz.train_together(
            [nets[0], nz.build_normalized_mlp([8, 5, 3], "batch")], X, y, lr=0.1, epochs=1
        )
    with pytest.raises(ValueError, match="architecture"):
        nz.train_together(
            [nets[0], nz.build_normalized_mlp([8, 4, 3], "layer")], X, y, lr=0.1, epochs=1
        )
    with pytest.raises(ValueError, match="Dropout"):
        dropped = torch.nn.Sequential(torch.nn.Linear(8, 3), torch.nn.Dropout(0.5))
        nz.train_together([dropped], X, y, lr=0.1, epochs=1)
    with pytest.raises(ValueError, match=r"lr must be one value or one per model \(2\)"):
        nz.train_together(nets, X, y, lr=[0.1, 0.2, 0.3], epochs=1)
    with pytest.raises(ValueError, match=r"lr\[1\] must be > 0"):
        nz.train_together(nets, X, y, lr=[0.1, 0.0], epochs=1)
    with pytest.raises(ValueError, match="y must hold class indices 0 .. 2"):
        nz.train_together(nets, X, y + 1, lr=0.1, epochs=1)
    with pytest.raises(ValueError, match="non-empty sequence"):
        nz.train_together([], X, y, lr=0.1, epochs=1)
    with pytest.raises(TypeError, match="nn.Sequential"):
        nz.train_together([torch.nn.Linear(8, 3)], X, y, lr=0.1, epochs=1)
    with pytest.raises(ValueError, match="X_val and y_val"):
        nz.train_together(nets, X, y, lr=0.1, epochs=1, X_val=X)


def test_max_steps_stops_mid_epoch(small_data):
    X, y = small_data  # 150 examples: 5 steps of 32 per epoch
    model = nz.build_normalized_mlp([8, 16, 3], "batch", seed=0)
    (history,) = nz.train_together([model], X, y, lr=0.1, epochs=10, batch_size=32, max_steps=7)
    assert len(history.train_loss) == 2  # one full epoch and two steps of the next
    assert model[1].num_batches_tracked.item() == 7
    with pytest.raises(ValueError, match="max_steps"):
        nz.train_together([model], X, y, lr=0.1, epochs=1, max_steps=0)


def _manual_statistics(model, X, index):
    """Cosine and probe spread by a plain loop over batches (the independent reference)."""
    per_batch = []
    with torch.no_grad():
        for row in index:
            h, outs = torch.tensor(X[row], dtype=torch.float32), []
            for module in copy.deepcopy(model).train():
                h = module(h)
                if isinstance(module, torch.nn.ReLU):
                    outs.append(h.numpy().astype(np.float64))
            per_batch.append(outs)
    cosine, spread = [], []
    for layer in range(len(per_batch[0])):
        cos = []
        for outs in per_batch:
            u = outs[layer] / np.linalg.norm(outs[layer], axis=1, keepdims=True)
            gram = u @ u.T
            cos.append((gram.sum() - np.trace(gram)) / (len(u) * (len(u) - 1)))
        cosine.append(np.mean(cos))
        probe = np.array([outs[layer][0] for outs in per_batch])
        spread.append(probe.std(axis=0).mean() / np.sqrt((probe.mean(axis=0) ** 2).mean()))
    return np.array(cosine), np.array(spread)


@pytest.mark.parametrize("norm", [None, "batch", "layer"])
def test_layer_statistics_against_a_loop(small_data, norm):
    X, _ = small_data
    model = nz.build_normalized_mlp([8, 16, 16, 3], norm, seed=0)
    before = copy.deepcopy(model.state_dict())
    stats = nz.layer_statistics(model, X, batch_size=10, n_batches=6, seed=3)
    index = nz._random_batches(len(X), 10, 6, 3, True)
    assert np.all(index[:, 0] == 0) and all(len(set(row)) == 10 for row in index)
    cosine, spread = _manual_statistics(model, X, index)
    np.testing.assert_allclose(stats.cosine, cosine, atol=1e-5)
    np.testing.assert_allclose(stats.probe_spread, spread, atol=1e-5)
    if norm != "batch":
        assert stats.probe_spread.max() < 1e-6
    for name, value in before.items():
        assert torch.equal(model.state_dict()[name], value)  # running statistics untouched
    two = nz.layer_statistics(model, X, batch_size=2, n_batches=4)
    if norm == "batch":
        np.testing.assert_allclose(two.cosine, 0.0, atol=1e-6)  # +-1 features: disjoint ReLUs


def test_train_eval_gap(small_data):
    X, y = small_data
    model = nz.build_normalized_mlp([8, 16, 16, 3], "batch", seed=0)
    nz.train_together([model], X, y, lr=0.1, epochs=5, batch_size=30)
    before = copy.deepcopy(model.state_dict())
    gaps = nz.train_eval_gap(model, X, [2, 8, 64], n_batches=5, seed=1)
    index = nz._random_batches(len(X), 8, 5, 2, False)  # seed + position in the list
    train, evaluated = copy.deepcopy(model).train(), copy.deepcopy(model).eval()
    with torch.no_grad():
        xs = [torch.tensor(X[row], dtype=torch.float32) for row in index]
        distance = np.mean([(train(x) - evaluated(x)).norm(dim=1).mean().item() for x in xs])
        size = np.mean([evaluated(x).norm(dim=1).mean().item() for x in xs])
    assert gaps[1] == pytest.approx(distance / size, rel=1e-5)
    assert gaps[0] > gaps[1] > gaps[2] > 0
    for name, value in before.items():
        assert torch.equal(model.state_dict()[name], value)
    layer_model = nz.build_normalized_mlp([8, 16, 3], "layer", seed=0)
    assert nz.train_eval_gap(layer_model, X, 4).max() < 1e-6
    with pytest.raises(ValueError, match="batch_size"):
        nz.train_eval_gap(model, X, [1])
    with pytest.raises(ValueError, match="batch_size"):
        nz.layer_statistics(model, X, batch_size=151)
