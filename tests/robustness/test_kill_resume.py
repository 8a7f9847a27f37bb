"""SIGKILL a real subprocess at several points, restart it, compare with an uninterrupted run.

The quick default test covers ``average``; the other commands (``simulate subtomograms``,
``pretrain``, ``particles pretrain``) take about a minute each and are marked slow; all four run
in ``cryoframe bench robustness``.
"""

from __future__ import annotations

import pytest

from cryoframe.bench.robustness import kill_resume


def test_average_killed_twice_resumes_to_the_same_map(tmp_path):
    res = kill_resume("average", tmp_path)
    assert res["kills"] >= 1 and res["equal"], res


@pytest.mark.slow
@pytest.mark.parametrize("name", ["simulate subtomograms", "pretrain", "particles pretrain"])
def test_long_commands_resume_after_sigkill(name, tmp_path):
    res = kill_resume(name, tmp_path)
    assert res["kills"] >= 1 and res["equal"], res
