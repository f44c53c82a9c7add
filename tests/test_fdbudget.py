"""The fds the watcher may hold: the process limit less a reserve, less what the rest holds."""

from __future__ import annotations

import os
import resource

from llmtail.agent.reading.fdbudget import MIN_RESERVE, FdBudget, open_fds


def test_the_budget_follows_the_process_limit_with_a_reserve() -> None:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    budget = FdBudget.for_process(max_open=256)
    assert budget.limit == soft
    assert budget.reserve == max(MIN_RESERVE, soft // 8)


def test_what_the_rest_of_the_process_holds_is_left_to_it() -> None:
    held = open_fds()
    assert held is not None
    budget = FdBudget(limit=held + 60, max_open=256, reserve=20)
    budget.recount(own=0)
    assert budget.ceiling(own=0) == 40
    assert budget.target(own=0) == 40
    # The watcher takes 25 (over half: it is near the limit), the rest of the process opens 10
    # more: those are left to it at the next count.
    own = [os.open(os.devnull, os.O_RDONLY) for _ in range(25)]
    others = [os.open(os.devnull, os.O_RDONLY) for _ in range(10)]
    try:
        assert budget.ceiling(own=len(own)) == 30
    finally:
        for fd in own + others:
            os.close(fd)


def test_max_open_files_is_the_target_within_the_ceiling() -> None:
    held = open_fds()
    assert held is not None
    budget = FdBudget(limit=held + 1000, max_open=16, reserve=20)
    budget.recount(own=0)
    assert budget.target(own=0) == 16
    assert budget.ceiling(own=0) == 980


def test_at_least_one_file_can_always_be_read() -> None:
    held = open_fds()
    assert held is not None
    budget = FdBudget(limit=held, max_open=16, reserve=20)
    budget.recount(own=0)
    assert budget.ceiling(own=0) == 1 and budget.target(own=0) == 1
