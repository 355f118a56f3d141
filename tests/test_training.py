
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
