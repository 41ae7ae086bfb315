"""Signals sent only to the middleware that handle them reach them as Dramatiq's own emit would:
the same calls, in the same order, with the same error handling."""

from __future__ import annotations

import logging
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Middleware, SkipMessage

from satworks.broker.hooks import HookedOnly, hooked


class Ours(HookedOnly, StubBroker):
    pass


class Before(Middleware):
    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        self.log.append(f"before {self.name} {message}")


class After(Before):
    def after_process_message(
        self, broker: dramatiq.Broker, message: Any, *, result: Any = None, exception: BaseException | None = None
    ) -> None:
        self.log.append(f"after {self.name} {message} {result}")


class Failing(Middleware):
    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        raise RuntimeError("a bug in a middleware")

    def after_process_message(self, broker: dramatiq.Broker, message: Any, **kwargs: Any) -> None:
        raise RuntimeError("another bug")


class Skipping(Middleware):
    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        raise SkipMessage()


def calls(broker_class: type[dramatiq.Broker], caplog: pytest.LogCaptureFixture) -> list[str]:
    """What a run of signals does to a set of middleware, some of them added between signals."""
    log: list[str] = []
    broker = broker_class(middleware=[])
    for middleware in (Before("a", log), Middleware(), After("b", log), Failing(), After("c", log)):
        broker.add_middleware(middleware)
    caplog.clear()
    broker.emit_before("process_message", "m1")
    broker.emit_after("process_message", "m1", result=1)
    broker.emit_before("ack", "m1")  # handled by nobody
    broker.add_middleware(Before("d", log))
    patched = Middleware()
    patched.before_process_message = lambda broker, message: log.append(f"instance hook {message}")  # type: ignore[method-assign]
    broker.middleware.insert(0, patched)  # changed in place, as tests do
    broker.emit_before("process_message", "m2")
    broker.emit_after("process_message", "m2", result=2)
    log += [f"logged {r.getMessage().split(' object at ')[0]}" for r in caplog.records if r.levelno == logging.CRITICAL]
    broker.add_middleware(Skipping())
    with pytest.raises(SkipMessage):
        broker.emit_before("process_message", "m3")
    log.append("skip raised")
    return log


def test_signals_reach_the_same_middleware_in_the_same_order_as_dramatiqs_own(caplog: pytest.LogCaptureFixture) -> None:
    expected = calls(StubBroker, caplog)
    got = calls(Ours, caplog)

    assert got == expected
    assert got[:8] == [
        "before a m1",
        "before b m1",
        "before c m1",
        "after c m1 1",
        "after b m1 1",
        "instance hook m2",
        "before a m2",
        "before b m2",
    ]
    assert "before d m2" in got and got[-1] == "skip raised"
    failures = [line for line in got if line.startswith("logged Unexpected failure")]
    assert len(failures) == 4  # Failing's two hooks, for m1 and m2: logged, and the others still ran


def test_a_hook_counts_when_its_class_overrides_it_or_it_is_set_on_the_instance() -> None:
    patched = Middleware()
    patched.before_enqueue = lambda broker, message, delay: None  # type: ignore[method-assign]

    assert hooked([Middleware(), Before("a", [])], "before_process_message")
    assert hooked([patched], "before_enqueue")
    assert not hooked([Middleware(), Before("a", []), Skipping()], "before_enqueue")
    assert not hooked([], "after_ack")
