"""A server stream of lnd updates, converted one by one, that never lets a ``grpc.RpcError`` out."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

import grpc

from satworks.errors import NodeUnavailable
from satworks.integrations.lnd.rpc_errors import convert

T = TypeVar("T")


class Stream(Generic[T]):
    """A server stream of converted updates. ``close()`` (from any thread) ends the iteration quietly.

    A stream that fails or that the node ends raises ``NodeUnavailable`` (or a permanent ``LndError``)
    unless ``ends_normally``: payment streams end by themselves after the final update.
    """

    def __init__(self, call: Iterator[object], method: str, convert_one: Callable[[object], T], *, ends_normally: bool):
        self._call = call
        self._method = method
        self._convert = convert_one
        self._ends_normally = ends_normally
        self._closed = False

    def __iter__(self) -> Stream[T]:
        return self

    def __next__(self) -> T:
        try:
            message = next(self._call)
        except StopIteration:
            if self._closed or self._ends_normally:
                raise
            raise NodeUnavailable(f"lnd {self._method}: the node ended the stream") from None
        except grpc.RpcError as exc:
            if self._closed:
                raise StopIteration from None
            raise convert(exc, self._method) from exc
        return self._convert(message)

    def close(self) -> None:
        self._closed = True
        cancel = getattr(self._call, "cancel", None)
        if cancel is not None:
            cancel()

    def __enter__(self) -> Stream[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
