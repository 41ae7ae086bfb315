"""A value one thread waits for and another sets once: the status writer's answer to a claim or an
outcome.

``concurrent.futures.Future`` does this with a condition variable, states and callbacks: each wait
allocates a lock, each answer notifies under an ``RLock``. A worker makes two of these per job; the
plain lock here (taken at creation, released by the answer) costs a third of that.
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class Pending(Generic[T]):
    __slots__ = ("_answered", "_error", "_set", "_value")

    def __init__(self) -> None:
        self._set = threading.Lock()
        self._set.acquire()  # released once, by ``set_result`` or ``set_exception``
        self._value: T | None = None
        self._error: BaseException | None = None
        self._answered = False  # not ``_set.locked()``: a waiter holds the lock for a moment in ``result``

    def set_result(self, value: T) -> None:
        self._answer()
        self._value = value
        self._set.release()

    def set_exception(self, error: BaseException) -> None:
        self._answer()
        self._error = error
        self._set.release()

    def done(self) -> bool:
        return self._answered

    def result(self, timeout: float | None = None) -> T:
        """The value, once set (``TimeoutError`` after ``timeout`` seconds); raises what was set as
        the exception. May be called any number of times, from any thread."""
        if not self._set.acquire(timeout=-1 if timeout is None else timeout):
            raise TimeoutError("no answer in time")
        self._set.release()  # for the next caller
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]  # set (None is a value here)

    def _answer(self) -> None:
        """Each is answered once, by one thread (the writer's): a second answer is a bug."""
        if self._answered:
            raise RuntimeError("answered already")
        self._answered = True
