"""The status writer's answers: set once by the writer, waited for by a worker thread."""

from __future__ import annotations

import threading

import pytest

from satworks.workers.pending import Pending


def test_a_waiting_thread_gets_the_value_set_by_another() -> None:
    pending: Pending[int] = Pending()
    got: list[int] = []
    waiter = threading.Thread(target=lambda: got.append(pending.result(timeout=10)))
    waiter.start()
    assert not pending.done()

    pending.set_result(7)
    waiter.join(timeout=10)

    assert got == [7]
    assert pending.done()
    assert pending.result() == 7  # as often as asked


def test_none_is_a_value_and_an_error_is_raised_to_every_caller() -> None:
    nothing: Pending[None] = Pending()
    nothing.set_result(None)
    assert nothing.result(timeout=0) is None

    failed: Pending[int] = Pending()
    failed.set_exception(ValueError("refused"))
    for _ in range(2):
        with pytest.raises(ValueError, match="refused"):
            failed.result(timeout=0)


def test_no_answer_in_time_is_a_timeout_and_a_second_answer_is_refused() -> None:
    pending: Pending[int] = Pending()
    with pytest.raises(TimeoutError):
        pending.result(timeout=0.01)

    pending.set_result(1)
    with pytest.raises(RuntimeError, match="answered already"):
        pending.set_result(2)
    with pytest.raises(RuntimeError, match="answered already"):
        pending.set_exception(ValueError("late"))
    assert pending.result(timeout=0) == 1
