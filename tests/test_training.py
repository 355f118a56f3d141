import numpy as np
import pytest
import torch

from dl_course import data
from dl_course.mlp import build_mlp
from dl_course.training import (
    DivergenceError,
    accuracy,
    batches,
    check_divergence,
    train_classifier,
)


@pytest.fixture(scope="module")
def digits():
    return data.load_digits()


def test_sgd_training_learns_and_is_reproducible(digits):
    X_train, X_test, y_train, y_test = digits
    histories = []
    for _ in range(2):
        model = build_mlp((64, 32, 10), seed=0)
        histories.append(
            train_classifier(
                model,
                X_train,
                y_train,
                lr=0.1,
                epochs=8,
                batch_size=32,
                X_val=X_test,
                y_val=y_test,
                seed=1,
            )
        )
    assert histories[0] == histories[1]
    history = histories[0]
    assert len(history.train_loss) == len(history.val_accuracy) == 8
    assert history.train_loss[-1] < history.train_loss[0]
    assert history.val_accuracy[-1] > 0.9
    assert accuracy(model, X_test, y_test) == pytest.approx(history.val_accuracy[-1])
    assert model.training  # accuracy() restores the mode


def test_adam_with_momentum_free_options(digits):
    X_train, _, y_train, _ = digits
    history = train_classifier(
        build_mlp((64, 16, 10)), X_train, y_train, lr=1e-2, epochs=3, optimizer="adam"
    )
    assert history.train_accuracy[-1] > 0.85


def test_divergence_is_reported(digits):
    X_train, _, y_train, _ = digits
    model = build_mlp((64, 32, 10), activation="identity", seed=0)
    with pytest.raises(DivergenceError, match="diverged"):
        train_classifier(model, X_train * 1e4, y_train, lr=10.0, epochs=5)
    model = build_mlp((64, 32, 10), activation="identity", seed=0)
    history = train_classifier(
        model, X_train * 1e4, y_train, lr=10.0, epochs=5, allow_divergence=True
    )
    assert history.diverged and len(history.train_loss) == len(history.train_accuracy) < 5


def test_batches_cover_every_example_once():
    parts = batches(10, 4, np.random.default_rng(0))
    assert [len(p) for p in parts] == [4, 4, 2]
    assert sorted(np.concatenate(parts).tolist()) == list(range(10))


def test_check_divergence():
    check_divergence(50.0, 1, 0.1, initial=2.3)
    with pytest.raises(DivergenceError, match="epoch 3: the loss is nan"):
        check_divergence(float("nan"), 3, 0.1, initial=2.3)
    with pytest.raises(DivergenceError, match="the loss is 231 \\(it was 2.3 at the start\\)"):
        check_divergence(231.0, 2, 0.1, initial=2.3)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"lr": 0.0}, ValueError, "lr must be > 0"),
        ({"epochs": 0}, ValueError, "epochs must be >= 1"),
        ({"optimizer": "rmsprop"}, ValueError, "optimizer must be 'sgd' or 'adam'"),
        ({"momentum": 1.0}, ValueError, "momentum must be < 1.0"),
        ({"X_val": np.ones((3, 4))}, ValueError, "X_val and y_val go together"),
        ({"X_val": np.ones((3, 4)), "y_val": [0, 1]}, ValueError, "y_val must have length 3"),
    ],
)
def test_train_classifier_rejects_bad_input(kwargs, error, match):
    model = build_mlp((4, 2))
    args = {"lr": 0.1, "epochs": 1} | kwargs
    with pytest.raises(error, match=match):
        train_classifier(model, np.ones((6, 4)), np.zeros(6, dtype=int), **args)


def dropout_mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Dropout(0.5), torch.nn.Linear(32, 10)
    )


def full_batch_losses(model, X, y, seed):
    """Per-epoch losses of a full-batch run: the seed can only matter through torch."""
    history = train_classifier(model, X, y, lr=0.5, epochs=3, batch_size=len(y), seed=seed)
    return np.array(history.train_loss)


def test_seed_makes_dropout_reproducible_and_leaves_the_global_stream_alone(digits):
    X_train, _, y_train, _ = digits
    X, y = X_train[:200], y_train[:200]
    models = [dropout_mlp() for _ in range(3)]  # three identical models
    torch.manual_seed(123)  # the caller's stream must not matter ...
    first = full_batch_losses(models[0], X, y, seed=1)
    torch.manual_seed(456)
    state = torch.get_rng_state()
    second = full_batch_losses(models[1], X, y, seed=1)
    assert torch.equal(torch.get_rng_state(), state)  # ... and is left as it was
    np.testing.assert_array_equal(first, second)
    other = full_batch_losses(models[2], X, y, seed=2)
    assert np.max(np.abs(other - first)) > 1e-3  # other dropout masks
    # without dropout a full-batch run ignores the seed (up to summation order)
    plain = [full_batch_losses(build_mlp((64, 32, 10)), X, y, seed=s) for s in (1, 2)]
    np.testing.assert_allclose(plain[0], plain[1], rtol=1e-5)


def batchnorm_mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(64, 16), torch.nn.BatchNorm1d(16), torch.nn.ReLU(), torch.nn.Linear(16, 10)
    )


def test_initial_loss_leaves_batchnorm_statistics_alone(digits):
    X_train, _, y_train, _ = digits
    X, y = X_train[:100], y_train[:100]
    model = batchnorm_mlp()
    bn = model[1]
    seen = []  # (training mode, batches tracked so far) at every BatchNorm call
    bn.register_forward_pre_hook(
        lambda module, _: seen.append((module.training, int(module.num_batches_tracked)))
    )
    train_classifier(model, X, y, lr=0.1, epochs=2, batch_size=32, seed=0)
    assert seen[0] == (False, 0)  # the initial loss: eval mode
    assert seen[1] == (True, 0)  # the first update starts from untouched statistics
    assert int(bn.num_batches_tracked) == 2 * 4  # one per mini-batch, none more
    # the divergence test compares with the eval-mode loss of the untrained model
    fresh = batchnorm_mlp().eval()
    with torch.no_grad():
        expected = torch.nn.functional.cross_entropy(
            fresh(torch.as_tensor(X, dtype=torch.float32)), torch.as_tensor(y)
        ).item()
    with pytest.raises(DivergenceError, match=f"it was {expected:.4g} at the start"):
        train_classifier(batchnorm_mlp(), X, y, lr=1e4, epochs=5, batch_size=32)


@pytest.mark.parametrize("mode", [True, False])
def test_the_models_mode_is_restored(digits, mode):
    X_train, _, y_train, _ = digits
    model = torch.nn.Sequential(torch.nn.Linear(64, 10), torch.nn.Dropout(0.1))
    model.train(mode)
    train_classifier(model, X_train[:64], y_train[:64], lr=0.1, epochs=1)
    assert model.training is mode and model[1].training is mode
    model.train(mode)
    with pytest.raises(ValueError):
        train_classifier(model, X_train[:64], y_train[:64] + 10, lr=0.1, epochs=1)
    assert model.training is mode


@pytest.mark.parametrize(
    "labels, val_labels, match",
    [
        (
            [0, 1, 2, 3, 4, 10],
            None,
            r"y must hold class indices 0 \.\. 9 \(the model has 10 outputs\), found \[10\]",
        ),
        ([0, -1, 2, 3, 4, 5], None, r"y must hold class indices 0 \.\. 9 .*found \[-1\]"),
        (
            [0, 1, 2, 3, 4, 5],
            [0, 12, 11],
            r"y_val must hold class indices 0 \.\. 9 .*found \[11, 12\]",
        ),
    ],
)
def test_labels_must_be_class_indices_of_the_model(labels, val_labels, match):
    model = build_mlp((4, 10))
    before = [p.detach().clone() for p in model.parameters()]
    val = {} if val_labels is None else {"X_val": np.ones((3, 4)), "y_val": val_labels}
    with pytest.raises(ValueError, match=match):
        train_classifier(model, np.ones((6, 4)), labels, lr=0.1, epochs=1, **val)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_the_model_must_return_one_row_of_logits_per_example():
    flat = torch.nn.Sequential(torch.nn.Linear(4, 1), torch.nn.Flatten(0))  # shape (N,)
    with pytest.raises(ValueError, match="logits of shape \\(N, C\\).*returned shape \\(6,\\)"):
        train_classifier(flat, np.ones((6, 4)), np.zeros(6, dtype=int), lr=0.1, epochs=1)


def test_accuracy_of_a_perfect_model():
    model = torch.nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(2))
    assert accuracy(model, np.array([[1.0, 0.0], [0.0, 1.0]]), [0, 1]) == 1.0


def test_small_models_train_on_one_thread_and_the_setting_is_restored(digits):
    X_train, _, y_train, _ = digits
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    seen = []

    class Spy(torch.nn.Sequential):
        def forward(self, x):
            seen.append(torch.get_num_threads())
            return super().forward(x)

    model = Spy(*build_mlp((64, 8, 10)))
    train_classifier(model, X_train[:100], y_train[:100], lr=0.1, epochs=1)
    assert set(seen) == {1}
    assert torch.get_num_threads() == 2
    torch.set_num_threads(before)
