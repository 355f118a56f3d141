import numpy as np
import pytest
import torch

from dl_course import data
from dl_course.autograd import cross_entropy
from dl_course.mlp import INITS, MLP, TORCH_ACTIVATIONS, build_mlp, fit
from dl_course.training import DivergenceError


def test_engine_mlp_matches_the_same_torch_network():
    model = MLP((5, 7, 3), activation="tanh", seed=1)
    X, y = np.random.default_rng(0).normal(size=(10, 5)), np.arange(10) % 3
    loss = cross_entropy(model(X), y)
    loss.backward()
    W1, b1, W2, b2 = (torch.tensor(p.data, requires_grad=True) for p in model.parameters())
    logits = torch.tanh(torch.tensor(X) @ W1.T + b1) @ W2.T + b2
    ref = torch.nn.functional.cross_entropy(logits, torch.tensor(y))
    ref.backward()
    assert float(loss.data) == pytest.approx(ref.item(), rel=1e-12)
    for ours, theirs in zip(model.parameters(), (W1, b1, W2, b2), strict=True):
        np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_weights_have_the_out_in_layout_of_torch_linear():
    model = MLP((5, 7, 3), activation="relu", seed=2)
    assert [p.shape for p in model.parameters()] == [(7, 5), (7,), (3, 7), (3,)]
    for W in model.weights:
        assert W.data.flags.c_contiguous


def test_forward_equals_torch_linear_with_the_same_weights():
    model = MLP((5, 7, 3), activation="sigmoid", seed=3)
    model.biases[0].data[:] = np.linspace(-1.0, 1.0, 7)  # nonzero biases count too
    model.biases[1].data[:] = [0.5, -0.25, 2.0]
    layers = []
    for W, b in zip(model.weights, model.biases, strict=True):
        linear = torch.nn.Linear(W.shape[1], W.shape[0], dtype=torch.float64)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(W.data))
            linear.bias.copy_(torch.from_numpy(b.data))
        layers.append(linear)
    reference = torch.nn.Sequential(layers[0], torch.nn.Sigmoid(), layers[1])
    X = np.random.default_rng(4).normal(size=(9, 5))
    hidden, logits = model.layer_outputs(X)
    with torch.no_grad():
        expected = reference(torch.from_numpy(X)).numpy()
        expected_hidden = torch.sigmoid(layers[0](torch.from_numpy(X))).numpy()
    np.testing.assert_allclose(logits.data, expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(hidden.data, expected_hidden, rtol=1e-12, atol=1e-14)


def test_seeded_initialization_is_unchanged_by_the_layout():
    """A seed draws the (in, out) matrix of earlier versions; the model stores its transpose."""
    model = MLP((4, 6, 2), activation="tanh", seed=5)
    rng = np.random.default_rng(5)
    first = rng.normal(0.0, np.sqrt(2 / 10), size=(4, 6))
    second = rng.normal(0.0, np.sqrt(2 / 8), size=(6, 2))
    np.testing.assert_array_equal(model.weights[0].data, first.T)
    np.testing.assert_array_equal(model.weights[1].data, second.T)


def test_initialization_scales():
    relu = MLP((400, 300, 10), activation="relu", seed=0)
    tanh = MLP((400, 300, 10), activation="tanh", seed=0)
    assert relu.weights[0].data.var() == pytest.approx(2 / 400, rel=0.02)
    assert tanh.weights[0].data.var() == pytest.approx(2 / 700, rel=0.02)
    assert np.all(relu.biases[0].data == 0)


def test_fit_learns_digits_and_is_reproducible():
    X_train, X_test, y_train, y_test = data.load_digits()
    runs = [
        fit(MLP((64, 32, 10), seed=0), X_train, y_train, lr=0.1, epochs=8, seed=0) for _ in range(2)
    ]
    first, second = runs
    assert first.history.train_loss == second.history.train_loss
    assert first.history.train_loss[-1] < 0.3 * first.history.train_loss[0]
    assert np.mean(first.model.predict(X_test) == y_test) > 0.9


def test_fit_reports_divergence():
    X_train, _, y_train, _ = data.load_digits()
    with pytest.raises(DivergenceError, match="diverged in epoch 1"):
        fit(MLP((64, 32, 10), seed=0), X_train * 1e3, y_train, lr=1e3, epochs=3)


def test_fit_records_validation_accuracy_and_can_stop_on_divergence():
    X_train, X_test, y_train, y_test = data.load_digits()
    run = fit(
        MLP((64, 16, 10), seed=0), X_train, y_train, lr=0.1, epochs=3, X_val=X_test, y_val=y_test
    )
    assert len(run.history.val_accuracy) == 3
    assert run.history.val_accuracy[-1] == np.mean(run.model.predict(X_test) == y_test)
    blown = fit(
        MLP((64, 32, 10), seed=0), X_train * 1e3, y_train, lr=1e3, epochs=3, allow_divergence=True
    )
    assert blown.history.diverged and blown.history.train_loss == []
    with pytest.raises(ValueError, match="X_val and y_val go together"):
        fit(MLP((64, 10)), X_train, y_train, X_val=X_test)


def test_layer_outputs_are_hidden_activations_then_logits():
    model = MLP((2, 4, 3, 2), activation="relu", seed=0)
    outputs = model.layer_outputs(np.ones((5, 2)))
    assert [o.shape for o in outputs] == [(5, 4), (5, 3), (5, 2)]
    assert np.all(outputs[0].data >= 0) and np.all(outputs[1].data >= 0)


@pytest.mark.parametrize(
    "action, error, match",
    [
        (lambda: MLP((3,)), ValueError, "at least two layer widths"),
        (lambda: MLP("ab"), ValueError, "at least two layer widths"),
        (lambda: MLP((3, 0)), ValueError, "sizes\\[1\\] must be >= 1"),
        (lambda: MLP((3, 2), activation="gelu"), ValueError, "activation must be one of"),
        (lambda: MLP((3, 2))(np.ones((4, 2))), ValueError, "X must have 3 columns"),
        (lambda: fit(MLP((3, 2)), np.ones((4, 3)), [0, 1, 2, 0]), ValueError, "y must take values"),
        (lambda: fit("model", np.ones((4, 3)), [0, 1, 1, 0]), TypeError, "model must be an MLP"),
        (
            lambda: fit(MLP((3, 2)), np.ones((4, 3)), [0, 1, 1, 0], lr=-1),
            ValueError,
            "lr must be > 0",
        ),
    ],
)
def test_engine_mlp_rejects_bad_input(action, error, match):
    with pytest.raises(error, match=match):
        action()


@pytest.mark.parametrize("activation", TORCH_ACTIVATIONS)
def test_build_mlp_structure(activation):
    model = build_mlp((6, 5, 4, 3), activation=activation, norm="batch", dropout=0.2)
    kinds = [type(m).__name__ for m in model]
    assert (
        kinds.count("Linear") == 3
        and kinds.count("BatchNorm1d") == 2
        and kinds.count("Dropout") == 2
    )
    assert kinds[-1] == "Linear"
    assert model(torch.ones(7, 6)).shape == (7, 3)


@pytest.mark.parametrize(
    "init, variance",
    [("he", 2 / 500), ("xavier", 2 / 800), ("lecun", 1 / 500), ("torch", 1 / 1500)],
)
def test_build_mlp_initializations(init, variance):
    model = build_mlp((500, 300, 10), init=init, seed=3)
    assert model[0].weight.var().item() == pytest.approx(variance, rel=0.03)


def test_build_mlp_is_seeded_and_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    a = build_mlp((4, 3, 2), seed=7)
    b = build_mlp((4, 3, 2), seed=7, init="torch")
    assert torch.rand(1) == expected
    c = build_mlp((4, 3, 2), seed=7)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters(), strict=True))
    assert not torch.equal(a[0].weight, b[0].weight)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"activation": "swish"}, "activation must be one of"),
        ({"init": "zeros"}, "init must be one of"),
        ({"norm": "group"}, "norm must be one of"),
        ({"dropout": 1.0}, "dropout must be < 1.0"),
    ],
)
def test_build_mlp_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_mlp((3, 2), **kwargs)


def test_inits_are_documented():
    assert set(INITS) == {"he", "xavier", "lecun", "torch"}
