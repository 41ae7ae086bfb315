"""The development SMTP server on free 127.0.0.1 ports, in a background thread with its own loop.

Blocking code (smtplib, our client) and the test talk to it over real sockets; ``sink`` is the
running ``SmtpSink`` (read its ``store`` and ``sessions`` between sends, or use ``http``).
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import trustme

from satworks.devnodes.smtp.sink import SinkConfig, SmtpSink
from satworks.integrations.smtp.client import SmtpConfig

HOST = "127.0.0.1"


class SinkThread:
    def __init__(self, config: SinkConfig) -> None:
        self.sink = SmtpSink(config)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="smtp-sink", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.sink.start(HOST, 0, 0), self._loop).result(timeout=30)
        assert self.sink.smtp_port is not None and self.sink.http_port is not None
        self.port: int = self.sink.smtp_port
        self.http_url = f"http://{HOST}:{self.sink.http_port}"

    def client(self, **overrides: Any) -> SmtpConfig:
        values: dict[str, Any] = {"host": HOST, "port": self.port, "helo_name": "tests.local", **overrides}
        return SmtpConfig(**values)

    def http(self, path: str, method: str = "GET") -> Any:
        request = urllib.request.Request(self.http_url + path, method=method)
        with urllib.request.urlopen(request, timeout=10) as answer:
            body = answer.read()
            return json.loads(body) if answer.headers.get_content_type() == "application/json" else body

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.sink.stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@contextmanager
def running_sink(config: SinkConfig | None = None) -> Iterator[SinkThread]:
    sink = SinkThread(config or SinkConfig())
    try:
        yield sink
    finally:
        sink.close()


class Tls:
    """A private CA and a certificate for 127.0.0.1/localhost, as files."""

    def __init__(self, directory: Path) -> None:
        self.ca = trustme.CA()
        cert = self.ca.issue_cert("127.0.0.1", "localhost")
        self.ca_file = directory / "ca.pem"
        self.cert_file = directory / "cert.pem"
        self.key_file = directory / "key.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        cert.cert_chain_pems[0].write_to_path(str(self.cert_file))
        cert.private_key_pem.write_to_path(str(self.key_file))
