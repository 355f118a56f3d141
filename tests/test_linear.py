import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dl_course import data
from dl_course.linear import (
    objective,
    objective_grad,
    predict,
    train_linear_classifier,
)


def blobs(n=60, d=3, c=4, seed=0, spread=0.3):
    """``c`` Gaussian blobs around random centres: (nearly) linearly separable."""
    rng = np.random.default_rng(seed)
    centres = 2 * rng.standard_normal((c, d))
    y = np.arange(n) % c
    return centres[y] + spread * rng.standard_normal((n, d)), y


def torch_objective(X, y, W, b, loss, reg):
    """The same objective written with torch.nn.functional, in float64."""
    scores = X @ W.T + b
    n_classes = W.shape[0]
    if loss == "softmax":
        data_loss = F.cross_entropy(scores, y)
    elif loss == "hinge":
        data_loss = n_classes * F.multi_margin_loss(scores, y)
    else:
        data_loss = F.mse_loss(scores, F.one_hot(y, n_classes).double())
    return data_loss + reg * (W**2).sum()


@pytest.mark.parametrize("loss", ["softmax", "hinge", "mse"])
@pytest.mark.parametrize("reg", [0.0, 0.05])
def test_objective_and_gradient_match_autograd(loss, reg):
    X, y = blobs(seed=1)
    rng = np.random.default_rng(2)
    W, b = rng.standard_normal((4, 3)), rng.standard_normal(4)
    Wt = torch.tensor(W, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)
    reference = torch_objective(torch.tensor(X), torch.tensor(y), Wt, bt, loss, reg)
    reference.backward()
    assert objective(X, y, W, b, loss, reg) == pytest.approx(reference.item(), rel=1e-12)
    grad_W, grad_b = objective_grad(X, y, W, b, loss, reg)
    np.testing.assert_allclose(grad_W, Wt.grad.numpy(), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(grad_b, bt.grad.numpy(), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("loss, lr", [("softmax", 0.5), ("hinge", 0.05), ("mse", 0.1)])
def test_training_matches_torch_gradient_descent(loss, lr):
    X, y = blobs(seed=3)
    result = train_linear_classifier(X, y, loss=loss, lr=lr, epochs=25, reg=0.01, seed=4)
    # Same start: the documented initialization, 0.01 * standard normal from default_rng(seed).
    W0 = 0.01 * np.random.default_rng(4).standard_normal((4, 3))
    Wt = torch.tensor(W0, requires_grad=True)
    bt = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.SGD([Wt, bt], lr=lr)
    history = []
    for _ in range(25):
        optimizer.zero_grad()
        value = torch_objective(torch.tensor(X), torch.tensor(y), Wt, bt, loss, 0.01)
        history.append(value.item())
        value.backward()
        optimizer.step()
    np.testing.assert_allclose(result.W, Wt.detach().numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(result.b, bt.detach().numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(result.loss_history[:25], history, rtol=1e-10)


@pytest.mark.parametrize("loss, lr", [("softmax", 1.0), ("hinge", 0.1), ("mse", 0.2)])
def test_training_fits_separable_blobs(loss, lr):
    X, y = blobs(seed=5)
    result = train_linear_classifier(X, y, loss=loss, lr=lr, epochs=300)
    assert result.train_accuracy == 1.0
    assert result.accuracy(X, y) == 1.0
    assert result.loss_history[-1] < 0.5 * result.loss_history[0]
    assert result.loss_history.shape == (301,) and result.loss == loss
    np.testing.assert_array_equal(result.predict(X), y)


def test_initial_losses_are_the_sanity_check_values():
    # Tiny random weights: softmax starts at log C, hinge at (C - 1) * margin.
    X, y = blobs(c=10, n=100)
    for loss, expected in (("softmax", math.log(10)), ("hinge", 9.0)):
        result = train_linear_classifier(X, y, loss=loss, epochs=0, init_scale=1e-6)
        assert result.loss_history.shape == (1,)
        assert result.loss_history[0] == pytest.approx(expected, rel=1e-4)


def test_regularization_shrinks_the_weights_and_is_in_the_history():
    X, y = blobs(seed=6)
    free = train_linear_classifier(X, y, lr=0.5, epochs=200)
    tied = train_linear_classifier(X, y, lr=0.5, epochs=200, reg=0.1)
    assert np.linalg.norm(tied.W) < 0.5 * np.linalg.norm(free.W)
    penalty = tied.loss_history[-1] - tied.data_loss_history[-1]
    assert penalty == pytest.approx(0.1 * np.sum(tied.W**2), rel=1e-12)
    np.testing.assert_array_equal(free.loss_history, free.data_loss_history)


def test_seed_controls_the_initialization():
    X, y = blobs(seed=7)
    a = train_linear_classifier(X, y, epochs=5, seed=1)
    b = train_linear_classifier(X, y, epochs=5, seed=1)
    c = train_linear_classifier(X, y, epochs=5, seed=2)
    np.testing.assert_array_equal(a.W, b.W)
    assert not np.allclose(a.W, c.W)


def test_divergence_raises_a_clear_error():
    X, y = blobs(seed=8)
    with pytest.raises(FloatingPointError, match=r"loss='mse' diverged at epoch \d+.*lr=50"):
        train_linear_classifier(X, y, loss="mse", lr=50.0, epochs=2000)


def test_n_classes_can_exceed_the_labels_present():
    X, y = blobs(c=3, seed=9)
    result = train_linear_classifier(X, y, epochs=10, n_classes=5)
    assert result.W.shape == (5, 3) and result.b.shape == (5,)


def test_digits_reach_a_sane_accuracy():
    X_train, X_test, y_train, y_test = data.load_digits()
    result = train_linear_classifier(X_train, y_train, lr=1.0, epochs=200)
    assert result.accuracy(X_test, y_test) > 0.9


def test_predict_is_the_argmax_with_ties_to_the_smallest_class():
    W = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    b = np.zeros(3)
    np.testing.assert_array_equal(predict([[2.0, 1.0], [0.0, 3.0], [1.0, 1.0]], W, b), [0, 1, 0])
    np.testing.assert_array_equal(predict([[0.0, 0.0]], W, [0.0, 0.0, 0.1]), [2])


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"loss": "svm"}, ValueError, r"loss must be one of \['hinge', 'mse', 'softmax'\]"),
        ({"loss": None}, ValueError, "loss must be one of"),
        ({"lr": 0.0}, ValueError, "lr must be > 0"),
        ({"lr": "big"}, TypeError, "lr must be a real number"),
        ({"epochs": -1}, ValueError, "epochs must be >= 0"),
        ({"epochs": 2.5}, TypeError, "epochs must be an integer"),
        ({"reg": -0.1}, ValueError, "reg must be >= 0"),
        ({"seed": -1}, ValueError, "seed must be >= 0"),
        ({"n_classes": 2}, ValueError, r"y must take values in \[0, 1\], found \[2, 3\]"),
        ({"init_scale": -1.0}, ValueError, "init_scale must be >= 0"),
    ],
)
def test_train_rejects_bad_arguments(kwargs, error, match):
    X, y = blobs()
    with pytest.raises(error, match=match):
        train_linear_classifier(X, y, **kwargs)


@pytest.mark.parametrize(
    "X, y, error, match",
    [
        ([1.0, 2.0], [0, 1], ValueError, "X must be 2-D"),
        ([[1.0], [2.0]], [0], ValueError, "y must have length 2"),
        ([[1.0], [2.0]], [0, -1], ValueError, "y must hold labels 0 .. C-1"),
        ([[1.0], [np.nan]], [0, 1], ValueError, "X must contain only finite"),
    ],
)
def test_train_rejects_bad_data(X, y, error, match):
    with pytest.raises(error, match=match):
        train_linear_classifier(X, y)


@pytest.mark.parametrize(
    "W, b, match",
    [
        (np.zeros((3, 3)), np.zeros(3), "W must have 2 columns"),
        (np.zeros((3, 2)), np.zeros(2), "b must have length 3"),
        (np.zeros(2), np.zeros(3), "W must be 2-D"),
    ],
)
def test_predict_and_objective_reject_bad_parameters(W, b, match):
    X = np.ones((4, 2))
    with pytest.raises(ValueError, match=match):
        predict(X, W, b)
    with pytest.raises(ValueError, match=match):
        objective(X, [0, 1, 2, 0], W, b)


def test_objective_rejects_labels_beyond_the_rows_of_w():
    with pytest.raises(ValueError, match=r"y must take values in \[0, 1\]"):
        objective(np.ones((2, 2)), [0, 2], np.zeros((2, 2)), np.zeros(2))
    with pytest.raises(ValueError, match="reg must be >= 0"):
        objective_grad(np.ones((2, 2)), [0, 1], np.zeros((2, 2)), np.zeros(2), reg=-1.0)


def test_accuracy_history_follows_training():
    X, y = blobs(seed=10)
    result = train_linear_classifier(X, y, lr=0.5, epochs=40)
    assert result.accuracy_history.shape == (41,)
    assert result.train_accuracy == result.accuracy_history[-1] == result.accuracy(X, y)
    W0 = 0.01 * np.random.default_rng(0).standard_normal((4, 3))
    assert result.accuracy_history[0] == np.mean(predict(X, W0, np.zeros(4)) == y)
    assert result.accuracy_history[-1] > result.accuracy_history[0]


def test_threaded_and_single_threaded_blas_agree(monkeypatch):
    from dl_course import _threads

    X, y = blobs(seed=11)
    small = train_linear_classifier(X, y, lr=0.5, epochs=30)
    monkeypatch.setattr(_threads, "SINGLE_THREAD_WORK", 0)  # take the threaded path
    large = train_linear_classifier(X, y, lr=0.5, epochs=30)
    np.testing.assert_allclose(small.W, large.W, rtol=1e-10, atol=1e-13)


def test_training_uses_the_public_loss_kernels():
    from dl_course import losses
    from dl_course.linear import LOSSES

    assert LOSSES["softmax"] is losses.softmax_cross_entropy_with_grad
    assert LOSSES["hinge"] is losses.hinge_loss_with_grad
    X, y = blobs(seed=12)
    W, b = np.random.default_rng(13).standard_normal((4, 3)), np.zeros(4)
    scores = X @ W.T + b
    assert objective(X, y, W, b, "hinge") == pytest.approx(losses.hinge_loss(scores, y))
    assert objective(X, y, W, b, "softmax") == pytest.approx(
        losses.softmax_cross_entropy(scores, y)
    )


@pytest.mark.parametrize("module", ["linear", "autograd"])
def test_no_private_names_of_losses_are_used_elsewhere(module):
    """The kernels that other modules share are public, documented functions of losses."""
    import ast
    import importlib
    import inspect

    tree = ast.parse(inspect.getsource(importlib.import_module(f"dl_course.{module}")))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "dl_course.losses":
            assert not [a.name for a in node.names if a.name.startswith("_")]
        if isinstance(node, ast.Attribute) and getattr(node.value, "id", None) == "losses":
            assert not node.attr.startswith("_"), f"losses.{node.attr} used in {module}"
