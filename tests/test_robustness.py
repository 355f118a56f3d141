import numpy as np
import pytest
import torch

from dl_course import robustness
from dl_course.mlp import build_mlp
from dl_course.robustness import accuracy_under_attack, adversarial_train, fgsm, input_gradient, pgd
from dl_course.training import accuracy, stack_models


def linear_model(d: int, classes: int = 2, seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Linear(d, classes)
    return model


def batch(n: int = 20, d: int = 6, classes: int = 2, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, d, generator=gen)
    y = torch.randint(0, classes, (n,), generator=gen)
    return x, y


def test_fgsm_on_a_binary_linear_softmax_is_the_sign_of_the_weight_difference():
    # d/dx CE = W^T (p - e_y) = p_other (w_other - w_y): its sign is sign(w_other - w_y)
    model, (x, y) = linear_model(6), batch()
    W = model.weight.detach()
    direction = torch.sign(W[1 - y] - W[y])  # one row per example
    eps = 0.05
    assert torch.equal(fgsm(model, x, y, eps, clamp=None), x + eps * direction)
    assert torch.allclose(fgsm(model, x, y, eps), (x + eps * direction).clamp(0, 1))
    # the logit margin moves by exactly eps * ||w_y - w_other||_1 (no box)
    margin = lambda z: (z.gather(1, y[:, None]) - z.gather(1, 1 - y[:, None])).squeeze(1)  # noqa: E731
    with torch.no_grad():
        drop = margin(model(x)) - margin(model(fgsm(model, x, y, eps, clamp=None)))
    assert torch.allclose(drop, eps * (W[y] - W[1 - y]).abs().sum(dim=1), atol=1e-6)


def test_input_gradient_matches_finite_differences():
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3))
    model = model.double()
    x = torch.rand(4, 5, dtype=torch.float64)
    y = torch.tensor([0, 2, 1, 2])
    grad = input_gradient(model, x, y)
    loss = lambda z: torch.nn.functional.cross_entropy(model(z), y, reduction="sum")  # noqa: E731
    h, numeric = 1e-6, torch.zeros_like(x)
    with torch.no_grad():
        for i in range(x.shape[0]):
            for j in range(x.shape[1]):
                e = torch.zeros_like(x)
                e[i, j] = h
                numeric[i, j] = (loss(x + e) - loss(x - e)) / (2 * h)
    assert torch.allclose(grad, numeric, atol=1e-7)


def test_pgd_with_one_step_of_size_eps_and_no_random_start_is_fgsm():
    model = build_mlp([6, 16, 3], seed=0)
    x, y = batch(classes=3)
    for eps in (0.0, 0.03, 0.2):
        expected = fgsm(model, x, y, eps)
        got = pgd(model, x, y, eps, alpha=max(eps, 1e-3), steps=1, random_start=False)
        assert torch.equal(got, expected)


def test_pgd_stays_in_the_ball_and_the_box():
    model = build_mlp([6, 16, 3], seed=2)
    x, y = batch(50, classes=3, seed=3)
    eps = 0.1
    x_adv = pgd(model, x, y, eps, alpha=0.05, steps=7, seed=4)
    assert (x_adv - x).abs().max() <= eps + 1e-7
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert (x_adv - x).abs().max() > 0.9 * eps  # it does move
    x_mid = 0.3 + 0.5 * x
    boxed = pgd(model, x_mid, y, eps, alpha=0.05, steps=7, clamp=(0.3, 0.8), seed=4)
    assert boxed.min() >= 0.3 and boxed.max() <= 0.8
    assert (boxed - x_mid).abs().max() <= eps + 1e-7


def test_pgd_is_seeded_and_leaves_the_global_random_state_alone():
    model = build_mlp([6, 16, 3], seed=0)
    x, y = batch(classes=3)
    state = torch.random.get_rng_state()
    a = pgd(model, x, y, 0.1, 0.03, 5, seed=7)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a, pgd(model, x, y, 0.1, 0.03, 5, seed=7))
    assert not torch.equal(a, pgd(model, x, y, 0.1, 0.03, 5, seed=8))


def test_on_a_linear_model_pgd_cannot_beat_fgsm_without_a_box():
    # for a binary linear classifier FGSM maximizes the loss over the ball exactly
    model, (x, y) = linear_model(10), batch(d=10)
    loss = lambda z: torch.nn.functional.cross_entropy(model(z), y, reduction="none")  # noqa: E731
    eps = 0.2
    with torch.no_grad():
        best = loss(fgsm(model, x, y, eps, clamp=None))
        for seed in range(3):
            other = loss(pgd(model, x, y, eps, alpha=0.05, steps=10, clamp=None, seed=seed))
            assert torch.all(other <= best + 1e-5)


@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
@pytest.mark.parametrize("mode", [True, False])
def test_the_model_and_the_input_are_left_as_they_were(attack, mode):
    model = build_mlp([6, 16, 3], dropout=0.3, seed=0)
    model.train(mode)
    x, y = batch(classes=3)
    x_before = x.clone()
    params = [p.detach().clone() for p in model.parameters()]
    first = next(model.parameters())
    first.grad = torch.full_like(first, 0.5)  # a gradient the caller is accumulating
    if attack == "fgsm":
        x_adv = fgsm(model, x, y, 0.1)
    else:
        x_adv = pgd(model, x, y, 0.1, 0.03, 4)
    assert model.training is mode
    assert torch.equal(first.grad, torch.full_like(first, 0.5))
    assert all(p.grad is None for p in list(model.parameters())[1:])
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), params, strict=True))
    assert torch.equal(x, x_before) and not x.requires_grad and x.grad is None
    assert not x_adv.requires_grad and x_adv.grad_fn is None


def test_the_attack_runs_in_eval_mode_so_dropout_does_not_randomize_it():
    model = build_mlp([6, 32, 3], dropout=0.5, seed=0).train()
    x, y = batch(classes=3)
    assert torch.equal(fgsm(model, x, y, 0.1), fgsm(model.eval(), x, y, 0.1))


def test_a_stack_attacks_each_member_on_its_own_rows():
    members = [build_mlp([6, 8, 3], seed=s) for s in range(3)]
    stack = stack_models(members)
    x, y = batch(classes=3)
    xs = x.expand(3, *x.shape)
    together = fgsm(stack, xs, y, 0.1)
    for k, member in enumerate(members):
        assert torch.allclose(together[k], fgsm(member, x, y, 0.1))
    # labels per member (K, N) work too
    assert torch.equal(fgsm(stack, xs, y.expand(3, -1), 0.1), together)


def test_accuracy_under_attack():
    model = build_mlp([6, 16, 3], seed=0)
    x, y = batch(60, classes=3)
    clean = accuracy_under_attack(model, x, y, [0.0], attack="fgsm")
    assert clean.shape == (1,)
    assert clean[0] == pytest.approx(accuracy(model, x.numpy(), y.numpy()))
    curve = accuracy_under_attack(model, x, y, [0.0, 0.5], steps=5, seed=1)
    assert curve[1] <= curve[0]
    stack = stack_models([build_mlp([6, 16, 3], seed=s) for s in range(2)])
    assert accuracy_under_attack(stack, x, y, [0.0, 0.1, 0.2], attack="fgsm").shape == (3, 2)
    with pytest.raises(ValueError, match="attack"):
        accuracy_under_attack(model, x, y, [0.1], attack="cw")
    with pytest.raises(ValueError, match="eps_values"):
        accuracy_under_attack(model, x, y, [])


def test_adversarial_training_is_reproducible():
    gen = torch.Generator().manual_seed(0)
    X = torch.rand(200, 2, generator=gen)
    y = (X[:, 0] > 0.5).long()  # a margin-less boundary
    runs = []
    for _ in range(2):
        model = build_mlp([2, 16, 2], seed=0)
        history = adversarial_train(
            model, X.numpy(), y.numpy(), eps=0.1, alpha=0.05, steps=3, lr=0.05, epochs=5
        )
        runs.append((history, [p.detach().clone() for p in model.parameters()]))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(p, q) for p, q in zip(runs[0][1], runs[1][1], strict=True))
    assert len(runs[0][0].train_loss) == 5
    stack = stack_models([build_mlp([2, 16, 2], seed=s) for s in range(2)])
    history = adversarial_train(
        stack, X.numpy(), y.numpy(), eps=0.1, alpha=0.05, steps=3, lr=0.05, epochs=2, seed=[3, 4]
    )
    assert np.shape(history.train_loss) == (2, 2)


def test_bad_input_is_refused():
    model, (x, y) = build_mlp([6, 8, 3], seed=0), batch(classes=3)
    with pytest.raises(ValueError, match="eps"):
        fgsm(model, x, y, -0.1)
    with pytest.raises(ValueError, match="alpha"):
        pgd(model, x, y, 0.1, 0.0, 3)
    with pytest.raises(ValueError, match="steps"):
        pgd(model, x, y, 0.1, 0.01, 0)
    with pytest.raises(TypeError, match="steps"):
        pgd(model, x, y, 0.1, 0.01, 2.0)
    with pytest.raises(ValueError, match="clamp"):
        fgsm(model, x, y, 0.1, clamp=(1.0, 0.0))
    with pytest.raises(TypeError, match="clamp"):
        fgsm(model, x, y, 0.1, clamp=1.0)
    with pytest.raises(ValueError, match="clamp box"):
        fgsm(model, x + 2.0, y, 0.1)
    with pytest.raises(TypeError, match="x must be a torch tensor"):
        fgsm(model, x.numpy(), y, 0.1)
    with pytest.raises(TypeError, match="floating"):
        fgsm(model, x.long(), y, 0.1)
    with pytest.raises(TypeError, match="integer"):
        fgsm(model, x, y.float(), 0.1)
    with pytest.raises(ValueError, match="y must have shape"):
        fgsm(model, x, y[:-1], 0.1)
    with pytest.raises(ValueError, match="finite"):
        fgsm(model, x * float("nan"), y, 0.1, clamp=None)
    with pytest.raises(TypeError, match="model"):
        fgsm(lambda z: z, x, y, 0.1)
    with pytest.raises(TypeError, match="random_start"):
        pgd(model, x, y, 0.1, 0.01, 2, random_start=1)
    with pytest.raises(ValueError, match="seed"):
        adversarial_train(
            stack_models([model, build_mlp([6, 8, 3], seed=1)]),
            x.numpy(),
            y.numpy(),
            eps=0.1,
            alpha=0.05,
            steps=1,
            lr=0.1,
            epochs=1,
            seed=[1],
        )
    with pytest.raises(ValueError, match="optimizer"):
        adversarial_train(
            model,
            x.numpy(),
            y.numpy(),
            eps=0.1,
            alpha=0.05,
            steps=1,
            lr=0.1,
            epochs=1,
            optimizer="lbfgs",
        )


def test_import_is_cheap():
    import subprocess
    import sys

    code = "import sys, dl_course.robustness; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert robustness.ATTACKS == ("fgsm", "pgd")
