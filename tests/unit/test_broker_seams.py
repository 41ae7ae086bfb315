"""The broker layer's seams: foreign errors become ours, and the Dramatiq internals we use are known."""

from __future__ import annotations

import pytest
from dramatiq.errors import ConnectionClosed
from pika.exceptions import AMQPConnectionError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from satworks.broker import compat
from satworks.broker.errors import broker_errors
from satworks.errors import BrokerUnavailable, DependencyUnavailable


@pytest.mark.parametrize(
    "foreign",
    [
        RedisConnectionError("refused"),
        ResponseError("OOM"),
        AMQPConnectionError(),
        ConnectionClosed(OSError()),
        TimeoutError(),
    ],
)
def test_broker_failures_become_broker_unavailable_with_their_cause(foreign: Exception) -> None:
    with pytest.raises(BrokerUnavailable) as caught, broker_errors():
        raise foreign
    assert isinstance(caught.value, DependencyUnavailable)  # answered 503 like any dependency
    assert caught.value.details == {"dependency": "broker"}
    assert caught.value.__cause__ is foreign


def test_other_errors_pass_the_broker_seam_unchanged() -> None:
    with pytest.raises(KeyError), broker_errors():
        raise KeyError("a bug, not the broker")


def test_the_installed_dramatiq_has_the_internals_the_broker_uses() -> None:
    # Off only with a Dramatiq whose Redis script changed: then enqueue and recovery still work, slower
    # or later; this test says so before production does.
    assert compat.DRAMATIQ_MAJOR == 2
    assert compat.DISPATCH_KNOWN
    assert compat.ENQUEUE_KNOWN
    assert compat.WAKEUP_KNOWN
