"""dl_course.theory.representations against SciPy, scikit-learn, torch autograd and closed forms."""

import copy
import subprocess
import sys

import numpy as np
import pytest
import scipy.linalg
import torch
from sklearn.decomposition import PCA

from dl_course.mlp import build_mlp
from dl_course.theory import representations as rep

# -- subspaces ----------------------------------------------------------------------------------


def _random(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def test_alignment_is_the_mean_squared_cosine_of_scipys_principal_angles():
    for seed, (d, r) in enumerate([(5, 1), (10, 3), (30, 7), (8, 8)]):
        U, V = _random((d, r), seed), _random((d, r), seed + 100)
        angles = scipy.linalg.subspace_angles(U, V)
        assert rep.subspace_alignment(U, V) == pytest.approx(np.mean(np.cos(angles) ** 2))
        np.testing.assert_allclose(np.sort(rep.principal_angles(U, V)), np.sort(angles), atol=1e-7)


def test_alignment_ignores_column_scaling_and_mixing():
    U, V = _random((12, 4), 1), _random((12, 4), 2)
    mix = _random((4, 4), 3) + 4 * np.eye(4)  # invertible
    scale = np.diag([1e-3, 1.0, 7.0, 1e3])
    base = rep.subspace_alignment(U, V)
    assert rep.subspace_alignment(U @ mix, V @ scale) == pytest.approx(base, rel=1e-10)
    assert rep.subspace_alignment(V, U) == pytest.approx(base, rel=1e-12)  # symmetric


def test_alignment_extremes_and_closed_form_for_lines():
    e = np.eye(6)
    assert rep.subspace_alignment(e[:, :3], e[:, :3] @ _random((3, 3), 4)) == pytest.approx(1.0)
    assert rep.subspace_alignment(e[:, :3], e[:, 3:]) == pytest.approx(0.0, abs=1e-15)
    theta = 0.3  # two lines at angle theta: cos^2 theta
    line = np.array([np.cos(theta), np.sin(theta), 0, 0, 0, 0])
    assert rep.subspace_alignment(e[:, 0], line) == pytest.approx(np.cos(theta) ** 2)
    half = np.column_stack([e[:, 0], line + e[:, 2]])  # contains e0, and e1 at 45 degrees
    target = np.column_stack([e[:, 0], e[:, 1]])
    cos2 = np.sin(theta) ** 2 / (np.sin(theta) ** 2 + 1)
    assert rep.subspace_alignment(half, target) == pytest.approx((1 + cos2) / 2)


def test_random_subspaces_align_at_r_over_d_on_average():
    d, r = 15, 4
    pairs = _random((6000, 2, d, r), 5)
    values = rep.subspace_alignments(pairs[:, 0], pairs[:, 1])
    assert values.shape == (6000,)
    assert abs(values.mean() - r / d) < 4 * values.std() / np.sqrt(values.size)


def test_batched_alignments_match_one_at_a_time():
    U, V = _random((3, 2, 9, 2), 6), _random((9, 2), 7)
    batched = rep.subspace_alignments(U, V)  # V broadcasts
    assert batched.shape == (3, 2)
    for idx in np.ndindex(3, 2):
        assert batched[idx] == pytest.approx(rep.subspace_alignment(U[idx], V), rel=1e-12)


def test_orthonormal_basis_spans_the_same_space():
    A = _random((10, 3), 8)
    Q = rep.orthonormal_basis(A)
    np.testing.assert_allclose(Q.T @ Q, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(Q @ Q.T @ A, A, atol=1e-12)


@pytest.mark.parametrize(
    ("U", "V", "error", "match"),
    [
        (np.ones((5, 2)), np.eye(5)[:, :2], ValueError, "linearly independent"),
        (np.eye(5)[:, :2], np.eye(4)[:, :2], ValueError, "same space"),
        (np.eye(5)[:, :2], np.eye(5)[:, :3], ValueError, "same dimension"),
        (np.eye(3)[:2], np.eye(3)[:2], ValueError, "at least as many rows"),
        (np.full((3, 1), np.nan), np.ones((3, 1)), ValueError, "finite"),
        ("abc", np.ones((3, 1)), TypeError, "U must be"),
        (_random((2, 4, 2)), _random((4, 2)), ValueError, "1-D or 2-D"),
    ],
)
def test_subspace_alignment_rejects_bad_input(U, V, error, match):
    with pytest.raises(error, match=match):
        rep.subspace_alignment(U, V)


# -- CKA ----------------------------------------------------------------------------------------


def _hsic_cka(X, Y):
    """The textbook formula: HSIC of the linear Gram matrices with the centering matrix H."""
    n = X.shape[0]
    H = np.eye(n) - np.ones((n, n)) / n
    K, L = X @ X.T, Y @ Y.T

    def hsic(A, B):
        return np.trace(A @ H @ B @ H) / (n - 1) ** 2

    return hsic(K, L) / np.sqrt(hsic(K, K) * hsic(L, L))


@pytest.mark.parametrize(("n", "p", "q"), [(50, 5, 8), (20, 40, 3), (30, 30, 30)])
def test_linear_cka_matches_the_hsic_formula(n, p, q):
    X = _random((n, p), 1) + 3.0  # uncentered on purpose
    Y = np.tanh(X[:, :1] @ _random((1, q), 2)) + _random((n, q), 3)
    assert rep.linear_cka(X, Y) == pytest.approx(_hsic_cka(X, Y), rel=1e-10)


def test_linear_cka_invariances():
    X, Y = _random((40, 6), 4), _random((40, 9), 5)
    Q, _ = np.linalg.qr(_random((6, 6), 6))
    base = rep.linear_cka(X, Y)
    assert rep.linear_cka(X @ Q, Y) == pytest.approx(base, rel=1e-10)  # orthogonal
    assert rep.linear_cka(0.01 * X, 50.0 * Y) == pytest.approx(base, rel=1e-10)  # isotropic
    assert rep.linear_cka(X + 7.0, Y) == pytest.approx(base, rel=1e-10)  # translation
    assert rep.linear_cka(X, X) == pytest.approx(1.0)
    assert rep.linear_cka(Y, X) == pytest.approx(base, rel=1e-12)
    stretch = np.diag([1.0, 1.0, 1.0, 1.0, 1.0, 30.0])  # not orthogonal: CKA changes
    assert rep.linear_cka(X @ stretch, X) < 0.9


def test_cka_of_independent_noise_is_small_and_matrix_is_entrywise():
    X, Y = _random((2000, 3), 7), _random((2000, 3), 8)
    assert rep.linear_cka(X, Y) < 0.01
    reps_a, reps_b = [X, X[:, :2]], [Y, X, X * 2.0]
    M = rep.cka_matrix(reps_a, reps_b)
    assert M.shape == (2, 3)
    for i, a in enumerate(reps_a):
        for j, b in enumerate(reps_b):
            assert M[i, j] == pytest.approx(rep.linear_cka(a, b), rel=1e-12)


@pytest.mark.parametrize(
    ("X", "Y", "match"),
    [
        (np.ones((5, 2)), _random((5, 2)), "same for every example"),
        (_random((5, 2)), _random((6, 2)), "same examples"),
        (_random((1, 2)), _random((1, 2)), "at least two examples"),
        (_random((5, 2, 2)), _random((5, 2)), "1-D or 2-D"),
    ],
)
def test_linear_cka_rejects_bad_input(X, Y, match):
    with pytest.raises(ValueError, match=match):
        rep.linear_cka(X, Y)


def test_cka_matrix_rejects_non_sequences():
    with pytest.raises(TypeError, match="reps_a"):
        rep.cka_matrix(_random((5, 2)), [_random((5, 2))])
    with pytest.raises(ValueError, match="same examples"):
        rep.cka_matrix([_random((5, 2))], [_random((6, 2))])


# -- Jacobian ranks -----------------------------------------------------------------------------


def test_numerical_rank_counts_singular_values_above_the_tolerance():
    U, _ = np.linalg.qr(_random((6, 6), 1))
    J = U @ np.diag([1.0, 0.5, 1e-3, 1e-9, 0.0, 0.0]) @ U.T
    assert rep.numerical_rank(J) == 3
    assert rep.numerical_rank(J, rtol=1e-10) == 4
    assert rep.numerical_rank(J, rtol=1e-2) == 2
    assert rep.numerical_rank(np.zeros((3, 4))) == 0
    stack = np.stack([J, np.eye(6), np.zeros((6, 6))])
    np.testing.assert_array_equal(rep.numerical_rank(stack), [3, 6, 0])
    with pytest.raises(ValueError, match="rtol"):
        rep.numerical_rank(J, rtol=0.0)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        rep.numerical_rank(np.ones(3))


def test_relu_layer_jacobian_is_the_torch_jacobian():
    W, b, X = _random((7, 4), 2), _random(7, 3), _random((10, 4), 4)
    closed = rep.relu_layer_jacobian(W, b, X)
    for x, J in zip(X, closed, strict=True):

        def layer(v):
            return torch.relu(torch.as_tensor(W) @ v + torch.as_tensor(b))

        expected = torch.autograd.functional.jacobian(layer, torch.as_tensor(x))
        np.testing.assert_allclose(J, expected.numpy(), atol=1e-14)
    assert rep.relu_layer_jacobian(W, b, X[0]).shape == (7, 4)
    with pytest.raises(ValueError, match="columns"):
        rep.relu_layer_jacobian(W, b, np.ones((2, 5)))
    with pytest.raises(ValueError, match="b must have shape"):
        rep.relu_layer_jacobian(W, b[:3], X)


def test_the_kink_counts_as_inactive_like_torch():
    W, x = np.array([[2.0, 0.0], [0.0, 2.0], [1.0, -1.0]]), np.array([1.0, 0.0])
    J = rep.relu_layer_jacobian(W, np.zeros(3), x)
    np.testing.assert_array_equal(J, [[2.0, 0.0], [0.0, 0.0], [1.0, -1.0]])
    torch_J = torch.autograd.functional.jacobian(
        lambda v: torch.relu(torch.as_tensor(W) @ v), torch.as_tensor(x)
    )
    np.testing.assert_array_equal(J, torch_J.numpy())


def test_stage_ends_of_an_mlp():
    model = build_mlp([5, 4, 3, 2], seed=0)  # Linear ReLU Linear ReLU Linear
    assert rep.stage_ends(model) == [1, 3, 4]
    assert rep.stage_ends(torch.nn.Sequential(torch.nn.Linear(3, 2))) == [0]
    with pytest.raises(TypeError, match="Sequential"):
        rep.stage_ends(torch.nn.Linear(3, 2))


@pytest.mark.parametrize("mode", ["auto", "reverse", "forward"])
def test_stage_jacobians_match_the_closed_form_and_torch(mode):
    model = build_mlp([6, 8, 3, 5], seed=1)
    X = _random((12, 6), 9)
    jacobians = rep.stage_jacobians(model, X, mode=mode)
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    weights = [m.weight.detach().double().numpy() for m in linears]
    biases = [m.bias.detach().double().numpy() for m in linears]
    closed = rep.relu_network_jacobians(weights, biases, X)
    assert [J.shape for J in jacobians] == [(12, 8, 6), (12, 3, 6), (12, 5, 6)]
    for J, C in zip(jacobians, closed, strict=True):
        np.testing.assert_allclose(J, C, atol=1e-12)
    assert next(model.parameters()).dtype == torch.float32  # the model is left as it was
    twin = copy.deepcopy(model).double()
    full = torch.autograd.functional.jacobian(twin, torch.as_tensor(X[0]))  # plain autograd
    np.testing.assert_allclose(jacobians[-1][0], full.numpy(), atol=1e-12)


def test_stage_outputs_are_the_hidden_activations():
    model = build_mlp([4, 6, 3], seed=2)
    X = _random((5, 4), 10)
    hidden, logits = rep.stage_outputs(model, X)
    with torch.no_grad():
        expected_hidden = torch.relu(model[0](torch.as_tensor(X, dtype=torch.float32)))
        expected_logits = model(torch.as_tensor(X, dtype=torch.float32))
    np.testing.assert_allclose(hidden, expected_hidden.numpy(), rtol=1e-6)
    np.testing.assert_allclose(logits, expected_logits.numpy(), rtol=1e-6)
    assert model.training  # mode restored


def test_rank_caps_hold_in_a_bottleneck_network():
    model = build_mlp([10, 12, 3, 12, 10], seed=3)
    X = _random((40, 10), 11)
    ranks = [rep.numerical_rank(J) for J in rep.stage_jacobians(model, X)]
    active = [(h > 0).sum(axis=1) for h in rep.stage_outputs(model, X)[:-1]]
    np.testing.assert_array_equal(ranks[0], np.minimum(active[0], 10))  # W_1 has full rank 10
    assert np.all(ranks[1] <= np.minimum(ranks[0], active[1]))
    assert np.all(ranks[2] <= 3) and np.all(ranks[3] <= 3)


def test_jacobian_helpers_reject_bad_input():
    model = build_mlp([3, 2], seed=0)
    with pytest.raises(ValueError, match="mode"):
        rep.stage_jacobians(model, np.ones((2, 3)), mode="sideways")
    with pytest.raises(ValueError, match="2-D"):
        rep.stage_jacobians(model, np.ones(3))
    with pytest.raises(ValueError, match="same length"):
        rep.relu_network_jacobians([np.eye(2)], [], np.ones((1, 2)))
    with pytest.raises(ValueError, match="do not fit"):
        rep.relu_network_jacobians(
            [np.eye(2), np.ones((1, 3))], [np.zeros(2), np.zeros(1)], [[1, 2]]
        )


# -- learned PCA --------------------------------------------------------------------------------


def test_planted_data_have_the_stated_covariance():
    X, U = rep.planted_subspace_data(200_000, 6, 2, gap=0.75, seed=1)
    np.testing.assert_allclose(U.T @ U, np.eye(2), atol=1e-12)
    expected = U @ U.T + 0.25 * (np.eye(6) - U @ U.T)
    np.testing.assert_allclose(np.cov(X.T), expected, atol=0.01)


def test_autoencoder_gradients_match_torch_autograd():
    X = _random((30, 5), 12)
    run = rep.train_linear_autoencoder(X, 2, lr=0.1, steps=1, n_seeds=1, seed=3)
    E0, D0 = run.encoders[0, 0], run.decoders[0, 0]
    E = torch.tensor(E0, requires_grad=True)
    D = torch.tensor(D0, requires_grad=True)
    Xt = torch.as_tensor(X)
    loss = 0.5 * ((Xt - Xt @ E.T @ D.T) ** 2).sum() / 30
    loss.backward()
    assert run.losses[0, 0] == pytest.approx(loss.item(), rel=1e-12)
    np.testing.assert_allclose(run.encoders[1, 0], E0 - 0.1 * E.grad.numpy(), atol=1e-14)
    np.testing.assert_allclose(run.decoders[1, 0], D0 - 0.1 * D.grad.numpy(), atol=1e-14)


def test_autoencoder_finds_sklearns_pca_and_the_minimum_loss():
    X, _ = rep.planted_subspace_data(3000, 10, 3, gap=0.5, seed=2)
    X = X - X.mean(axis=0)
    run = rep.train_linear_autoencoder(X, 3, lr=0.5, steps=800, n_seeds=3, record_every=100)
    assert list(run.steps) == [0, 100, 200, 300, 400, 500, 600, 700, 800]
    pcs = PCA(3).fit(X).components_.T
    align = rep.subspace_alignments(np.swapaxes(run.encoders[-1], -1, -2), pcs)
    assert np.all(align > 1 - 1e-8)
    eigenvalues = np.linalg.eigvalsh(X.T @ X / 3000)
    np.testing.assert_allclose(run.losses[-1], 0.5 * eigenvalues[:7].sum(), rtol=1e-8)
    assert np.all(np.diff(run.losses.mean(axis=1)) <= 1e-12)  # descent, up to round-off


def test_autoencoder_batches_over_data_sets_like_single_runs():
    Xs = np.stack([rep.planted_subspace_data(100, 4, 1, g, seed=0)[0] for g in (0.2, 0.6)])
    both = rep.train_linear_autoencoder(Xs, 1, lr=0.3, steps=20, n_seeds=2, seed=5)
    assert both.encoders.shape == (21, 2, 2, 1, 4)
    rng = np.random.default_rng(5)
    E = rng.normal(0.0, 0.1 / 2, size=(2, 2, 1, 4))
    np.testing.assert_allclose(both.encoders[0], E)  # the documented initialization


def test_autoencoder_rejects_bad_input_and_reports_divergence():
    X = _random((10, 3))
    with pytest.raises(ValueError, match="r must be <= 3"):
        rep.train_linear_autoencoder(X, 4, lr=0.1, steps=1)
    with pytest.raises(ValueError, match="lr"):
        rep.train_linear_autoencoder(X, 1, lr=0.0, steps=1)
    with pytest.raises(ValueError, match="shape"):
        rep.train_linear_autoencoder(np.ones(3), 1, lr=0.1, steps=1)
    with pytest.raises(FloatingPointError, match="smaller learning rate"):
        rep.train_linear_autoencoder(100 * X, 2, lr=10.0, steps=200, init_scale=1.0)
    with pytest.raises(ValueError, match="gap"):
        rep.planted_subspace_data(10, 3, 1, gap=1.0)
    with pytest.raises(ValueError, match="r must be <= 2"):
        rep.planted_subspace_data(10, 3, 3, gap=0.5)


def test_import_does_not_load_torch_or_sklearn():
    code = (
        "import sys; import dl_course.theory.representations; "
        "print(any(m in sys.modules for m in ('torch', 'sklearn', 'matplotlib')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_autoencoder_loss_is_the_mean_squared_reconstruction_error():
    X = _random((25, 4), 13)
    E, D = _random((2, 4), 14), _random((4, 2), 15)
    direct = 0.5 * np.sum((X - X @ E.T @ D.T) ** 2) / 25
    assert rep.autoencoder_loss(E, D, X.T @ X / 25) == pytest.approx(direct, rel=1e-12)
