"""Middleware signals sent only to the middleware that handle them.

Dramatiq's broker calls every middleware for every signal, and most hooks are the base class' no-ops:
per message a worker sent 56 calls (``before``/``after`` of ``process_message`` and ``ack`` to 14
middleware), 12 of which did anything. ``HookedOnly`` calls those 12, in Dramatiq's order and with
its error handling, and works out who handles a signal again whenever the middleware list changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from dramatiq.middleware import Middleware, MiddlewareError


def handles(middleware: Middleware, hook: str) -> bool:
    """Whether ``middleware`` does something in ``hook``: its class overrides ``Middleware``'s no-op, or
    the hook is set on the instance itself."""
    return hook in getattr(middleware, "__dict__", ()) or getattr(type(middleware), hook, None) is not getattr(
        Middleware, hook, None
    )


def hooked(middleware: Sequence[Middleware], hook: str) -> bool:
    """Whether any middleware does something in ``hook`` (emitting to no-op hooks costs per message)."""
    return any(handles(m, hook) for m in middleware)


class HookedOnly:
    """A mixin for a ``dramatiq.Broker``: ``emit_before`` / ``emit_after`` as Dramatiq's, skipping
    the middleware whose hook for the signal is ``Middleware``'s own no-op."""

    middleware: list[Middleware]
    logger: Any

    def emit_before(self, signal: str, *args: Any, **kwargs: Any) -> None:
        signal = "before_" + signal
        for middleware, hook in self._handlers(signal, reverse=False):
            try:
                hook(self, *args, **kwargs)
            except MiddlewareError:
                raise
            except Exception:
                self.logger.critical("Unexpected failure in %s of %r.", signal, middleware, exc_info=True)

    def emit_after(self, signal: str, *args: Any, **kwargs: Any) -> None:
        signal = "after_" + signal
        for middleware, hook in self._handlers(signal, reverse=True):
            try:
                hook(self, *args, **kwargs)
            except Exception:
                self.logger.critical("Unexpected failure in %s of %r.", signal, middleware, exc_info=True)

    def _handlers(self, signal: str, *, reverse: bool) -> list[tuple[Middleware, Callable[..., Any]]]:
        """The middleware that handle ``signal``, each with its bound hook, in calling order. Cached
        per signal for the middleware list as it is now (Dramatiq and tests change it in place)."""
        current = tuple(self.middleware)
        cache: dict[str, tuple[tuple[Middleware, ...], list[Any]]] = self.__dict__.setdefault("_hook_cache", {})
        cached = cache.get(signal)
        if cached is not None and cached[0] == current:
            return cached[1]
        handlers = [(m, getattr(m, signal)) for m in (reversed(current) if reverse else current) if handles(m, signal)]
        cache[signal] = (current, handlers)
        return handlers
