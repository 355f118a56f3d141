"""dl_course.scheduling: the schedule reaches torch's optimizer, the ratios are what they say."""

import functools
import math

import numpy as np
import pytest
import torch

from dl_course import optim
from dl_course.mlp import build_mlp
from dl_course.scheduling import train_scheduled


def blobs(n=90, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    centres = np.array([[2.0, 0.0, 0.0, 1.0], [0.0, 2.0, 0.0, -1.0], [0.0, 0.0, 2.0, 0.0]])
    return centres[y] + 0.5 * rng.normal(size=(n, 4)), y


def test_every_step_uses_the_rate_of_the_schedule():
    X, y = blobs()
    schedule = functools.partial(optim.cosine_annealing, 0.2, t_max=9)
    run = train_scheduled(
        build_mlp([4, 8, 3], seed=0), X, y, lr=0.2, epochs=3, batch_size=30, schedule=schedule
    )
    np.testing.assert_allclose(run.lrs, [schedule(t) for t in range(9)], rtol=1e-12)
    assert run.epoch_loss.shape == (3,) and run.step_loss.shape == (9,)


def test_training_equals_a_plain_torch_loop():
    X, y = blobs()
    schedule = functools.partial(optim.step_decay, 0.3, step_size=4, gamma=0.5)
    ours = build_mlp([4, 8, 3], seed=1)
    run = train_scheduled(ours, X, y, lr=0.3, epochs=2, batch_size=20, schedule=schedule, seed=5)
    ref = build_mlp([4, 8, 3], seed=1)
    opt = torch.optim.SGD(ref.parameters(), lr=0.3)
    rng = np.random.default_rng(5)
    Xt, yt, t = torch.tensor(X, dtype=torch.float32), torch.tensor(y), 0
    for _ in range(2):
        order = rng.permutation(len(y))
        for start in range(0, len(y), 20):
            index = order[start : start + 20]
            for group in opt.param_groups:
                group["lr"] = schedule(t)
            opt.zero_grad()
            torch.nn.functional.cross_entropy(ref(Xt[index]), yt[index]).backward()
            opt.step()
            t += 1
    for a, b in zip(ours.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    with torch.no_grad():
        expected = torch.nn.functional.cross_entropy(ref(Xt), yt).item()
    assert math.isclose(run.final_loss, expected, rel_tol=1e-6)


def test_first_update_ratio_is_lr_times_gradient_over_weight_norm():
    X, y = blobs()
    model = build_mlp([4, 8, 3], seed=2)
    reference = build_mlp([4, 8, 3], seed=2)
    run = train_scheduled(model, X, y, lr=0.05, epochs=1, batch_size=90, track_ratios=True)
    loss = torch.nn.functional.cross_entropy(
        reference(torch.tensor(X, dtype=torch.float32)), torch.tensor(y)
    )
    loss.backward()
    for name, p in reference.named_parameters():
        if p.ndim == 2:
            expected = 0.05 * p.grad.norm().item() / p.detach().norm().item()
            assert math.isclose(run.update_ratios[name][0], expected, rel_tol=1e-5)
    assert sorted(run.update_ratios) == ["0.weight", "2.weight"]


def test_a_huge_rate_is_reported_as_divergence():
    X, y = blobs()
    run = train_scheduled(build_mlp([4, 8, 3], seed=0), X * 1e3, y, lr=1e6, epochs=5)
    assert run.diverged and math.isnan(run.final_loss)


def test_the_seed_fixes_the_run():
    X, y = blobs()
    runs = [
        train_scheduled(
            build_mlp([4, 8, 3], seed=0), X, y, lr=0.1, epochs=2, seed=3, X_val=X, y_val=y
        )
        for _ in range(2)
    ]
    np.testing.assert_array_equal(runs[0].step_loss, runs[1].step_loss)
    assert runs[0].val_accuracy.shape == (2,)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"lr": 0.0}, ValueError, "lr must be >"),
        ({"epochs": 0}, ValueError, "epochs must be >= 1"),
        ({"momentum": 1.0}, ValueError, "momentum must be <"),
        ({"schedule": 0.1}, TypeError, "schedule must be callable"),
        ({"schedule": lambda t: float("nan")}, ValueError, r"schedule\(0\) must be a finite"),
        ({"X_val": np.ones((3, 4))}, ValueError, "X_val and y_val go together"),
        ({"track_ratios": "yes"}, TypeError, "track_ratios must be"),
    ],
)
def test_bad_input_is_refused(kwargs, error, match):
    X, y = blobs()
    args = {"lr": 0.1, "epochs": 1} | kwargs
    with pytest.raises(error, match=match):
        train_scheduled(build_mlp([4, 8, 3], seed=0), X, y, **args)


def test_seeds_side_by_side_equal_separate_runs():
    from dl_course.scheduling import train_scheduled_seeds

    X, y = blobs()
    schedule = functools.partial(optim.exponential_decay, 0.3, gamma=0.97)
    kwargs = {"lr": 0.3, "epochs": 3, "batch_size": 16, "schedule": schedule, "momentum": 0.5}
    together = [build_mlp([4, 8, 3], seed=s) for s in (0, 1, 2)]
    runs = train_scheduled_seeds(
        together, X, y, seeds=[5, 6, 7], X_val=X[:30], y_val=y[:30], track_ratios=True, **kwargs
    )
    for model, run, s, seed in zip(together, runs, (0, 1, 2), (5, 6, 7), strict=True):
        alone = build_mlp([4, 8, 3], seed=s)
        ref = train_scheduled(
            alone, X, y, seed=seed, X_val=X[:30], y_val=y[:30], track_ratios=True, **kwargs
        )
        for a, b in zip(model.parameters(), alone.parameters(), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(run.step_loss, ref.step_loss, rtol=1e-5)
        np.testing.assert_allclose(run.epoch_loss, ref.epoch_loss, rtol=1e-5)
        np.testing.assert_allclose(run.lrs, ref.lrs)
        np.testing.assert_allclose(run.val_accuracy, ref.val_accuracy)
        assert math.isclose(run.final_loss, ref.final_loss, rel_tol=1e-5)
        for name in ("0.weight", "2.weight"):
            np.testing.assert_allclose(run.update_ratios[name], ref.update_ratios[name], rtol=1e-4)


def test_seeds_side_by_side_refuse_what_they_cannot_stack():
    from dl_course.scheduling import train_scheduled_seeds

    X, y = blobs()
    models = [build_mlp([4, 8, 3], seed=0), build_mlp([4, 6, 3], seed=1)]
    with pytest.raises(ValueError, match="same shapes"):
        train_scheduled_seeds(models, X, y, seeds=[0, 1], lr=0.1, epochs=1)
    with pytest.raises(ValueError, match="elementwise activations"):
        train_scheduled_seeds(
            [build_mlp([4, 8, 3], norm="batch")], X, y, seeds=[0], lr=0.1, epochs=1
        )
    with pytest.raises(ValueError, match="one entry per model"):
        train_scheduled_seeds([build_mlp([4, 8, 3])], X, y, seeds=[0, 1], lr=0.1, epochs=1)
    with pytest.raises(TypeError, match="non-empty list"):
        train_scheduled_seeds([], X, y, seeds=[], lr=0.1, epochs=1)
