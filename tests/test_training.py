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
        ({"optimizer": "rmsprop"}, ValueError, "optimizer must be one of \\['sgd', 'momentum'"),
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


# -- chapter 7: the grown loop ----------------------------------------------------------------


def small_split(digits, n=200):
    X_train, X_test, y_train, y_test = digits
    return X_train[:n], y_train[:n], X_test[:150], y_test[:150]


@pytest.mark.parametrize("monitor", ["val_loss", "val_accuracy"])
def test_early_stopping_restores_the_best_epochs_weights(digits, monitor):
    X, y, X_val, y_val = small_split(digits, 100)
    model = build_mlp((64, 128, 10), seed=0)
    history = train_classifier(
        model, X, y, lr=0.5, epochs=200, batch_size=25, X_val=X_val, y_val=y_val,
        patience=5, monitor=monitor,
    )  # fmt: skip
    values = np.array(getattr(history, monitor))
    best = int(np.argmax(values) if monitor == "val_accuracy" else np.argmin(values))
    assert history.best_epoch == best + 1
    assert history.stopped_epoch == len(values) == history.best_epoch + 5 < 200
    # the returned model is the best epoch's, not the last one's: evaluate it afresh
    with torch.no_grad():
        logits = model(torch.as_tensor(X_val, dtype=torch.float32))
        loss = torch.nn.functional.cross_entropy(logits, torch.as_tensor(y_val)).item()
    assert loss == pytest.approx(history.val_loss[best], rel=1e-6)
    assert accuracy(model, X_val, y_val) == history.val_accuracy[best]


def test_restore_best_without_stopping_and_min_delta(digits):
    X, y, X_val, y_val = small_split(digits, 100)
    model = build_mlp((64, 64, 10), seed=1)
    history = train_classifier(
        model, X, y, lr=0.5, epochs=30, batch_size=25, X_val=X_val, y_val=y_val,
        restore_best=True,
    )  # fmt: skip
    assert history.stopped_epoch is None and len(history.val_loss) == 30
    assert history.best_epoch == int(np.argmin(history.val_loss)) + 1
    assert accuracy(model, X_val, y_val) == history.val_accuracy[history.best_epoch - 1]
    # a huge min_delta: no epoch after the first counts as progress
    history = train_classifier(
        build_mlp((64, 64, 10), seed=1), X, y, lr=0.5, epochs=30, batch_size=25,
        X_val=X_val, y_val=y_val, patience=3, min_delta=10.0,
    )  # fmt: skip
    assert history.best_epoch == 1 and history.stopped_epoch == 4


def test_runs_are_reproducible_from_one_seed(digits):
    X, y, X_val, y_val = small_split(digits)

    def run(seed):
        model = torch.nn.Sequential(
            torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Dropout(0.2),
            torch.nn.Linear(32, 10),
        )  # fmt: skip
        with torch.no_grad():  # the same initial weights every time
            for k, p in enumerate(model.parameters()):
                p.copy_(torch.linspace(-0.1, 0.1, p.numel()).view(p.shape) * (k + 1))
        return train_classifier(
            model, X, y, lr=0.1, epochs=3, batch_size=16, X_val=X_val, y_val=y_val, seed=seed,
            augment=lambda rows, rng: rows + 0.05 * rng.normal(size=rows.shape),
        )  # fmt: skip

    first, second, other = run(4), run(4), run(5)
    assert first == second  # batch order, dropout masks and augmentation all seeded
    assert first.train_loss != other.train_loss


def test_the_schedule_sets_the_rate_of_every_step(digits):
    from dl_course.optim import cosine_annealing, step_decay

    X, y, _, _ = small_split(digits, 100)
    schedule = lambda t: step_decay(0.3, t, step_size=4, gamma=0.5)  # noqa: E731
    model = build_mlp((64, 16, 10), seed=0)
    reference = build_mlp((64, 16, 10), seed=0)
    history = train_classifier(model, X, y, lr=0.3, epochs=12, batch_size=100, schedule=schedule)
    assert history.lrs == [schedule(t) for t in range(12)]
    # the same run by hand, with torch's LambdaLR: the same weights
    opt = torch.optim.SGD(reference.parameters(), lr=0.3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: schedule(t) / 0.3)
    X_t, y_t = torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y)
    for _ in range(12):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(reference(X_t), y_t).backward()
        opt.step()
        scheduler.step()
    for a, b in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # per epoch: every step of epoch e runs at schedule(e - 1)
    cosine = lambda t: cosine_annealing(0.2, t, t_max=3)  # noqa: E731
    history = train_classifier(
        build_mlp((64, 16, 10)), X, y, lr=0.2, epochs=3, batch_size=40, schedule=cosine,
        schedule_unit="epoch",
    )  # fmt: skip
    assert history.lrs == [cosine(e) for e in range(3) for _ in range(3)]


def test_divergence_names_the_step_and_suggests_a_smaller_rate(digits):
    X, y, _, _ = small_split(digits)
    model = build_mlp((64, 32, 10), activation="identity", seed=0)
    pattern = (
        r"training diverged at step (\d+) \(epoch (\d+), batch (\d+)\): the loss is (nan|inf); "
        r"try a smaller learning rate \(lr = 1e\+06\)"
    )
    with pytest.raises(DivergenceError, match=pattern) as error:
        train_classifier(model, X * 100, y, lr=1e6, epochs=5, batch_size=20)
    import re

    step, epoch, batch, _ = re.search(pattern, str(error.value)).groups()
    assert int(step) == (int(epoch) - 1) * 10 + int(batch)  # 10 batches per epoch
    history = train_classifier(
        build_mlp((64, 32, 10), activation="identity", seed=0), X * 100, y, lr=1e6, epochs=5,
        batch_size=20, allow_divergence=True,
    )  # fmt: skip
    assert history.diverged and re.search(pattern, history.divergence)
    assert len(history.step_loss) == int(step) - 1  # the records stop before the bad step


def test_progress_bar_follows_the_argument_and_the_environment(digits, monkeypatch, capsys):
    from dl_course import training

    X, y, _, _ = small_split(digits, 50)
    monkeypatch.setattr(training, "_interactive", lambda: True)  # as in a terminal
    monkeypatch.setenv(training.PROGRESS_ENV, "0")  # what make book / make test set
    assert not training.progress_enabled()
    train_classifier(build_mlp((64, 10)), X, y, lr=0.1, epochs=3)
    assert capsys.readouterr().err == ""
    train_classifier(build_mlp((64, 10)), X, y, lr=0.1, epochs=3, progress=True)
    assert "3/3" in capsys.readouterr().err  # an explicit request wins
    monkeypatch.setenv(training.PROGRESS_ENV, "auto")
    assert training.progress_enabled()
    monkeypatch.setattr(training, "_interactive", lambda: False)
    assert not training.progress_enabled()
    monkeypatch.setenv(training.PROGRESS_ENV, "on")
    assert training.progress_enabled() and not training.progress_enabled(False)
    monkeypatch.setenv(training.PROGRESS_ENV, "maybe")
    with pytest.raises(ValueError, match="DL_COURSE_PROGRESS must be one of"):
        training.progress_enabled()


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam", "adamw"])
def test_a_stack_trains_each_member_as_a_separate_run_would(digits, optimizer):
    from dl_course.training import stack_models

    X, y, X_val, y_val = small_split(digits)
    lrs = [1e-2, 3e-3, 1e-3] if optimizer.startswith("adam") else [0.1, 0.05, 0.02]
    decays, seeds = [0.0, 1e-3, 1e-2], [0, 1, 2]
    stack = stack_models([build_mlp((64, 16, 10), seed=s) for s in seeds])
    common = {"epochs": 3, "batch_size": 32, "optimizer": optimizer, "X_val": X_val, "y_val": y_val}
    together = train_classifier(stack, X, y, lr=lrs, weight_decay=decays, seed=seeds, **common)
    trained = stack.unstack()
    assert np.array(together.val_accuracy).shape == (3, 3)
    for k, seed in enumerate(seeds):
        alone = build_mlp((64, 16, 10), seed=seed)
        history = train_classifier(
            alone, X, y, lr=lrs[k], weight_decay=decays[k], seed=seed, **common
        )
        member = together.member(k)
        np.testing.assert_allclose(member.train_loss, history.train_loss, rtol=1e-5)
        np.testing.assert_allclose(member.val_loss, history.val_loss, rtol=1e-5)
        assert member.lrs == history.lrs
        for a, b in zip(trained[k].parameters(), alone.parameters(), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert accuracy(stack, X_val, y_val).tolist() == together.val_accuracy[-1].tolist()


def test_a_stack_stops_early_per_member(digits):
    from dl_course.training import stack_models

    X, y, X_val, y_val = small_split(digits, 100)
    stack = stack_models([build_mlp((64, 128, 10), seed=s) for s in range(3)])
    history = train_classifier(
        stack, X, y, lr=[0.5, 0.2, 0.05], epochs=60, batch_size=25, X_val=X_val, y_val=y_val,
        seed=[0, 1, 2], patience=4,
    )  # fmt: skip
    val_loss = np.array(history.val_loss)  # (epochs, 3)
    np.testing.assert_array_equal(history.best_epoch, val_loss.argmin(axis=0) + 1)
    assert history.stopped_epoch is None or history.stopped_epoch == history.best_epoch.max() + 4
    restored = accuracy(stack, X_val, y_val)  # each member at its own best epoch
    best = np.array(history.val_accuracy)[history.best_epoch - 1, range(3)]
    np.testing.assert_array_equal(restored, best)


def test_update_ratios_are_the_relative_change_of_each_weight_matrix(digits):
    from dl_course.training import update_ratios

    X, y, _, _ = small_split(digits, 64)
    model = build_mlp((64, 8, 10), seed=0)
    start = [p.detach().clone() for p in model.parameters()]
    history = train_classifier(
        model, X, y, lr=0.1, epochs=1, batch_size=64, callback=update_ratios(model),
        callback_every="step",
    )  # fmt: skip
    (ratio,) = history.records["ratio:0.weight"]
    expected = (model[0].weight - start[0]).norm() / start[0].norm()
    assert ratio == pytest.approx(expected.item(), rel=1e-5)
    assert set(history.records) == {"ratio:0.weight", "ratio:2.weight"}


def test_frozen_parameters_stay_put_and_identity_augmentation_changes_nothing(digits):
    X, y, _, _ = small_split(digits, 100)
    model = build_mlp((64, 16, 10), seed=0)
    model[0].requires_grad_(False)
    frozen = model[0].weight.detach().clone()
    plain = train_classifier(model, X, y, lr=0.1, epochs=2, weight_decay=1e-2)
    assert torch.equal(model[0].weight, frozen)
    again = build_mlp((64, 16, 10), seed=0)
    again[0].requires_grad_(False)
    same = train_classifier(
        again, X, y, lr=0.1, epochs=2, weight_decay=1e-2, augment=lambda rows, rng: rows.copy()
    )
    assert same == plain


def test_callbacks_record_per_epoch_values(digits):
    X, y, _, _ = small_split(digits, 64)
    seen = []

    def callback(model, step):
        seen.append((step.epoch, step.step))
        return {"double_loss": 2 * step.loss}

    history = train_classifier(build_mlp((64, 10)), X, y, lr=0.1, epochs=3, callback=callback)
    assert seen == [(1, 1), (2, 2), (3, 3)]
    assert history.records["double_loss"] == [2 * v for v in history.train_loss]


def bn_model():
    return torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"lr": [0.1, 0.2]}, ValueError, "lr must be a single number for one model"),
        ({"seed": [0, 1]}, ValueError, "seed must be a single integer for one model"),
        ({"patience": 3}, ValueError, "patience and restore_best need a validation set"),
        ({"restore_best": True}, ValueError, "need a validation set"),
        ({"patience": 0, "X_val": np.ones((3, 4)), "y_val": [0, 1, 0]}, ValueError, "patience"),
        ({"monitor": "loss"}, ValueError, "monitor must be one of \\['val_loss'"),
        ({"schedule": 0.1}, TypeError, "schedule must be callable"),
        ({"schedule": lambda t: -1.0}, ValueError, "schedule\\(0\\) must be a finite rate >= 0"),
        ({"schedule_unit": "batch"}, ValueError, "schedule_unit must be one of"),
        ({"augment": lambda rows, rng: rows[:1]}, ValueError, "augment must return an array"),
        ({"callback": lambda m, s: 3.0}, TypeError, "callback must return a mapping"),
        ({"callback_every": "batch"}, ValueError, "callback_every must be one of"),
        ({"optimizer": "adam", "momentum": 0.9}, ValueError, "momentum applies to 'sgd'"),
        ({"betas": (0.9,)}, TypeError, "betas must be a pair"),
        ({"progress": "yes"}, TypeError, "progress must be True or False"),
        ({"min_delta": -1.0}, ValueError, "min_delta must be >= 0"),
    ],
)
def test_the_new_options_reject_bad_input(kwargs, error, match):
    args = {"lr": 0.1, "epochs": 1} | kwargs
    with pytest.raises(error, match=match):
        train_classifier(build_mlp((4, 2)), np.ones((6, 4)), np.zeros(6, dtype=int), **args)


def test_stacks_reject_what_they_cannot_hold():
    from dl_course.training import stack_models

    with pytest.raises(ValueError, match="has buffers"):
        stack_models([bn_model(), bn_model()])
    with pytest.raises(ValueError, match="models\\[1\\] differs from models\\[0\\]"):
        stack_models([build_mlp((4, 3)), build_mlp((4, 5, 3))])
    with pytest.raises(ValueError, match="at least one model"):
        stack_models([])
    with pytest.raises(TypeError, match="sequence of torch modules"):
        stack_models(build_mlp((4, 3)))
    stack = stack_models([build_mlp((4, 2), seed=s) for s in range(2)])
    with pytest.raises(ValueError, match="one value per member \\(2\\), got 3"):
        train_classifier(stack, np.ones((6, 4)), np.zeros(6, dtype=int), lr=[1, 2, 3], epochs=1)
    with pytest.raises(ValueError, match="inputs of shape \\(N, d\\) or \\(2, N, d\\)"):
        stack(torch.ones(3, 6, 4))


def test_one_torch_thread_only_for_small_work_and_restores_the_setting():
    from dl_course._threads import SINGLE_THREAD_WORK, one_torch_thread

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with one_torch_thread():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with one_torch_thread(2 * SINGLE_THREAD_WORK):
            assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError), one_torch_thread():
            raise RuntimeError("restored even on error")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_shared_torch_checks_name_the_argument():
    from dl_course._checks import check_float_tensor, check_module

    with pytest.raises(TypeError, match="net must be a torch.nn.Module, got list"):
        check_module([], "net")
    with pytest.raises(TypeError, match=r"x must be a torch tensor, got ndarray \(convert"):
        check_float_tensor(np.zeros(2), "x")
    with pytest.raises(TypeError, match="x must hold floating-point values, got dtype torch.int64"):
        check_float_tensor(torch.zeros(2, dtype=torch.long), "x")
    t = torch.zeros(2)
    assert check_float_tensor(t, "x") is t
