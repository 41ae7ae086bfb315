"""A service the suite needs: skipped when it is missing on a developer's machine, a failure under CI=true."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest

from tests.support import free_port, require_service, tcp_check


def down() -> None:
    raise ConnectionRefusedError("connection refused")


@pytest.mark.parametrize("check", [down, lambda: False], ids=["raises", "returns-false"])
def test_a_missing_service_fails_under_ci(monkeypatch: pytest.MonkeyPatch, check: Callable[[], object]) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"RabbitMQ is not reachable.*CI=true expects it"):
        require_service("RabbitMQ", check)


@pytest.mark.parametrize("ci", [None, "false", "1"])
def test_a_missing_service_skips_outside_ci(monkeypatch: pytest.MonkeyPatch, ci: str | None) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match="ConnectionRefusedError: connection refused"):
        require_service("RabbitMQ", down)


@pytest.mark.parametrize("ci", [None, "true"])
def test_a_service_that_answers_neither_skips_nor_fails(monkeypatch: pytest.MonkeyPatch, ci: str | None) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    require_service("anything", lambda: None)
    require_service("anything", lambda: True)


def test_tcp_check_answers_only_where_something_listens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        require_service("listener", tcp_check(f"amqp://guest:guest@127.0.0.1:{port}/%2F", default_port=5672))
    with pytest.raises(pytest.fail.Exception, match="nothing is not reachable"):
        require_service("nothing", tcp_check(f"amqp://127.0.0.1:{free_port()}/", default_port=5672))
