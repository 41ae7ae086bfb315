"""A node's state on disk: one JSON line per change of an invoice or a payment, replayed at start.

Appending is O(1) per change whatever the number of invoices; the latest line per key wins on
replay. A line torn by a crash mid-write is skipped: a development node may lose its last change.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger("satworks.devnodes.lnd")


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._out = path.open("a", encoding="utf-8")

    def append(self, kind: str, record: dict[str, Any]) -> None:
        self._out.write(json.dumps({"kind": kind, **record}, separators=(",", ":")) + "\n")
        self._out.flush()

    def replay(self) -> Iterator[dict[str, Any]]:
        """Every record written so far, oldest first."""
        with self.path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    log.warning("journal line skipped", extra={"action": "lnd_journal_skip", "line": number})

    def close(self) -> None:
        self._out.close()
