"""The per-process memory budget (worker.budget): waits for room, first come first served,
and lets a job larger than the whole budget run alone."""

from __future__ import annotations

import threading
import time

from worker.budget import MemoryBudget, payload_cost


def hold(
    budget: MemoryBudget,
    nbytes: int,
    started: threading.Event,
    release: threading.Event,
    order: list[int],
) -> threading.Thread:
    def run() -> None:
        with budget.reserve(nbytes):
            order.append(nbytes)
            started.set()
            release.wait(10)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def wait_until(condition: object, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline
        time.sleep(0.005)


def test_reservations_wait_for_room_and_are_granted_in_order() -> None:
    budget = MemoryBudget(100)
    order: list[int] = []
    release_first = threading.Event()
    first = threading.Event()
    hold(budget, 60, first, release_first, order)
    assert first.wait(5) and budget.in_use == 60
    big_started, release_big = threading.Event(), threading.Event()
    hold(budget, 50, big_started, release_big, order)  # does not fit: waits
    wait_until(lambda: budget.waiting == 1)
    small_started, release_small = threading.Event(), threading.Event()
    hold(budget, 10, small_started, release_small, order)  # would fit, but waits its turn
    wait_until(lambda: budget.waiting == 2)
    assert not small_started.is_set()
    release_first.set()
    assert big_started.wait(5) and small_started.wait(5)
    assert order == [60, 50, 10] and budget.in_use == 60
    release_big.set()
    release_small.set()
    wait_until(lambda: budget.in_use == 0)


def test_a_job_larger_than_the_budget_runs_alone() -> None:
    budget = MemoryBudget(100)
    order: list[int] = []
    small, release_small = threading.Event(), threading.Event()
    hold(budget, 1, small, release_small, order)
    assert small.wait(5)
    huge, release_huge = threading.Event(), threading.Event()
    hold(budget, 10_000, huge, release_huge, order)
    wait_until(lambda: budget.waiting == 1)
    assert not huge.is_set()
    release_small.set()
    assert huge.wait(5) and budget.in_use == 100  # all of it, nothing else meanwhile
    release_huge.set()
    wait_until(lambda: budget.in_use == 0)


def test_the_cost_grows_with_the_data() -> None:
    small = payload_cost(100, 10, 5_000)
    large = payload_cost(50_000, 100, 20_000_000)
    assert small < large
    # ~6x the raw float64 table, as measured for tabpfn-client's serialisation.
    assert large >= 50_000 * 100 * 8 * 6
    assert payload_cost(100, 10, 0, result_cols=3) > payload_cost(100, 10, 0)
