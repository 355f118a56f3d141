"""Time dl_course.theory.ntk.empirical_ntk against the two usual ways of computing an NTK.

The network is an MLP 10-256-256-1 with ReLU (float32, torch's default init), the
inputs x1 (128 x 10) and x2 (96 x 10). Three computations of the same kernel:

- *loop*: one autograd backward pass per example, the flattened gradients
  stacked, then their Gram matrix (run once: it is slow);
- *torch.func*: the recipe of the torch.func tutorial, per-example Jacobians by
  ``vmap(jacrev(...))`` over ``functional_call``, then an einsum contraction per
  parameter, summed;
- *empirical_ntk*: the library (``method="auto"``, which takes the structured
  per-layer path on this network).

Each time is the median of repeated runs of the process's CPU time, on one
thread (the same for every method). On a shared 2-core machine wall-clock timings
of such small kernels swing by 10x from run to run with the other processes'
load; CPU time on one thread does not. Targets: empirical_ntk at least 50x
faster than the loop and 10x faster than torch.func, with the same kernel to
float32 tolerance. Exit status 1 if a target is missed.

    python benchmarks/ntk.py
"""

from __future__ import annotations

import statistics
import sys
import time

import torch
from torch.func import functional_call, jacrev, vmap

from dl_course.theory.ntk import empirical_ntk, ntk_method

SIZES = (10, 256, 256, 1)
N1, N2 = 128, 96
TARGET_VS_LOOP = 50.0
TARGET_VS_FUNC = 10.0
#: Largest |difference| allowed, relative to the largest kernel entry (float32 round-off).
TOLERANCE = 1e-5


def network(seed: int = 0) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    layers = []
    for k, (a, b) in enumerate(zip(SIZES[:-1], SIZES[1:], strict=True)):
        if k:
            layers.append(torch.nn.ReLU())
        layers.append(torch.nn.Linear(a, b))
    return torch.nn.Sequential(*layers)


def loop_ntk(model, x1, x2):
    """One backward pass per example; the Gram matrix of the flattened gradients."""
    params = list(model.parameters())

    def grads(x):
        rows = []
        for xi in x:
            g = torch.autograd.grad(model(xi[None]).sum(), params)
            rows.append(torch.cat([t.reshape(-1) for t in g]))
        return torch.stack(rows)

    return grads(x1) @ grads(x2).T


def func_ntk(model, x1, x2):
    """The torch.func tutorial's recipe: vmap over jacrev, then a contraction."""
    params = {name: p.detach() for name, p in model.named_parameters()}

    def f(p, x):
        return functional_call(model, p, (x.unsqueeze(0),)).squeeze(0).squeeze(0)

    j1 = vmap(jacrev(f), (None, 0))(params, x1)
    j2 = vmap(jacrev(f), (None, 0))(params, x2)
    return sum(torch.einsum("n...,m...->nm", j1[k], j2[k]) for k in params)


def timed(fn, repeats: int):
    """Median CPU time of ``repeats`` calls (after one warm-up call) and the last result."""
    out = fn()
    times = []
    for _ in range(repeats):
        start = time.process_time()
        out = fn()
        times.append(time.process_time() - start)
    return statistics.median(times), out


def main() -> int:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _compare()
    finally:
        torch.set_num_threads(threads)


def _compare() -> int:
    """Time the three methods, print the table, return 1 if a target is missed."""
    model = network()
    generator = torch.Generator().manual_seed(1)
    x1 = torch.randn(N1, SIZES[0], generator=generator)
    x2 = torch.randn(N2, SIZES[0], generator=generator)
    start = time.process_time()
    reference = loop_ntk(model, x1, x2)  # once: it is the slow one
    t_loop = time.process_time() - start
    t_func, k_func = timed(lambda: func_ntk(model, x1, x2), 5)
    t_fast, k_fast = timed(lambda: empirical_ntk(model, x1, x2), 31)
    scale = reference.abs().max().item()
    rows = [("loop (one backward per example)", t_loop, reference),
            ("torch.func vmap(jacrev) + einsum", t_func, k_func),
            (f"empirical_ntk ({ntk_method(model)})", t_fast, k_fast)]
    print(f"NTK of an MLP {'-'.join(map(str, SIZES))} (ReLU), n1 = {N1}, n2 = {N2}")
    print(f"{'method':<36} {'CPU time':>10} {'speedup of empirical_ntk':>26} {'max |dK| / max |K|':>20}")
    failures = []
    for name, seconds, kernel in rows:
        error = (kernel - reference).abs().max().item() / scale
        print(f"{name:<36} {seconds * 1e3:>8.2f}ms {seconds / t_fast:>25.1f}x {error:>20.1e}")
        if error > TOLERANCE:
            failures.append(f"{name}: kernel differs from the loop's by {error:.1e} (> {TOLERANCE})")
    if t_loop / t_fast < TARGET_VS_LOOP:
        failures.append(f"only {t_loop / t_fast:.1f}x faster than the loop (target {TARGET_VS_LOOP:.0f}x)")
    if t_func / t_fast < TARGET_VS_FUNC:
        failures.append(f"only {t_func / t_fast:.1f}x faster than torch.func (target {TARGET_VS_FUNC:.0f}x)")
    for failure in failures:
        print("MISSED:", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
