"""The broker's seam: its client errors become ``BrokerUnavailable``, once, here."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from dramatiq.errors import BrokerConnectionError
from redis.exceptions import RedisError

from satworks.errors import BrokerUnavailable

#: What a broker that cannot be reached, refuses a command or drops the connection raises: redis-py,
#: Dramatiq's own connection errors and the socket errors under them (timeouts included); and pika's,
#: see ``foreign_errors``.
FOREIGN_ERRORS: tuple[type[BaseException], ...] = (RedisError, BrokerConnectionError, OSError)


def foreign_errors() -> tuple[type[BaseException], ...]:
    """``FOREIGN_ERRORS`` and pika's ``AMQPError`` once pika is loaded: only then can it be raised, and a
    process on the Redis broker never loads pika."""
    pika = sys.modules.get("pika.exceptions")
    return FOREIGN_ERRORS if pika is None else (*FOREIGN_ERRORS, pika.AMQPError)


@contextmanager
def broker_errors() -> Iterator[None]:
    """Map a broker failure to ``BrokerUnavailable`` (``raise ... from``); other errors pass."""
    try:
        yield
    except foreign_errors() as exc:
        raise BrokerUnavailable("broker unavailable", details={"dependency": "broker"}) from exc
