import numpy as np
import pytest
import torch
from scipy.special import softmax as scipy_softmax

from dl_course import data
from dl_course.ensembles import (
    Snapshots,
    cyclic_cosine,
    ensemble_accuracy,
    ensemble_probabilities,
    member_accuracies,
    softmax,
)
from dl_course.mlp import build_mlp
from dl_course.training import stack_models, train_classifier


def test_softmax_agrees_with_scipy_and_survives_large_logits():
    logits = np.random.default_rng(0).normal(size=(4, 5, 3)) * 10
    np.testing.assert_allclose(softmax(logits), scipy_softmax(logits, axis=-1), rtol=1e-12)
    assert np.isfinite(softmax(np.array([1e4, 0.0]))).all()


def test_the_ensemble_averages_probabilities_not_votes():
    # two confident members wrong, one very confident member right: probabilities decide
    logits = np.log(
        np.array([[[0.6, 0.4]], [[0.6, 0.4]], [[0.01, 0.99]]])
    )  # 3 members, 1 example, 2 classes
    np.testing.assert_allclose(ensemble_probabilities(logits), [[0.4033333, 0.5966667]], rtol=1e-6)
    assert ensemble_accuracy(logits, [1]) == 1.0
    assert member_accuracies(logits, [1]).tolist() == [0.0, 0.0, 1.0]


def test_ensemble_of_stacked_runs_has_one_accuracy_per_run():
    logits = np.random.default_rng(1).normal(size=(3, 4, 20, 5))  # members, runs, N, C
    y = np.random.default_rng(2).integers(0, 5, size=20)
    accs = ensemble_accuracy(logits, y)
    assert accs.shape == (4,)
    for k in range(4):
        assert accs[k] == ensemble_accuracy(logits[:, k], y)
    assert member_accuracies(logits, y).shape == (3, 4)


def test_cyclic_cosine_equals_torchs_warm_restarts():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.2)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=7, eta_min=0.01)
    for t in range(30):
        assert cyclic_cosine(0.2, t, 7, 0.01) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12)
        opt.step()
        scheduler.step()


def test_snapshots_save_the_model_at_the_end_of_every_cycle():
    X_train, X_test, y_train, y_test = data.load_digits()
    X, y = X_train[:200], y_train[:200]
    snaps = Snapshots(X_test, every=2)
    model = build_mlp((64, 16, 10), seed=0)
    history = train_classifier(
        model, X, y, lr=0.2, epochs=6, batch_size=50, callback=snaps,
        schedule=lambda t: cyclic_cosine(0.2, t, 8),
    )  # fmt: skip
    assert snaps.epochs == [2, 4, 6] and snaps.logits.shape == (3, 450, 10)
    assert history.records == {}
    with torch.no_grad():
        final = model(torch.as_tensor(X_test, dtype=torch.float32)).double().numpy()
    np.testing.assert_allclose(snaps.logits[-1], final, rtol=1e-6)
    stack = stack_models([build_mlp((64, 16, 10), seed=s) for s in range(2)])
    stacked = Snapshots(X_test, every=3)
    train_classifier(stack, X, y, lr=0.2, epochs=6, batch_size=50, callback=stacked)
    assert stacked.logits.shape == (2, 2, 450, 10)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: ensemble_probabilities(np.ones((3, 2))), ValueError, "members, ..., N, C"),
        (lambda: ensemble_accuracy(np.ones((2, 3, 2)), [0, 1]), ValueError, "y must have length 3"),
        (lambda: member_accuracies(np.ones(3), [0]), ValueError, "members"),
        (lambda: cyclic_cosine(0.1, 3, 0), ValueError, "cycle must be >= 1"),
        (lambda: cyclic_cosine(0.0, 3, 2), ValueError, "lr0 must be > 0"),
        (lambda: Snapshots(np.ones((3, 2)), every=0), ValueError, "every must be >= 1"),
        (lambda: Snapshots(np.ones((3, 2)), every=1).logits, ValueError, "no snapshot saved"),
    ],
)
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()
