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

    torch = sys.modules.get("torch")  # never import torch just for this
    before = torch.get_num_threads() if torch else None
    with threadpool_limits(limits=1, user_api="blas"):
        if torch:
            torch.set_num_threads(1)
        try:
            yield
        finally:
            if torch:
                torch.set_num_threads(before)
