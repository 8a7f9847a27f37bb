"""Thread control for loops of small tensor operations."""

from __future__ import annotations

import contextlib

import torch

__all__ = ["one_thread"]


@contextlib.contextmanager
def one_thread():
    """Run the block on one torch thread, then restore the previous count.

    For loops of small operations (per-image FFTs of a few hundred pixels, an MLP on batches of
    16 embeddings) a second thread costs more than it gains, and on a shared machine waiting for
    it dominates: training the MLP head took 47 s with two threads while another process held
    the second core, against 1.9 s with one.
    """
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)
