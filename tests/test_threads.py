"""one_thread: the block runs on one torch thread and the count is restored, even on error."""

import pytest
import torch

from cryoframe._threads import one_thread


def test_one_thread_restores_count():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with one_thread():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError), one_thread():
            raise RuntimeError("inside")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
