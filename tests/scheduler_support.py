"""Helpers for scheduler tests: a database of their own, scheduler processes, their metrics and logs.

Scheduler state (``schedules``, ``schedule_runs``) and the leader lock are per database, so each
scheduler test gets a fresh, migrated database: no test sees another's last run or leader.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import redis
from prometheus_client.parser import text_string_to_metric_families
from psycopg import sql

from satworks.db.migrate import upgrade
from satworks.settings import Settings
from tests.support import ROOT, db_dsn, free_port, settings_env


@contextmanager
def fresh_database(base: Settings, **changes: Any) -> Iterator[Settings]:
    name = f"{base.database_url.rsplit('/', 1)[1]}_s{uuid.uuid4().hex[:8]}"
    admin = db_dsn(base).rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    settings = base.model_copy(
        update={
            "database_url": base.database_url.rsplit("/", 1)[0] + "/" + name,
            "queue_prefix": f"s{uuid.uuid4().hex[:8]}_",
            "worker_metrics_port": free_port(),
            "schedule_lightning_sweep": "off",  # these tests count the canary's slots only
            **changes,
        }
    )
    try:
        upgrade(settings.database_url)
        yield settings
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        client = redis.Redis.from_url(settings.effective_broker_url)
        try:
            keys = list(client.scan_iter(f"satworks:{settings.queue_prefix}*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()


class SchedulerProcess:
    """``satworks scheduler`` in its own process group, logging (JSON) to a file the test reads."""

    def __init__(self, settings: Settings, name: str, log_dir: Path) -> None:
        self.name = name
        self.port = free_port()
        self.settings = settings.model_copy(
            update={"scheduler_metrics_port": self.port, "scheduler_instance": name, "log_level": "INFO"}
        )
        self.log_path = log_dir / f"scheduler-{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> SchedulerProcess:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "satworks.cli", "scheduler"],
                env=settings_env(self.settings),
                cwd=ROOT,
                start_new_session=True,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        return self

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.signal(signal.SIGCONT)
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def metrics(self) -> dict[str, float] | None:
        """``{"name{label=value}": value}`` from the process's metrics port, or None if it does not answer."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as answer:
                text = answer.read().decode()
        except (urllib.error.URLError, OSError):
            return None
        samples = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
                samples[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
        return samples

    def leading(self) -> bool | None:
        """True/False from ``satworks_scheduler_is_leader``; None while the process does not answer."""
        samples = self.metrics()
        return None if samples is None else samples.get("satworks_scheduler_is_leader") == 1.0

    def logs(self, action: str | None = None) -> list[dict[str, Any]]:
        records = []
        for line in self.log_path.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if action is None or record.get("action") == action:
                records.append(record)
        return records

    def submitted_slots(self) -> list[datetime]:
        return [datetime.fromisoformat(r["fire_at"]) for r in self.logs("schedule_submitted")]


def runs(settings: Settings) -> list[dict[str, Any]]:
    """``schedule_runs`` joined with their jobs, oldest slot first."""
    with psycopg.connect(db_dsn(settings)) as conn:
        cur = conn.execute(
            "SELECT r.task, r.fire_at, r.job_id, r.submitted_at, r.status, j.idempotency_key, j.attempts"
            " FROM schedule_runs r LEFT JOIN jobs j ON j.id = r.job_id ORDER BY r.fire_at"
        )
        return [dict(zip([c.name for c in cur.description or ()], row, strict=True)) for row in cur]


def scheduled_job_count(settings: Settings) -> int:
    with psycopg.connect(db_dsn(settings)) as conn:
        row = conn.execute(
            "SELECT count(*) FROM jobs j JOIN apps a ON a.id = j.app_id WHERE a.name = 'satworks-scheduler'"
        ).fetchone()
        return int(row[0]) if row else 0
