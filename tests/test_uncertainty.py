import numpy as np
import pytest
import torch
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax
from scipy.stats import entropy

from dl_course.training import stack_models
from dl_course.uncertainty import (
    bayesian_linear_regression,
    expected_calibration_error,
    fit_map_regression,
    fit_temperature,
    laplace_regression,
    mc_dropout_probs,
    mutual_information,
    negative_log_likelihood,
    predictive_entropy,
    reliability_bins,
    relu_features,
    softmax_temperature,
    temperature_nll,
)


def loop_ece(probs, labels, n_bins):
    """ECE by the definition: one pass over the bins, one over the examples."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        members = [i for i in range(len(labels)) if lo < probs[i].max() <= hi]
        if not members:
            continue
        conf = np.mean([probs[i].max() for i in members])
        acc = np.mean([probs[i].argmax() == labels[i] for i in members])
        total += len(members) / len(labels) * abs(acc - conf)
    return total


def random_problem(seed, n=300, c=5, sharpness=3.0):
    rng = np.random.default_rng(seed)
    logits = sharpness * rng.normal(size=(n, c))
    labels = rng.integers(0, c, size=n)
    return logits, labels


@pytest.mark.parametrize("n_bins", [1, 2, 7, 15, 40])
def test_ece_agrees_with_a_direct_loop(n_bins):
    for seed in range(3):
        logits, labels = random_problem(seed)
        probs = softmax_temperature(logits)
        assert expected_calibration_error(probs, labels, n_bins) == pytest.approx(
            loop_ece(probs, labels, n_bins), abs=1e-12
        )


def test_ece_hand_cases():
    # both in the top bin: accuracy 1/2, mean confidence 3/4
    assert expected_calibration_error([[0.9, 0.1], [0.6, 0.4]], [0, 1], n_bins=2) == 0.25
    # confidence 0.75 and exactly 3 of 4 right: perfectly calibrated
    probs = np.tile([0.75, 0.25], (4, 1))
    assert expected_calibration_error(probs, [0, 0, 0, 1], n_bins=10) == pytest.approx(0.0)
    # always confident and always wrong: ECE equals the confidence
    assert expected_calibration_error([[0.2, 0.8]] * 3, [0, 0, 0]) == pytest.approx(0.8)


def test_bins_are_right_closed():
    # confidence exactly 0.5 falls in (0, 0.5], confidence 1 in (0.5, 1]
    bins = reliability_bins([[0.5, 0.5], [1.0, 0.0], [0.5, 0.5]], [0, 0, 1], n_bins=2)
    assert bins.count.tolist() == [2, 1]
    assert bins.accuracy[0] == 0.5 and bins.confidence[0] == 0.5
    # 0.3 and 0.7 sit on edges of 10 bins: they belong to (0.2, 0.3] and (0.6, 0.7]
    probs = np.array([[0.3, 0.25, 0.25, 0.2], [0.7, 0.1, 0.1, 0.1]])
    assert np.flatnonzero(reliability_bins(probs, [0, 0], n_bins=10).count).tolist() == [2, 6]


def test_ece_rejects_bad_input():
    good = np.array([[0.7, 0.3], [0.4, 0.6]])
    with pytest.raises(ValueError, match="probs must be 2-D"):
        expected_calibration_error([0.7, 0.3], [0])
    with pytest.raises(ValueError, match="sum to 1"):
        expected_calibration_error([[0.7, 0.7]], [0])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        expected_calibration_error([[1.5, -0.5]], [0])
    with pytest.raises(ValueError, match="class indices"):
        expected_calibration_error(good, [0, 2])
    with pytest.raises(ValueError, match="length 2"):
        expected_calibration_error(good, [0])
    with pytest.raises(ValueError, match="n_bins must be >= 1"):
        expected_calibration_error(good, [0, 1], n_bins=0)
    with pytest.raises(TypeError, match="n_bins must be an integer"):
        expected_calibration_error(good, [0, 1], n_bins=2.5)
    with pytest.raises(ValueError, match="at least 2 columns"):
        expected_calibration_error([[1.0]], [0])
    with pytest.raises(ValueError, match="finite"):
        expected_calibration_error([[np.nan, 1.0]], [0])


def test_temperature_nll_matches_torch_cross_entropy():
    logits, labels = random_problem(4)
    for t in (0.3, 1.0, 2.5):
        reference = torch.nn.functional.cross_entropy(
            torch.tensor(logits / t), torch.tensor(labels)
        ).item()
        assert temperature_nll(logits, labels, t) == pytest.approx(reference, rel=1e-12)
    probs = softmax_temperature(logits, 2.5)
    assert negative_log_likelihood(probs, labels) == pytest.approx(
        temperature_nll(logits, labels, 2.5), rel=1e-10
    )


@pytest.mark.parametrize("sharpness", [0.5, 3.0, 20.0])
def test_fit_temperature_agrees_with_scipy_and_a_grid(sharpness):
    logits, labels = random_problem(7, sharpness=sharpness)
    labels = np.where(np.random.default_rng(8).random(len(labels)) < 0.6,
                      logits.argmax(axis=1), labels)  # fmt: skip
    t_fit = fit_temperature(logits, labels)

    def nll_log_t(u):
        log_p = log_softmax(logits / np.exp(u), axis=1)
        return -log_p[np.arange(len(labels)), labels].mean()

    scipy_t = np.exp(minimize_scalar(nll_log_t, bounds=(-4.6, 4.6), method="bounded",
                                     options={"xatol": 1e-10}).x)  # fmt: skip
    assert t_fit == pytest.approx(scipy_t, rel=1e-4)
    grid = np.geomspace(1e-2, 1e2, 4001)
    grid_t = grid[np.argmin([nll_log_t(np.log(t)) for t in grid])]
    assert abs(np.log(t_fit / grid_t)) <= np.log(grid[1] / grid[0])
    assert temperature_nll(logits, labels, t_fit) <= min(
        temperature_nll(logits, labels, t_fit * f) for f in (0.999, 1.001)
    )


def test_fit_temperature_scales_with_the_logits_and_handles_edges():
    logits, labels = random_problem(9)
    labels[:150] = logits[:150].argmax(axis=1)
    t = fit_temperature(logits, labels)
    assert fit_temperature(4.0 * logits, labels) == pytest.approx(4.0 * t, rel=1e-8)
    # every example right: sharper is always better, the lower bound is returned
    right = logits.argmax(axis=1)
    assert fit_temperature(logits, right, bounds=(0.05, 20.0)) == 0.05
    # every example wrong with confident logits: the upper bound
    wrong = (right + 1) % logits.shape[1]
    assert fit_temperature(np.eye(5)[right] * 10, wrong, bounds=(0.05, 20.0)) == 20.0


def test_fit_temperature_rejects_bad_input():
    logits, labels = random_problem(1, n=10)
    with pytest.raises(ValueError, match="constant"):
        fit_temperature(np.ones((4, 3)), [0, 1, 2, 0])
    with pytest.raises(ValueError, match="bounds"):
        fit_temperature(logits, labels, bounds=(1.0,))
    with pytest.raises(ValueError, match=r"bounds\[1\]"):
        fit_temperature(logits, labels, bounds=(2.0, 1.0))
    with pytest.raises(ValueError, match="logits must be 2-D"):
        fit_temperature(logits[0], labels[:1])
    with pytest.raises(ValueError, match="class indices"):
        fit_temperature(logits, labels + 5)
    with pytest.raises(ValueError, match="temperature must be >"):
        temperature_nll(logits, labels, 0.0)


def test_entropy_and_mutual_information():
    probs = np.random.default_rng(2).dirichlet(np.ones(4), size=(6, 10))  # members, N, C
    np.testing.assert_allclose(predictive_entropy(probs), entropy(probs, axis=-1), rtol=1e-12)
    assert predictive_entropy([1.0, 0.0, 0.0]) == 0.0
    mi = mutual_information(probs)
    assert mi.shape == (10,) and np.all(mi >= 0)
    # identical members do not disagree; two opposite certain members disagree by log 2
    np.testing.assert_allclose(mutual_information(np.stack([probs[0]] * 3)), 0.0, atol=1e-12)
    assert mutual_information([[[1.0, 0.0]], [[0.0, 1.0]]])[0] == pytest.approx(np.log(2))
    with pytest.raises(ValueError, match="non-negative"):
        predictive_entropy([-0.1, 1.1])
    with pytest.raises(ValueError, match=r"\(M, \.\.\., C\)"):
        mutual_information([0.5, 0.5])


def dropout_net(seed=0, p=0.5):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Dropout(p), torch.nn.Linear(16, 3)
    )


def test_mc_dropout_samples_masks_and_leaves_state_alone():
    X = np.random.default_rng(0).normal(size=(8, 6))
    model = dropout_net().eval()
    state = torch.random.get_rng_state()
    probs = mc_dropout_probs(model, X, 50, seed=3)
    assert probs.shape == (50, 8, 3)
    assert torch.equal(torch.random.get_rng_state(), state) and not model.training
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0)
    np.testing.assert_array_equal(probs, mc_dropout_probs(model, X, 50, seed=3))
    assert not np.allclose(probs[0], probs[1])  # different masks in different passes
    # inverted dropout before a linear layer: the mean over masks of the logits is the
    # eval-mode logit (checked with many masks, through log-probabilities' differences)
    with torch.no_grad():
        eval_logits = model(torch.tensor(X, dtype=torch.float32)).double().numpy()
    many = mc_dropout_probs(model, X, 4000, seed=1)
    mean_logit_gap = np.log(many[..., 1] / many[..., 0]).mean(axis=0)
    np.testing.assert_allclose(mean_logit_gap, eval_logits[:, 1] - eval_logits[:, 0], atol=0.1)


def test_mc_dropout_on_a_stack_and_with_batch_norm():
    X = np.random.default_rng(1).normal(size=(5, 6))
    stack = stack_models([dropout_net(s) for s in range(3)]).eval()
    probs = mc_dropout_probs(stack, X, 4)
    assert probs.shape == (4, 3, 5, 3) and not stack.training
    bn = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.BatchNorm1d(4),
                             torch.nn.Dropout(0.3), torch.nn.Linear(4, 2)).eval()  # fmt: skip
    before = bn[1].running_mean.clone()
    mc_dropout_probs(bn, X, 3)
    assert torch.equal(bn[1].running_mean, before)  # BatchNorm stayed in eval mode
    with pytest.raises(ValueError, match="no torch.nn.Dropout"):
        mc_dropout_probs(torch.nn.Linear(6, 2), X)
    with pytest.raises(TypeError, match="torch module"):
        mc_dropout_probs("model", X)
    with pytest.raises(ValueError, match="n_samples must be >= 1"):
        mc_dropout_probs(dropout_net(), X, 0)


def test_bayesian_linear_regression_matches_the_function_space_formulas():
    rng = np.random.default_rng(0)
    x, x_new = rng.uniform(-1, 1, 20), np.linspace(-3, 3, 7)
    y = np.sin(3 * x) + 0.1 * rng.normal(size=20)
    phi, phi_new = relu_features(x, 50, seed=1), relu_features(x_new, 50, seed=1)
    alpha, sigma = 2.0, 0.3
    post = bayesian_linear_regression(phi, y, prior_precision=alpha, noise_std=sigma)
    mean, std = post.predict(phi_new)
    # the same model as a Gaussian process with kernel phi(x) . phi(x') / alpha
    k_xx, k_nx = phi @ phi.T / alpha, phi_new @ phi.T / alpha
    k_nn = phi_new @ phi_new.T / alpha
    solve = np.linalg.solve(k_xx + sigma**2 * np.eye(20), np.column_stack([y, k_nx.T]))
    np.testing.assert_allclose(mean, k_nx @ solve[:, 0], rtol=1e-8, atol=1e-10)
    gp_var = np.diag(k_nn - k_nx @ solve[:, 1:])
    np.testing.assert_allclose(std, np.sqrt(gp_var), rtol=1e-6)
    _, with_noise = post.predict(phi_new, include_noise=True)
    np.testing.assert_allclose(with_noise**2, std**2 + sigma**2)
    with pytest.raises(ValueError, match="length 20"):
        bayesian_linear_regression(phi, y[:5])
    with pytest.raises(ValueError, match="noise_std must be >"):
        bayesian_linear_regression(phi, y, noise_std=0.0)
    with pytest.raises(ValueError, match="50 columns"):
        post.predict(phi_new[:, :3])


def test_relu_features_are_reproducible():
    a = relu_features(np.linspace(-1, 1, 9), 12, seed=4)
    assert a.shape == (9, 12) and np.all(a >= 0)
    np.testing.assert_array_equal(a[3:4], relu_features(np.array([-0.25]), 12, seed=4))
    with pytest.raises(ValueError, match="x must be 1-D"):
        relu_features(np.ones((2, 2)), 3)


def test_laplace_of_a_linear_model_is_exact_bayesian_regression():
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, 25)
    y = np.cos(2 * x) + 0.1 * rng.normal(size=25)
    phi = relu_features(x, 10, seed=0)
    model = torch.nn.Linear(10, 1, bias=False).double()
    losses = fit_map_regression(model, phi, y, prior_precision=0.5, noise_std=0.2, steps=3000,
                                lr=0.05)  # fmt: skip
    exact = bayesian_linear_regression(phi, y, prior_precision=0.5, noise_std=0.2)
    assert losses[-1] <= losses[0]
    # Adam gets close to the MAP, which for a linear-Gaussian model is the posterior mean
    np.testing.assert_allclose(model.weight.detach().numpy()[0], exact.mean, atol=5e-3)
    with torch.no_grad():
        model.weight.copy_(torch.tensor(exact.mean[None]))
    lap = laplace_regression(model, phi, y, prior_precision=0.5, noise_std=0.2)
    np.testing.assert_allclose(lap.posterior.mean, exact.mean, rtol=1e-12)
    np.testing.assert_allclose(lap.posterior.cov, exact.cov, rtol=1e-10, atol=1e-14)
    phi_new = relu_features(np.linspace(-3, 3, 5), 10, seed=0)
    np.testing.assert_allclose(lap.predict(phi_new)[1], exact.predict(phi_new)[1], rtol=1e-10)


def tanh_net(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(1, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)
    ).double()


def test_fit_map_on_a_stack_equals_separate_fits():
    rng = np.random.default_rng(5)
    xs, ys = rng.uniform(-1, 1, (2, 15)), rng.normal(size=(2, 15))
    stack = stack_models([tanh_net(0), tanh_net(1)])
    together = fit_map_regression(stack, xs, ys, steps=50)
    assert together.shape == (50, 2)
    for k, member in enumerate(stack.unstack()):
        alone_net = tanh_net(k)
        alone = fit_map_regression(alone_net, xs[k], ys[k], steps=50)
        np.testing.assert_allclose(together[:, k], alone, rtol=1e-8)
        for a, b in zip(member.parameters(), alone_net.parameters(), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


def test_laplace_jacobian_matches_finite_differences_and_checks_input():
    net = tanh_net(2)
    x = np.linspace(-1, 1, 6)
    lap = laplace_regression(net, x, np.zeros(6), prior_precision=1.0, noise_std=1.0)
    # precision = J^T J + I: compare J with central differences, parameter by parameter
    params = list(net.parameters())
    x_t = torch.tensor(x[:, None])
    cols = []
    with torch.no_grad():
        for p in params:
            flat = p.view(-1)
            for i in range(flat.numel()):
                flat[i] += 1e-6
                up = net(x_t).reshape(-1).clone()
                flat[i] -= 2e-6
                down = net(x_t).reshape(-1).clone()
                flat[i] += 1e-6
                cols.append(((up - down) / 2e-6).numpy())
    jac = np.column_stack(cols)
    np.testing.assert_allclose(np.linalg.inv(lap.posterior.cov), jac.T @ jac + np.eye(len(cols)),
                               rtol=1e-5, atol=1e-6)  # fmt: skip
    with pytest.raises(TypeError, match="float64"):
        laplace_regression(torch.nn.Linear(1, 1), x, np.zeros(6))
    with pytest.raises(ValueError, match="length 6"):
        laplace_regression(net, x, np.zeros(5))


def test_draw_reliability_draws_two_step_artists():
    import matplotlib.pyplot as plt

    from dl_course.uncertainty import draw_reliability

    fig, ax = plt.subplots()
    bins = reliability_bins([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]], [0, 1, 1], n_bins=5)
    draw_reliability(ax, bins)
    assert len(ax.patches) == 2 and ax.get_xlim() == (0.0, 1.0)
    with pytest.raises(TypeError, match="ReliabilityBins"):
        draw_reliability(ax, "bins")
    plt.close(fig)
