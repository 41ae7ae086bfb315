"""A stop signal delivered twice at once (to the process group, and passed on by Dramatiq) counts once."""

from __future__ import annotations

import signal
from types import FrameType

from satworks.workers.signals import Handler, coalesce_repeats, coalesce_stop_signals, is_dramatiq_worker_handler


def recorder() -> tuple[list[int], Handler]:
    calls: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        calls.append(signum)

    return calls, handler


def test_a_repeat_within_the_window_is_the_same_request() -> None:
    calls, handler = recorder()
    coalesced = coalesce_repeats(handler, window_s=60)
    coalesced(signal.SIGTERM, None)
    coalesced(signal.SIGTERM, None)
    assert calls == [signal.SIGTERM]


def test_a_repeat_after_the_window_is_passed_on_as_kill_now() -> None:
    calls, handler = recorder()
    coalesced = coalesce_repeats(handler, window_s=0)
    coalesced(signal.SIGTERM, None)
    coalesced(signal.SIGTERM, None)
    assert calls == [signal.SIGTERM, signal.SIGTERM]


def test_each_signal_has_its_own_window() -> None:
    calls, handler = recorder()
    coalesced = coalesce_repeats(handler, window_s=60)
    for signum in (signal.SIGHUP, signal.SIGTERM, signal.SIGHUP, signal.SIGTERM):
        coalesced(signum, None)
    assert calls == [signal.SIGHUP, signal.SIGTERM]


def test_only_dramatiqs_worker_handlers_are_wrapped() -> None:
    _, handler = recorder()
    before = signal.signal(signal.SIGTERM, handler)
    try:
        assert not is_dramatiq_worker_handler(handler)
        assert coalesce_stop_signals() is False
        assert signal.getsignal(signal.SIGTERM) is handler
    finally:
        signal.signal(signal.SIGTERM, before)
