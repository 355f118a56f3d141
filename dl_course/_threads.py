"""Thread limits for the small computations of the book's training loops.

The models of this book are small: a training step is a few hundred thousand
multiply-adds. Splitting such work across threads costs more than it saves, and
on a busy 2-core machine multi-threaded BLAS or torch can be ten times slower
than one thread. :func:`limited_threads` runs a block on one thread (BLAS and,
if it is loaded, torch) when the work per step is small, and restores the
previous settings afterwards.
"""

from __future__ import annotations

import contextlib
import sys

#: Multiply-adds per step below which a training loop runs on one thread.
SINGLE_THREAD_WORK = 1e7


@contextlib.contextmanager
def limited_threads(work: float):
    """Run the block on one thread if ``work`` (multiply-adds per step) is small."""
    if work > SINGLE_THREAD_WORK:
        yield
        return
    from threadpoolctl import threadpool_limits  # installed with scikit-learn

    with threadpool_limits(limits=1, user_api="blas"), one_torch_thread():
        yield


@contextlib.contextmanager
def one_torch_thread(work: float = 0.0):
    """Run torch (if it is loaded) on one thread if ``work`` is small; BLAS is left alone.

    The cheap half of :func:`limited_threads`, for torch computations whose NumPy
    side is tiny (the Hessian-vector products of chapter 14, the attacks of
    chapter 20): asking threadpoolctl about BLAS costs 10-50 ms a call.
    """
    torch = sys.modules.get("torch")  # never import torch just for this
    if torch is None or work > SINGLE_THREAD_WORK:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
