import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dl_course.losses import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    crammer_singer_loss,
    distribution_cross_entropy,
    entropy,
    gaussian_nll,
    hinge_loss,
    hinge_loss_grad,
    hinge_loss_with_grad,
    kl_divergence,
    laplace_nll,
    log_softmax,
    mae,
    mse,
    mse_grad,
    one_hot,
    softmax,
    softmax_cross_entropy,
    softmax_cross_entropy_grad,
    softmax_cross_entropy_with_grad,
)

CAT_CAR_FROG = np.array([3.2, 5.1, -1.7])


def t64(array):
    return torch.tensor(np.asarray(array), dtype=torch.float64)


def random_problem(seed, n=7, c=5, scale=3.0):
    rng = np.random.default_rng(seed)
    return scale * rng.standard_normal((n, c)), rng.integers(0, c, size=n)


def random_distribution(rng, c, zeros=0):
    p = rng.dirichlet(np.ones(c))
    if zeros:
        p[rng.choice(c, size=zeros, replace=False)] = 0.0
        p /= p.sum()
    return p


# ----------------------------------------------------------------------------- worked example


def test_cat_car_frog_worked_example():
    # Hinge: max(0, 5.1 - 3.2 + 1) + max(0, -1.7 - 3.2 + 1) = 2.9 + 0
    assert hinge_loss(CAT_CAR_FROG, 0) == pytest.approx(2.9, abs=1e-12)
    np.testing.assert_allclose(softmax(CAT_CAR_FROG), [0.1300, 0.8691, 0.0010], atol=1e-4)
    ce = softmax_cross_entropy(CAT_CAR_FROG, 0)
    assert ce == pytest.approx(2.0404, abs=1e-4)  # natural log: nats
    # The source's 0.89 is the base-10 logarithm of the same probability.
    assert ce / math.log(10) == pytest.approx(0.886, abs=1e-3)
    assert -math.log10(0.13) == pytest.approx(0.886, abs=1e-3)
    assert ce == pytest.approx(-math.log(softmax(CAT_CAR_FROG)[0]), rel=1e-12)


# ----------------------------------------------------------------------------- softmax


@pytest.mark.parametrize("seed", range(4))
def test_softmax_and_log_softmax_match_torch(seed):
    scores, _ = random_problem(seed)
    np.testing.assert_allclose(softmax(scores), torch.softmax(t64(scores), -1).numpy(), rtol=1e-12)
    np.testing.assert_allclose(
        log_softmax(scores), torch.log_softmax(t64(scores), -1).numpy(), rtol=1e-12, atol=1e-14
    )
    np.testing.assert_allclose(softmax(scores).sum(axis=1), 1.0, rtol=1e-13)
    np.testing.assert_allclose(softmax(scores[0]), softmax(scores)[0], rtol=1e-14)


def test_softmax_is_shift_invariant_and_stable():
    scores = np.array([1e4, 1e4 - 1.0, -1e4])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        probs = softmax(scores)
        log_probs = log_softmax(scores)
    np.testing.assert_allclose(probs, softmax([1.0, 0.0, -2e4 - 1]), rtol=1e-14)
    np.testing.assert_allclose(probs[:2], [1 / (1 + np.exp(-1)), 1 / (1 + np.exp(1))], rtol=1e-13)
    assert np.all(np.isfinite(log_probs))
    assert log_probs[2] == pytest.approx(-2e4 - math.log(1 + math.exp(-1)), rel=1e-15)


# ----------------------------------------------------------------------------- hinge


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("margin", [1.0, 0.5, 2.0])
def test_hinge_matches_torch_multi_margin(seed, margin):
    scores, y = random_problem(seed)
    # torch divides the per-example sum by the number of classes C.
    reference = F.multi_margin_loss(t64(scores), torch.tensor(y), margin=margin).item()
    assert hinge_loss(scores, y, margin=margin) == pytest.approx(
        scores.shape[1] * reference, rel=1e-12
    )


def test_hinge_by_hand_and_1d_matches_2d():
    scores = np.array([[3.2, 5.1, -1.7], [1.3, 4.9, 2.0], [2.2, 2.5, -3.1]])
    y = np.array([0, 1, 2])
    # the three examples of the cat / car / frog table: 2.9, 0 and 12.9
    per_example = [hinge_loss(s, int(k)) for s, k in zip(scores, y, strict=True)]
    np.testing.assert_allclose(per_example, [2.9, 0.0, 12.9], atol=1e-12)
    assert hinge_loss(scores, y) == pytest.approx(np.mean([2.9, 0.0, 12.9]), abs=1e-12)


def test_hinge_is_zero_once_margin_met_and_reduces_to_binary_hinge():
    assert hinge_loss([5.0, 3.9, -2.0], 0) == 0.0
    assert hinge_loss([5.0, 4.1, -2.0], 0) == pytest.approx(0.1)
    # Two classes with scores (0, f): the binary hinge max(0, 1 - t f), t = +-1.
    for f in (-2.0, 0.3, 0.999, 1.7):
        assert hinge_loss([0.0, f], 1) == pytest.approx(max(0.0, 1 - f))
        assert hinge_loss([0.0, f], 0) == pytest.approx(max(0.0, 1 + f))


def test_hinge_with_huge_scores():
    assert hinge_loss([1e4, 0.0, -1e4], 1) == pytest.approx(1e4 + 1.0)
    assert hinge_loss([1e4, 0.0, -1e4], 0) == 0.0


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("margin", [1.0, 0.3])
def test_hinge_grad_matches_autograd(seed, margin):
    scores, y = random_problem(seed, n=9, c=4)
    s = t64(scores).requires_grad_()
    (scores.shape[1] * F.multi_margin_loss(s, torch.tensor(y), margin=margin)).backward()
    np.testing.assert_allclose(hinge_loss_grad(scores, y, margin), s.grad.numpy(), atol=1e-14)
    one = hinge_loss_grad(scores[0], int(y[0]), margin)
    assert one.shape == (4,)
    np.testing.assert_allclose(one, 9 * hinge_loss_grad(scores, y, margin)[0], atol=1e-14)


def test_hinge_grad_by_finite_differences():
    scores, y = random_problem(11, n=3, c=6)
    grad, step = hinge_loss_grad(scores, y), 1e-6
    for index in np.ndindex(scores.shape):
        bumped = scores.copy()
        bumped[index] += step
        slope = (hinge_loss(bumped, y) - hinge_loss(scores, y)) / step
        assert slope == pytest.approx(grad[index], abs=1e-6)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("margin", [1.0, 0.0])
def test_crammer_singer_against_an_independent_form_and_the_sum(seed, margin):
    scores, y = random_problem(seed, n=40, c=5)
    rows = np.arange(len(y))
    # max over *all* classes of s_j + margin [j != y], minus s_y (the j = y term gives 0)
    augmented = t64(scores) + margin * (1 - F.one_hot(torch.tensor(y), 5).double())
    reference = (augmented.max(dim=1).values - t64(scores)[rows, y]).mean().item()
    assert crammer_singer_loss(scores, y, margin) == pytest.approx(reference, rel=1e-12)
    per_cs = np.array(
        [crammer_singer_loss(s, int(k), margin) for s, k in zip(scores, y, strict=True)]
    )
    per_ww = np.array([hinge_loss(s, int(k), margin) for s, k in zip(scores, y, strict=True)])
    n_violators = np.array(
        [np.sum(hinge_loss_grad(s, int(k), margin) > 0) for s, k in zip(scores, y, strict=True)]
    )
    assert np.all(per_cs <= per_ww + 1e-12) and np.all(per_ww <= 4 * per_cs + 1e-12)
    np.testing.assert_allclose(per_cs[n_violators <= 1], per_ww[n_violators <= 1], atol=1e-12)
    assert np.all(per_cs[n_violators >= 2] < per_ww[n_violators >= 2])
    assert np.sum(n_violators >= 2) > 5  # the case where the two losses differ is exercised


def test_crammer_singer_worked_examples():
    assert crammer_singer_loss([3.2, 5.1, -1.7], 0) == pytest.approx(2.9)  # one violator
    assert crammer_singer_loss([2.2, 2.5, -3.1], 2) == pytest.approx(6.6)  # 6.3 and 6.6
    assert hinge_loss([2.2, 2.5, -3.1], 2) == pytest.approx(12.9)
    assert crammer_singer_loss([5.0, 3.9, -2.0], 0) == 0.0


@pytest.mark.parametrize("seed", range(3))
def test_cross_entropy_is_a_smoothed_crammer_singer_with_margin_zero(seed):
    scores, y = random_problem(seed, n=30, c=7, scale=5.0)
    for s, k in zip(scores, y, strict=True):
        cs0, ce = crammer_singer_loss(s, int(k), 0.0), softmax_cross_entropy(s, int(k))
        assert cs0 <= ce <= cs0 + math.log(7) + 1e-12  # max <= log-sum-exp <= max + log C
    # the upper end is reached when all scores tie, the lower end as the top score runs away
    assert softmax_cross_entropy(np.zeros(7), 3) == pytest.approx(math.log(7))
    assert softmax_cross_entropy([50.0, 0, 0], 0) == pytest.approx(0.0, abs=1e-20)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("margin", [1.0, 0.5])
def test_hinge_loss_with_grad_is_the_pair(seed, margin):
    scores, y = random_problem(seed, n=6, c=4)
    loss, grad = hinge_loss_with_grad(scores, y, margin)
    assert loss == hinge_loss(scores, y, margin)
    np.testing.assert_array_equal(grad, hinge_loss_grad(scores, y, margin))
    loss1, grad1 = hinge_loss_with_grad(scores[1], int(y[1]), margin)
    assert grad1.shape == (4,) and loss1 == hinge_loss(scores[1], int(y[1]), margin)


# ----------------------------------------------------------------------------- softmax cross-entropy


@pytest.mark.parametrize("seed", range(5))
def test_softmax_cross_entropy_and_grad_match_torch(seed):
    scores, y = random_problem(seed, n=8, c=6)
    s = t64(scores).requires_grad_()
    reference = F.cross_entropy(s, torch.tensor(y))
    reference.backward()
    assert softmax_cross_entropy(scores, y) == pytest.approx(reference.item(), rel=1e-12)
    np.testing.assert_allclose(
        softmax_cross_entropy_grad(scores, y), s.grad.numpy(), rtol=1e-10, atol=1e-15
    )
    single = softmax_cross_entropy_grad(scores[2], int(y[2]))
    np.testing.assert_allclose(single, softmax(scores[2]) - np.eye(6)[y[2]], atol=1e-15)


@pytest.mark.parametrize("seed", range(4))
def test_softmax_cross_entropy_with_grad_is_the_pair(seed):
    scores, y = random_problem(seed, n=6, c=5)
    loss, grad = softmax_cross_entropy_with_grad(scores, y)
    assert loss == softmax_cross_entropy(scores, y)
    np.testing.assert_array_equal(grad, softmax_cross_entropy_grad(scores, y))
    loss1, grad1 = softmax_cross_entropy_with_grad(scores[0], int(y[0]))
    assert grad1.shape == (5,) and loss1 == pytest.approx(
        softmax_cross_entropy(scores[0], int(y[0]))
    )


@pytest.mark.parametrize("kernel", [softmax_cross_entropy_with_grad, hinge_loss_with_grad])
def test_kernels_pass_divergence_on_as_a_non_finite_loss(kernel):
    # A training loop must see a blown-up model in its loss value, not as an exception.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for bad in (np.nan, np.inf):  # (-inf on a wrong class is a legitimate 0 probability)
            loss, grad = kernel([[1.0, bad, 0.0], [0.0, 1.0, 2.0]], [0, 2])
            assert not math.isfinite(loss) and grad.shape == (2, 3)
    with pytest.raises(ValueError, match="y must take values"):
        kernel([[1.0, 2.0]], [2])
    with pytest.raises(ValueError, match="scores must be 1-D or 2-D"):
        kernel([[[1.0, 2.0]]], [0])
    with pytest.raises(TypeError, match="scores must be an array"):
        kernel([["a", "b"]], [0])


@pytest.mark.parametrize(
    "scores, label, expected",
    [
        ([1e4, 0.0, -1e4], 1, 1e4),
        ([1e4, 0.0, -1e4], 0, 0.0),
        ([1e4, 1e4], 0, math.log(2)),
        ([-1e4, -1e4, -1e4], 2, math.log(3)),
        ([1e4, 1e4 - 2.0], 1, 2.0 + math.log1p(math.exp(-2.0))),
    ],
)
def test_softmax_cross_entropy_is_stable_for_huge_scores(scores, label, expected):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning either
        value = softmax_cross_entropy(scores, label)
        grad = softmax_cross_entropy_grad(scores, label)
    assert value == pytest.approx(expected, rel=1e-12, abs=1e-12)
    reference = F.cross_entropy(t64([scores]), torch.tensor([label])).item()
    assert value == pytest.approx(reference, rel=1e-12, abs=1e-12)
    assert np.all(np.isfinite(grad)) and grad.sum() == pytest.approx(0.0, abs=1e-12)


def test_cross_entropy_never_reaches_zero_where_hinge_does():
    for gap in (2.0, 5.0, 10.0):
        scores = [gap, 0.0, 0.0]
        assert hinge_loss(scores, 0) == 0.0
        assert softmax_cross_entropy(scores, 0) == pytest.approx(math.log1p(2 * math.exp(-gap)))
        assert softmax_cross_entropy(scores, 0) > 0.0


def test_uniform_scores_give_log_c():
    for c in (2, 10, 100):
        assert softmax_cross_entropy(np.zeros((3, c)), [0, 1, 1]) == pytest.approx(math.log(c))
        assert hinge_loss(np.zeros((3, c)), [0, 1, 1]) == pytest.approx(c - 1)


# ----------------------------------------------------------------------------- regression


@pytest.mark.parametrize("shape", [(5,), (4, 3)])
def test_mse_mae_match_torch(shape):
    rng = np.random.default_rng(0)
    pred, target = rng.standard_normal(shape), rng.standard_normal(shape)
    p = t64(pred).requires_grad_()
    reference = F.mse_loss(p, t64(target))
    reference.backward()
    assert mse(pred, target) == pytest.approx(reference.item(), rel=1e-12)
    np.testing.assert_allclose(mse_grad(pred, target), p.grad.numpy(), rtol=1e-12)
    assert mae(pred, target) == pytest.approx(F.l1_loss(t64(pred), t64(target)).item(), rel=1e-12)


def test_mae_is_less_sensitive_to_an_outlier():
    target = np.zeros(10)
    pred = np.zeros(10)
    pred[0] = 10.0
    assert mse(pred, target) == pytest.approx(10.0)
    assert mae(pred, target) == pytest.approx(1.0)


@pytest.mark.parametrize("sigma", [0.3, 1.0, 2.5])
def test_gaussian_nll_matches_torch_and_mse(sigma):
    rng = np.random.default_rng(1)
    pred, target = rng.standard_normal(20), rng.standard_normal(20)
    var = torch.full((20,), sigma**2, dtype=torch.float64)
    reference = F.gaussian_nll_loss(t64(pred), t64(target), var, full=True).item()
    value = gaussian_nll(pred, target, sigma)
    assert value == pytest.approx(reference, rel=1e-12)
    constant = math.log(sigma) + 0.5 * math.log(2 * math.pi)
    assert value == pytest.approx(mse(pred, target) / (2 * sigma**2) + constant, rel=1e-12)


# ----------------------------------------------------------------------------- binary


@pytest.mark.parametrize("scale", [0.3, 1.0, 2.5])
def test_laplace_nll_matches_torch_and_mae(scale):
    rng = np.random.default_rng(7)
    pred, target = rng.standard_normal(20), rng.standard_normal(20)
    reference = -torch.distributions.Laplace(t64(pred), scale).log_prob(t64(target)).mean().item()
    assert laplace_nll(pred, target, scale) == pytest.approx(reference, rel=1e-12)
    assert laplace_nll(pred, target, scale) - mae(pred, target) / scale == pytest.approx(
        math.log(2 * scale), rel=1e-12
    )


def test_laplace_nll_is_minimized_by_the_median():
    rng = np.random.default_rng(8)
    for _ in range(5):
        target = rng.standard_exponential(9) ** 2  # skewed: median and mean far apart
        grid = np.linspace(target.min(), target.max(), 20001)
        best_laplace = grid[np.argmin([laplace_nll(np.full(9, c), target) for c in grid])]
        best_gauss = grid[np.argmin([gaussian_nll(np.full(9, c), target) for c in grid])]
        assert best_laplace == pytest.approx(np.median(target), abs=grid[1] - grid[0])
        assert best_gauss == pytest.approx(np.mean(target), abs=grid[1] - grid[0])


def test_binary_cross_entropy_matches_torch():
    rng = np.random.default_rng(2)
    logits = 3 * rng.standard_normal(30)
    probs = 1 / (1 + np.exp(-logits))
    hard = rng.integers(0, 2, size=30).astype(float)
    soft = rng.uniform(size=30)
    for target in (hard, soft):
        reference = F.binary_cross_entropy(t64(probs), t64(target)).item()
        assert binary_cross_entropy(probs, target) == pytest.approx(reference, rel=1e-12)
        reference = F.binary_cross_entropy_with_logits(t64(logits), t64(target)).item()
        assert binary_cross_entropy_with_logits(logits, target) == pytest.approx(
            reference, rel=1e-12
        )
        assert binary_cross_entropy(probs, target) == pytest.approx(
            binary_cross_entropy_with_logits(logits, target), rel=1e-10
        )


def test_binary_cross_entropy_is_the_bernoulli_nll():
    assert binary_cross_entropy([0.8], [1]) == pytest.approx(-math.log(0.8))
    assert binary_cross_entropy([0.8], [0]) == pytest.approx(-math.log(0.2))


def test_binary_cross_entropy_with_logits_is_stable():
    logits = np.array([800.0, -800.0, 800.0, -800.0])
    target = np.array([1.0, 0.0, 0.0, 1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = binary_cross_entropy_with_logits(logits, target)
    assert value == pytest.approx(800.0 / 2, rel=1e-12)  # two confident mistakes of 800 nats
    reference = F.binary_cross_entropy_with_logits(t64(logits), t64(target)).item()
    assert value == pytest.approx(reference, rel=1e-12)


def test_binary_cross_entropy_equals_two_class_softmax():
    # sigmoid(z) is the softmax of the scores (0, z).
    z = np.array([-2.0, 0.5, 3.0])
    y = np.array([1, 0, 1])
    scores = np.column_stack([np.zeros(3), z])
    assert binary_cross_entropy_with_logits(z, y) == pytest.approx(
        softmax_cross_entropy(scores, y), rel=1e-12
    )


# ----------------------------------------------------------------------------- information theory


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("zeros", [0, 2])
def test_entropy_cross_entropy_kl_match_torch(seed, zeros):
    rng = np.random.default_rng(seed)
    p, q = random_distribution(rng, 6, zeros), random_distribution(rng, 6)
    h_ref = torch.distributions.Categorical(probs=t64(p)).entropy().item()
    assert entropy(p) == pytest.approx(h_ref, rel=1e-12)
    # F.cross_entropy with probability targets: H(p, q) from the log-probabilities of q.
    ce_ref = F.cross_entropy(torch.log(t64([q])), t64([p])).item()
    assert distribution_cross_entropy(p, q) == pytest.approx(ce_ref, rel=1e-12)
    # F.kl_div takes log q (the second distribution) first, then p.
    kl_ref = F.kl_div(torch.log(t64(q)), t64(p), reduction="sum").item()
    assert kl_divergence(p, q) == pytest.approx(kl_ref, rel=1e-10)
    kl_dist = torch.distributions.kl_divergence(
        torch.distributions.Categorical(probs=t64(p)), torch.distributions.Categorical(probs=t64(q))
    ).item()
    assert kl_divergence(p, q) == pytest.approx(kl_dist, rel=1e-10)
    # H(p, q) = H(p) + KL(p || q)
    assert distribution_cross_entropy(p, q) == pytest.approx(
        entropy(p) + kl_divergence(p, q), rel=1e-12
    )


def test_units_and_known_values():
    assert entropy(np.full(8, 1 / 8), base=2) == pytest.approx(3.0)
    assert entropy([0.5, 0.5]) == pytest.approx(math.log(2))
    assert entropy([1.0, 0.0, 0.0]) == 0.0
    p, q = np.array([0.9, 0.1]), np.array([0.5, 0.5])
    bits = kl_divergence(p, q, base=2)
    assert bits == pytest.approx(1 - entropy(p, base=2))
    assert kl_divergence(p, q) == pytest.approx(bits * math.log(2))
    assert distribution_cross_entropy(p, q, base=10) == pytest.approx(math.log10(2))


def test_kl_properties():
    p, q = np.array([0.7, 0.2, 0.1]), np.array([0.2, 0.5, 0.3])
    assert kl_divergence(p, p) == 0.0
    assert kl_divergence(p, q) > 0 and kl_divergence(q, p) > 0
    assert kl_divergence(p, q) != pytest.approx(kl_divergence(q, p), rel=1e-3)  # asymmetric
    assert distribution_cross_entropy(p, q) != pytest.approx(
        distribution_cross_entropy(q, p), rel=1e-3
    )


def test_zero_probability_in_q_gives_infinity():
    p, q = np.array([0.5, 0.5, 0.0]), np.array([1.0, 0.0, 0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert kl_divergence(p, q) == math.inf
        assert distribution_cross_entropy(p, q) == math.inf
        assert kl_divergence(q, p) == pytest.approx(math.log(2))  # q's support is inside p's


def test_one_hot_cross_entropy_is_softmax_cross_entropy():
    scores, y = random_problem(3, n=5, c=4)
    targets = one_hot(y, 4)
    per_example = distribution_cross_entropy(targets, softmax(scores))
    assert per_example.shape == (5,)
    assert per_example.mean() == pytest.approx(softmax_cross_entropy(scores, y), rel=1e-12)
    np.testing.assert_allclose(kl_divergence(targets, softmax(scores)), per_example, rtol=1e-12)
    np.testing.assert_allclose(entropy(targets), 0.0)


def test_one_hot():
    np.testing.assert_array_equal(one_hot([2, 0], 3), [[0, 0, 1], [1, 0, 0]])
    with pytest.raises(ValueError, match=r"y must take values in \[0, 1, 2\], found \[3\]"):
        one_hot([3], 3)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: hinge_loss([[1.0, 2.0]], [2]), ValueError, r"y must take values in \[0, 1\]"),
        (lambda: hinge_loss([[1.0, 2.0]], [0, 1]), ValueError, "y must have length 1"),
        (lambda: hinge_loss([1.0, 2.0], [0]), TypeError, "y must be a single integer"),
        (lambda: hinge_loss([1.0, 2.0], 2), ValueError, "y must be <= 1"),
        (lambda: hinge_loss([1.0, 2.0], 0, margin=-1), ValueError, "margin must be >= 0"),
        (lambda: hinge_loss([[[1.0]]], [0]), ValueError, "scores must be 1-D or 2-D"),
        (lambda: hinge_loss([[1.0], [2.0]], [0, 0]), ValueError, "at least 2 classes"),
        (lambda: softmax_cross_entropy([1.0, np.nan], 0), ValueError, "only finite"),
        (lambda: softmax_cross_entropy([1.0, np.inf], 0), ValueError, "only finite"),
        (lambda: softmax_cross_entropy([[1.0, 2.0]], [0.5]), ValueError, "whole-number"),
        (lambda: softmax_cross_entropy([[1.0, 2.0]], ["a"]), TypeError, "integer labels"),
        (lambda: softmax_cross_entropy([1.0, 2.0], True), TypeError, "single integer"),
        (lambda: softmax_cross_entropy_grad([1.0, 2.0], -1), ValueError, "y must be >= 0"),
        (lambda: hinge_loss_grad([["a", "b"]], [0]), TypeError, "scores must be an array"),
        (lambda: softmax([]), ValueError, "scores must not be empty"),
        (lambda: mse([1.0, 2.0], [1.0]), ValueError, "same shape"),
        (lambda: mae([1.0], [np.nan]), ValueError, "target must contain only finite"),
        (lambda: mse_grad([[1.0]], [1.0]), ValueError, "same shape"),
        (lambda: gaussian_nll([1.0], [1.0], sigma=0.0), ValueError, "sigma must be > 0"),
        (lambda: laplace_nll([1.0], [1.0], scale=-1.0), ValueError, "scale must be > 0"),
        (lambda: laplace_nll([1.0, 2.0], [1.0]), ValueError, "same shape"),
        (lambda: crammer_singer_loss([1.0, 2.0], 0, margin=-0.5), ValueError, "margin must be"),
        (lambda: crammer_singer_loss([1.0, np.nan], 0), ValueError, "only finite"),
        (lambda: crammer_singer_loss([[1.0, 2.0]], [3]), ValueError, "y must take values"),
        (lambda: hinge_loss_with_grad([1.0, 2.0], 0, margin=-1), ValueError, "margin must be"),
        (lambda: binary_cross_entropy([0.0, 0.5], [0, 1]), ValueError, "strictly between"),
        (lambda: binary_cross_entropy([0.2, 0.5], [0, 2]), ValueError, r"target must lie in"),
        (lambda: binary_cross_entropy([0.2, 0.5], [0]), ValueError, "target must have shape"),
        (lambda: binary_cross_entropy_with_logits([1.0], [-0.1]), ValueError, "target must lie"),
        (lambda: entropy([0.5, 0.6]), ValueError, "p must sum to 1"),
        (lambda: entropy([1.5, -0.5]), ValueError, "p must be non-negative"),
        (lambda: entropy([0.5, 0.5], base=1), ValueError, "base must be a positive number"),
        (lambda: entropy([0.5, 0.5], base=0), ValueError, "base must be > 0"),
        (lambda: entropy([0.5, 0.5], base="2"), TypeError, "base must be a real number"),
        (
            lambda: distribution_cross_entropy([0.5, 0.5], [1.0]),
            ValueError,
            "p and q must have the same",
        ),
        (lambda: kl_divergence([0.5, 0.5], [0.9, 0.2]), ValueError, "q must sum to 1"),
        (lambda: one_hot([0, 1], 0), ValueError, "n_classes must be >= 1"),
        (lambda: one_hot(1, 3), ValueError, "y must be 1-D"),
    ],
)
def test_bad_input_is_rejected(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_module_uses_a_sensible_tolerance():
    # sums off by float round-off are accepted, visible mistakes are not
    p = np.full(3, 1 / 3)
    assert entropy(p) == pytest.approx(math.log(3))
    assert entropy(p + 1e-9) == pytest.approx(math.log(3))  # round-off of a float sum
    with pytest.raises(ValueError, match="must sum to 1"):
        entropy([0.34, 0.33, 0.34])  # off by 0.01: a mistake
    with pytest.raises(ValueError, match="must sum to 1"):
        entropy(p + 1e-4)


def test_kl_is_never_negative_from_round_off():
    rng = np.random.default_rng(5)
    for _ in range(200):
        p = rng.dirichlet(np.ones(4))
        q = softmax(np.log(p) + 1e-9 * rng.standard_normal(4))  # equal up to round-off
        assert kl_divergence(p, q) >= 0.0
        assert kl_divergence(p, q) < 1e-15
