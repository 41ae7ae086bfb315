"""The broker's seam: its client errors become ``BrokerUnavailable``, once, here."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from dramatiq.errors import BrokerConnectionError
from pika.exceptions import AMQPError
from redis.exceptions import RedisError

from satworks.errors import BrokerUnavailable

#: What a broker that cannot be reached, refuses a command or drops the connection raises: redis-py,
#: pika, Dramatiq's own connection errors and the socket errors under them (timeouts included).
FOREIGN_ERRORS = (RedisError, AMQPError, BrokerConnectionError, OSError)


@contextmanager
def broker_errors() -> Iterator[None]:
    """Map a broker failure to ``BrokerUnavailable`` (``raise ... from``); other errors pass."""
    try:
        yield
    except FOREIGN_ERRORS as exc:
        raise BrokerUnavailable("broker unavailable", details={"dependency": "broker"}) from exc
