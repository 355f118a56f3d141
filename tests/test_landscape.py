"""dl_course.theory.landscape against dense Hessians, closed forms and torch."""

import copy
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from dl_course._threads import limited_threads
from dl_course.theory import landscape


def _small_net(seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(40, 5, generator=gen, dtype=dtype)
    y = torch.randint(0, 3, (40,), generator=gen)
    net = torch.nn.Sequential(torch.nn.Linear(5, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3))
    net = net.to(dtype)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=dtype))
    params = list(net.parameters())

    def loss_fn():
        return torch.nn.functional.cross_entropy(net(X), y)

    loss_fn.data = (X, y)
    return net, params, loss_fn


def _dense_hessian(net, params, loss_fn):
    """The full Hessian with torch.autograd.functional.hessian over the flat parameters."""
    X, y = loss_fn.data
    names = [n for n, _ in net.named_parameters()]
    shapes = [p.shape for p in params]
    sizes = [p.numel() for p in params]

    def loss_of(flat):
        pieces = [t.view(s) for t, s in zip(flat.split(sizes), shapes, strict=True)]
        logits = torch.func.functional_call(net, dict(zip(names, pieces, strict=True)), (X,))
        return torch.nn.functional.cross_entropy(logits, y)

    flat0 = torch.cat([p.detach().reshape(-1) for p in params])
    with limited_threads(0):
        return torch.autograd.functional.hessian(loss_of, flat0)


def test_top_eigenvalue_agrees_with_the_dense_hessian_of_a_small_network():
    net, params, loss_fn = _small_net()
    H = _dense_hessian(net, params, loss_fn)
    eig = torch.linalg.eigvalsh(H)
    expected = eig[eig.abs().argmax()].item()
    got = landscape.hessian_top_eigenvalue(loss_fn, params)
    assert got == pytest.approx(expected, rel=1e-8)


def test_top_eigenvalue_in_float32_agrees_with_the_float64_dense_hessian():
    net64, params64, loss64 = _small_net(seed=3, dtype=torch.float64)
    eig = torch.linalg.eigvalsh(_dense_hessian(net64, params64, loss64))
    expected = eig[eig.abs().argmax()].item()
    net = copy.deepcopy(net64).float()
    X, y = loss64.data
    X = X.float()
    got = landscape.hessian_top_eigenvalue(
        lambda: torch.nn.functional.cross_entropy(net(X), y), list(net.parameters()), tol=1e-4
    )
    assert got == pytest.approx(expected, rel=1e-4)


def test_hvp_matches_the_dense_hessian_times_a_vector():
    net, params, loss_fn = _small_net(seed=1)
    H = _dense_hessian(net, params, loss_fn)
    gen = torch.Generator().manual_seed(7)
    vs = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in params]
    out = landscape.hvp(loss_fn, params, vs)
    flat_out = torch.cat([h.reshape(-1) for h in out])
    flat_v = torch.cat([v.reshape(-1) for v in vs])
    torch.testing.assert_close(flat_out, H @ flat_v, rtol=1e-10, atol=1e-12)
    assert [h.shape for h in out] == [p.shape for p in params]


def test_negative_eigenvalue_of_largest_magnitude_is_returned_with_its_sign():
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    diag = torch.tensor([1.0, -5.0, 2.0], dtype=torch.float64)
    assert landscape.hessian_top_eigenvalue(
        lambda: 0.5 * (diag * w**2).sum(), [w]
    ) == pytest.approx(-5.0, rel=1e-12)


def test_saddle_hessian_at_the_origin_has_eigenvalues_plus_minus_xy():
    x, y = 1.5, 2.0
    w = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    res = landscape.lanczos(lambda: landscape.saddle_loss(w[0], w[1], x, y), [w])
    np.testing.assert_allclose(np.sort(res.ritz_values), [-x * y, x * y], atol=1e-12)


def test_parameters_and_their_grad_are_left_as_they_were():
    net, params, loss_fn = _small_net(seed=2)
    loss_fn().backward()
    before = [p.detach().clone() for p in params]
    grads = [p.grad.clone() for p in params]
    landscape.hessian_top_eigenvalue(loss_fn, params)
    landscape.hutchinson_trace(loss_fn, params, samples=5)
    landscape.hvp(loss_fn, params, [torch.ones_like(p) for p in params])
    for p, b, g in zip(params, before, grads, strict=True):
        assert torch.equal(p.detach(), b) and torch.equal(p.grad, g)
    # and parameters without a .grad keep None
    net2, params2, loss2 = _small_net(seed=2)
    landscape.hessian_top_eigenvalue(loss2, params2)
    assert all(p.grad is None for p in params2)


def test_lanczos_ritz_values_interlace_the_dense_spectrum_and_the_residual_bound_holds():
    net, params, loss_fn = _small_net(seed=4)
    eig = torch.linalg.eigvalsh(_dense_hessian(net, params, loss_fn)).numpy()
    res = landscape.lanczos(loss_fn, params, iters=8, tol=1e-14)
    assert res.iterations == 8 and not res.converged
    assert eig.min() - 1e-10 <= res.ritz_values.min() and res.ritz_values.max() <= eig.max() + 1e-10
    assert np.min(np.abs(eig - res.top)) <= res.residual + 1e-12  # Bauer-Fike


def test_lanczos_stops_when_the_krylov_space_is_exhausted():
    w = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    res = landscape.lanczos(lambda: (w**2).sum() * 1.5, [w], iters=50)
    assert res.converged and res.iterations == 1 and res.top == pytest.approx(3.0)


def test_linear_loss_has_a_zero_hessian():
    w = torch.ones(3, requires_grad=True)
    assert landscape.hessian_top_eigenvalue(lambda: w.sum() * 2, [w]) == 0.0


def test_hutchinson_trace_is_unbiased_for_the_exact_trace():
    net, params, loss_fn = _small_net(seed=5)
    exact = torch.trace(_dense_hessian(net, params, loss_fn)).item()
    est = landscape.hutchinson_trace(loss_fn, params, samples=400, seed=1)
    assert abs(est.trace - exact) < 4 * est.stderr
    assert est.samples == 400 and est.stderr > 0


def test_hutchinson_trace_is_exact_for_a_diagonal_hessian():
    w = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    d = torch.arange(1.0, 6.0, dtype=torch.float64)
    est = landscape.hutchinson_trace(lambda: 0.5 * (d * w**2).sum(), [w], samples=3)
    assert est.trace == pytest.approx(15.0) and est.stderr == pytest.approx(0.0, abs=1e-12)


def test_generator_of_parameters_is_accepted():
    net, _, loss_fn = _small_net(seed=6)
    a = landscape.hessian_top_eigenvalue(loss_fn, net.parameters())
    b = landscape.hessian_top_eigenvalue(loss_fn, list(net.parameters()))
    assert a == b


def test_same_seed_same_answer():
    net, params, loss_fn = _small_net(seed=6)
    r1 = landscape.lanczos(loss_fn, params, iters=3, seed=4)
    r2 = landscape.lanczos(loss_fn, params, iters=3, seed=4)
    np.testing.assert_array_equal(r1.ritz_values, r2.ritz_values)


# -- bad input ----------------------------------------------------------------------------------


def test_bad_input_is_refused_with_a_message_naming_the_argument():
    net, params, loss_fn = _small_net()
    with pytest.raises(TypeError, match="loss_fn"):
        landscape.hessian_top_eigenvalue(3.0, params)
    with pytest.raises(TypeError, match="single tensor"):
        landscape.hessian_top_eigenvalue(loss_fn, params[0])
    with pytest.raises(ValueError, match="at least one"):
        landscape.hessian_top_eigenvalue(loss_fn, [])
    with pytest.raises(TypeError, match=r"params\[1\]"):
        landscape.hessian_top_eigenvalue(loss_fn, [params[0], 2.0])
    with pytest.raises(ValueError, match="require grad"):
        landscape.hessian_top_eigenvalue(loss_fn, [torch.zeros(3)])
    with pytest.raises(TypeError, match="floating-point"):
        landscape.hessian_top_eigenvalue(loss_fn, [torch.zeros(3, dtype=torch.long)])
    with pytest.raises(ValueError, match="iters"):
        landscape.hessian_top_eigenvalue(loss_fn, params, iters=0)
    with pytest.raises(TypeError, match="iters"):
        landscape.hessian_top_eigenvalue(loss_fn, params, iters=2.5)
    with pytest.raises(ValueError, match="tol"):
        landscape.hessian_top_eigenvalue(loss_fn, params, tol=0.0)
    with pytest.raises(ValueError, match="seed"):
        landscape.hessian_top_eigenvalue(loss_fn, params, seed=-1)
    with pytest.raises(ValueError, match="scalar"):
        landscape.hessian_top_eigenvalue(
            lambda: net(torch.zeros(2, 5, dtype=torch.float64)), params
        )
    with pytest.raises(TypeError, match="torch tensor"):
        landscape.hessian_top_eigenvalue(lambda: 1.0, params)
    with pytest.raises(ValueError, match="does not depend"):
        landscape.hessian_top_eigenvalue(lambda: torch.tensor(1.0), params)
    with pytest.raises(ValueError, match="non-finite"):
        landscape.hessian_top_eigenvalue(lambda: loss_fn() * math.inf, params)
    with pytest.raises(ValueError, match="samples"):
        landscape.hutchinson_trace(loss_fn, params, samples=1)
    with pytest.raises(ValueError, match="one tensor per parameter"):
        landscape.hvp(loss_fn, params, [torch.ones(1)])
    with pytest.raises(ValueError, match=r"vectors\[0\]"):
        landscape.hvp(loss_fn, params, [torch.ones(1)] * len(params))
    with pytest.raises(TypeError, match="vectors"):
        landscape.hvp(loss_fn, params, torch.ones(3))


def test_import_is_cheap():
    code = "import sys, dl_course.theory.landscape; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- the saddle, random matrices ----------------------------------------------------------------


def test_saddle_escape_times_follow_the_logarithmic_law():
    sigmas = np.geomspace(1e-8, 1e-2, 4)
    times = landscape.saddle_escape_times(sigmas, lr=0.05, steps=800, seeds=300, x=1.5, y=2.0)
    assert times.shape == (4, 300) and np.all(np.isfinite(times))
    slope = np.polyfit(np.log(sigmas), times.mean(axis=1), 1)[0]
    assert slope == pytest.approx(-1 / math.log(1 + 0.05 * 3.0), rel=0.1)


def test_no_noise_never_escapes_and_escape_lowers_the_loss():
    assert np.all(np.isinf(landscape.saddle_escape_times([0.0], steps=50, seeds=3)))
    assert landscape.saddle_loss(0.0, 0.0, 2.0, 3.0) == pytest.approx(4.5)
    assert landscape.saddle_loss(1.0, 1.5, 2.0, 3.0) == pytest.approx(0.0)


def test_goe_fraction_matches_the_closed_forms_for_n_1_and_2():
    for n, exact in ((1, 0.5), (2, (2 - math.sqrt(2)) / 4)):
        p = landscape.goe_positive_fraction(n, 200_000, seed=3)
        assert abs(p - exact) < 4 * math.sqrt(exact * (1 - exact) / 200_000)


def test_positive_definite_test_agrees_with_eigenvalues():
    a = np.random.default_rng(0).standard_normal((5000, 4, 4))
    a = (a + a.transpose(0, 2, 1)) / 2 + 1.0 * np.eye(4)
    expected = np.linalg.eigvalsh(a)[:, 0] > 0
    assert 0.05 < expected.mean() < 0.95
    np.testing.assert_array_equal(landscape._positive_definite(a), expected)


# -- stacks of MLPs -------------------------------------------------------------------------


def _digits_like(n=60, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 8, generator=gen), torch.randint(0, 3, (n,), generator=gen)


def test_stacked_mlp_agrees_with_torch_modules():
    params = landscape.init_mlp([8, 5, 3], members=3, seed=1)
    X, y = _digits_like()
    for k in range(3):
        net = torch.nn.Sequential(torch.nn.Linear(8, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
        with torch.no_grad():
            for p, q in zip(net.parameters(), params, strict=True):
                p.copy_(q[k])
        torch.testing.assert_close(landscape.mlp_logits(params, X)[k], net(X))
        loss = torch.nn.functional.cross_entropy(net(X), y)
        torch.testing.assert_close(landscape.mlp_loss(params, X, y)[k], loss)
    # the first members of a larger stack are the same networks
    bigger = landscape.init_mlp([8, 5, 3], members=5, seed=1)
    assert all(torch.equal(a, b[:3]) for a, b in zip(params, bigger, strict=True))


def test_sam_step_is_the_two_gradient_update_and_rho_zero_is_sgd():
    params = landscape.init_mlp([8, 4, 3], members=2, seed=0)
    X, y = _digits_like()

    def loss_fn(w):
        return landscape.mlp_loss(w, X, y)

    plain = landscape.sam_step(params, loss_fn, lr=0.1, rho=0.0)
    w = [p.clone().requires_grad_() for p in params]
    grads = torch.autograd.grad(loss_fn(w).sum(), w)
    for p, g, q in zip(params, grads, plain, strict=True):
        torch.testing.assert_close(q, p - 0.1 * g)
    # SAM by hand for member 1 alone, with rho = 0 for member 0
    mixed = landscape.sam_step(params, loss_fn, lr=0.1, rho=[0.0, 0.05])
    one = [p[1:].clone().requires_grad_() for p in params]
    g1 = torch.autograd.grad(loss_fn(one).sum(), one)
    norm = torch.sqrt(sum((g**2).sum() for g in g1))
    up = [(p + 0.05 * g / norm).detach().requires_grad_() for p, g in zip(one, g1, strict=True)]
    g2 = torch.autograd.grad(loss_fn(up).sum(), up)
    for p, g, q, r in zip(one, g2, mixed, plain, strict=True):
        torch.testing.assert_close(q[1:], (p - 0.1 * g).detach())
        torch.testing.assert_close(q[:1], r[:1])


def test_training_lowers_the_loss_and_shared_batch_seeds_give_equal_runs():
    init = landscape.init_mlp([8, 6, 3], members=2, seed=0)
    init = [torch.cat([p[:1], p[:1]]) for p in init]
    X, y = _digits_like(90)
    out = landscape.train_mlp(init, X, y, lr=0.2, epochs=5, batch_size=16, batch_seeds=[4, 4])
    assert all(torch.equal(p[0], p[1]) for p in out)
    before, after = landscape.mlp_loss(init, X, y), landscape.mlp_loss(out, X, y)
    assert torch.all(after < before)
    assert all(
        torch.equal(p, q)
        for p, q in zip(init, [torch.cat([r[:1], r[:1]]) for r in init], strict=True)
    )


def test_rescaling_keeps_the_function_and_changes_the_sharpness():
    X, y = _digits_like()
    params = landscape.train_mlp(
        landscape.init_mlp([8, 6, 3], seed=2), X, y, lr=0.2, epochs=20, batch_size=20
    )
    scaled = landscape.rescale_hidden(params, 3.0)
    torch.testing.assert_close(
        landscape.mlp_logits(scaled, X), landscape.mlp_logits(params, X), rtol=1e-5, atol=1e-5
    )
    base = landscape.top_eigenvalues(params, X, y)[0]
    assert landscape.top_eigenvalues(scaled, X, y)[0] > 2 * base


def test_filter_normalized_direction_matches_row_norms_and_skips_biases():
    params = landscape.init_mlp([8, 6, 3], members=2, seed=0)
    d = landscape.filter_normalized_direction(params, seed=1)
    for i, (p, v) in enumerate(zip(params, d, strict=True)):
        if i % 2:
            assert torch.count_nonzero(v) == 0
        else:
            torch.testing.assert_close(v.norm(dim=2), p.norm(dim=2))
    shared = landscape.filter_normalized_direction(params, seed=1, shared=True)
    unit = shared[0] / shared[0].norm(dim=2, keepdim=True)
    torch.testing.assert_close(unit[0], unit[1])


def test_loss_grid_and_bezier_points_agree_with_direct_evaluation():
    X, y = _digits_like()
    a = landscape.init_mlp([8, 4, 3], members=2, seed=0)
    b = landscape.init_mlp([8, 4, 3], members=2, seed=1)
    m = landscape.init_mlp([8, 4, 3], members=2, seed=2)
    d = landscape.filter_normalized_direction(a, seed=0)
    grid = landscape.loss_grid(a, [d], [[0.0], [0.5]], X, y)
    moved = [p + 0.5 * q for p, q in zip(a, d, strict=True)]
    np.testing.assert_allclose(grid[1], landscape.mlp_loss(moved, X, y).numpy(), rtol=1e-6)
    np.testing.assert_allclose(grid[0], landscape.mlp_loss(a, X, y).numpy(), rtol=1e-6)
    pts = landscape.bezier_points(a, m, b, [0.0, 0.3, 1.0])
    assert all(torch.allclose(p[:2], q) for p, q in zip(pts, a, strict=True))
    assert all(torch.allclose(p[4:], q) for p, q in zip(pts, b, strict=True))
    t = 0.3
    direct = [
        (1 - t) ** 2 * pa + 2 * t * (1 - t) * pm + t**2 * pb
        for pa, pm, pb in zip(a, m, b, strict=True)
    ]
    assert all(torch.allclose(p[2:4], q) for p, q in zip(pts, direct, strict=True))
    line = landscape.path_losses(a, landscape.midpoint(a, b), b, [0.5], X, y)
    avg = [(pa + pb) / 2 for pa, pb in zip(a, b, strict=True)]
    np.testing.assert_allclose(line[0], landscape.mlp_loss(avg, X, y).numpy(), rtol=1e-6)


def test_train_bezier_lowers_the_mean_loss_on_the_curve():
    X, y = _digits_like(90)
    a = landscape.train_mlp(
        landscape.init_mlp([8, 8, 3], seed=0), X, y, lr=0.2, epochs=30, batch_size=15
    )
    b = landscape.train_mlp(
        landscape.init_mlp([8, 8, 3], seed=1), X, y, lr=0.2, epochs=30, batch_size=15
    )
    ts = np.linspace(0, 1, 11)
    m = landscape.train_bezier(a, b, X, y, steps=100, lr=0.05, batch_size=90)
    before = landscape.path_losses(a, landscape.midpoint(a, b), b, ts, X, y).mean()
    assert landscape.path_losses(a, m, b, ts, X, y).mean() < before


def test_bad_input_of_the_landscape_helpers():
    params = landscape.init_mlp([8, 4, 3], members=2)
    X, y = _digits_like()
    with pytest.raises(ValueError, match="noise"):
        landscape.saddle_escape_times([-1.0])
    with pytest.raises(ValueError, match="noise"):
        landscape.saddle_escape_times([])
    with pytest.raises(ValueError, match="nonzero"):
        landscape.saddle_escape_times([0.1], x=0.0)
    with pytest.raises(ValueError, match="n must be"):
        landscape.goe_positive_fraction(0)
    with pytest.raises(ValueError, match="n must be"):
        landscape.goe_positive_fraction(landscape.MAX_GOE_SIZE + 1)
    with pytest.raises(ValueError, match="sizes"):
        landscape.init_mlp([8])
    with pytest.raises(ValueError, match="members"):
        landscape.init_mlp([8, 3], members=0)
    with pytest.raises(ValueError, match="weight and a bias"):
        landscape.mlp_logits(params[:3], X)
    with pytest.raises(ValueError, match="axes"):
        landscape.mlp_logits([params[0][0], params[1]], X)
    with pytest.raises(ValueError, match="networks"):
        landscape.mlp_logits([params[0], params[1][:1], params[2], params[3]], X)
    with pytest.raises(TypeError, match="list"):
        landscape.mlp_logits(params[0], X)
    with pytest.raises(ValueError, match="rho"):
        landscape.sam_step(params, lambda w: landscape.mlp_loss(w, X, y), lr=0.1, rho=-0.1)
    with pytest.raises(ValueError, match="one per member"):
        landscape.sam_step(params, lambda w: landscape.mlp_loss(w, X, y), lr=0.1, rho=[0.1])
    with pytest.raises(ValueError, match="lr"):
        landscape.sam_step(params, lambda w: landscape.mlp_loss(w, X, y), lr=0.0, rho=0.1)
    with pytest.raises(ValueError, match="batch_seeds"):
        landscape.train_mlp(params, X, y, lr=0.1, epochs=1, batch_size=10, batch_seeds=[0])
    with pytest.raises(ValueError, match="a must be"):
        landscape.rescale_hidden(params, 0.0)
    with pytest.raises(ValueError, match="coords"):
        landscape.loss_grid(params, [params], np.zeros((3, 2)), X, y)
    with pytest.raises(TypeError, match="shared"):
        landscape.filter_normalized_direction(params, shared="yes")
    with pytest.raises(ValueError, match="k must be"):
        landscape.member(params, 2)
