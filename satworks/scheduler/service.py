"""``satworks scheduler``: APScheduler driven by the leader lock, with its state in Postgres.

A ``BackgroundScheduler`` (not the asyncio one): everything a run does is blocking I/O (psycopg,
Dramatiq's broker client), and the leader's checks need a thread of their own that no slow
submission can hold up, so threads are the natural unit and an event loop would add nothing.

Every instance starts paused. The one elected arms it: each enabled task gets an APScheduler job
whose first slot is the one after the task's last submitted slot (``schedules.last_run_at``).
APScheduler's in-memory store remembers nothing across restarts; Postgres does, so a slot that
already ran is not run again, and slots missed while no scheduler ran become one run now, for the
latest missed slot (``Schedule.first_slot``; within a term APScheduler coalesces the same way).
Losing the lock pauses the scheduler and drops its jobs.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from prometheus_client import CollectorRegistry, start_http_server
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url

from satworks import clock
from satworks.db import schedules as db
from satworks.db.engine import db_errors
from satworks.errors import SatworksError
from satworks.jobs.status import JobStatus
from satworks.metrics.scheduler import SchedulerMetrics
from satworks.scheduler import specs
from satworks.scheduler.executor import SlotExecutor
from satworks.scheduler.leader import Elector, LeaderLock, LeaseTimings
from satworks.scheduler.submit import Submit
from satworks.scheduler.tasks import TASKS, schedules
from satworks.settings import Settings

log = logging.getLogger(__name__)


class SchedulerService:
    def __init__(
        self, settings: Settings, *, submit: Submit, engine: Engine, metrics: SchedulerMetrics, instance: str
    ) -> None:
        self._submit = submit
        self._engine = engine
        self._metrics = metrics
        self._schedules = schedules(settings)
        self.timings = LeaseTimings(
            check_s=settings.scheduler_check_s,
            retry_s=settings.scheduler_retry_s,
            idle_timeout_s=settings.scheduler_idle_timeout_s,
            lease_s=settings.scheduler_lease_s,
        )
        self._scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": SlotExecutor()},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        dsn = make_url(settings.database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        lock = LeaderLock(dsn, application_name=f"satworks-scheduler:{instance}"[:63], timings=self.timings)
        self.elector = Elector(lock, self.timings, on_elected=self._arm, on_deposed=self._disarm)

    def start(self) -> None:
        self._scheduler.start(paused=True)
        self.elector.start()

    def stop(self) -> None:
        """Stop scheduling and let runs in flight finish, then give up the lock."""
        self._scheduler.shutdown(wait=True)
        self.elector.stop()

    # -- leadership -------------------------------------------------------------------------------
    def _arm(self) -> None:
        if not self._scheduler.running:  # shutting down
            return
        now = clock.utcnow()
        enabled = {name: s for name, s in self._schedules.items() if s.enabled}
        firsts = {}
        with db_errors(), self._engine.begin() as conn:
            db.sync(conn, {name: (s.text, s.enabled) for name, s in self._schedules.items()})
            last = db.last_runs(conn)
            for name, schedule in enabled.items():
                firsts[name] = schedule.first_slot(last.get(name), now)
                db.set_next_run(conn, name, firsts[name])
        self._scheduler.remove_all_jobs()
        for name, schedule in enabled.items():
            self._scheduler.add_job(
                self._fire, schedule.trigger(), args=[name], id=name, name=name, next_run_time=firsts[name]
            )
        self._scheduler.resume()
        self._metrics.is_leader.set(1)
        log.info(
            "scheduling",
            extra={"action": "scheduler_armed", "first_slots": {n: f.isoformat() for n, f in firsts.items() if f}},
        )

    def _disarm(self, reason: str) -> None:
        self._metrics.is_leader.set(0)
        if self._scheduler.running:
            self._scheduler.pause()
            self._scheduler.remove_all_jobs()

    # -- one slot -----------------------------------------------------------------------------------
    def _fire(self, name: str, fire_at: datetime | None = None) -> None:
        """One slot of ``name``; ``SlotExecutor`` passes the slot as ``fire_at``."""
        if fire_at is None:
            raise ValueError("a slot needs its fire time (run through SlotExecutor)")
        slot = specs.slot(fire_at)
        extra: dict[str, Any] = {"task": name, "fire_at": slot.isoformat()}
        if not self.elector.confirm():  # the lease ran out or the lock was lost since APScheduler woke up
            log.warning("slot not submitted: not leader", extra={"action": "schedule_not_leader", **extra})
            return
        task = TASKS[name]
        next_run = self._schedules[name].next_after(slot)
        try:
            submitted = self._submit.submit(
                name, slot, job_type=task.job_type, payload=task.payload, priority=task.priority
            )
            with db_errors(), self._engine.begin() as conn:
                db.record_run(conn, name, slot, submitted.job_id, submitted_at=clock.utcnow(), next_run_at=next_run)
        except SatworksError as exc:
            self._metrics.submit_failures.labels(name).inc()
            log.warning("slot not submitted: %s", exc.message, extra={"action": "schedule_submit_failed", **extra})
            return
        self._metrics.last_run.labels(name).set(slot.timestamp())
        if next_run is not None:
            self._metrics.next_run.labels(name).set(next_run.timestamp())
        log.info(
            "scheduled run submitted",
            extra={
                "action": "schedule_submitted",
                "job_id": str(submitted.job_id),
                "new_job": submitted.created,
                **extra,
            },
        )

    # -- outcomes and gauges ------------------------------------------------------------------------
    def refresh(self) -> None:
        """Leader: copy finished jobs' outcomes onto their runs. Everyone: gauges from Postgres."""
        leading = self.elector.is_leader()
        try:
            with db_errors(), self._engine.begin() as conn:
                outcomes = db.collect_outcomes(conn) if leading else []
                rows = db.snapshot(conn)
        except SatworksError as exc:
            log.warning("scheduler state not read: %s", exc.message, extra={"action": "schedule_refresh_failed"})
            return
        for outcome in outcomes:
            task = TASKS.get(outcome.task)
            if task is not None and task.observe_latency and outcome.status == JobStatus.SUCCEEDED:
                self._metrics.canary_latency.observe((outcome.finished_at - outcome.created_at).total_seconds())
        for row in rows:
            for gauge, at in (
                (self._metrics.last_run, row["last_run_at"]),
                (self._metrics.last_success, row["last_success_at"]),
                (self._metrics.next_run, row["next_run_at"] if row["enabled"] else None),
            ):
                if at is not None:
                    gauge.labels(row["task"]).set(at.timestamp())
                else:
                    with suppress(KeyError):  # never set
                        gauge.remove(row["task"])
        self._metrics.is_leader.set(1 if self.elector.is_leader() else 0)  # now, not before the queries


def scheduler_engine(settings: Settings, instance: str) -> Engine:
    """The scheduler's own small pool for its state and submissions, with deadlines on every call."""
    return create_engine(
        settings.database_url,
        pool_size=2,
        max_overflow=4,
        pool_pre_ping=True,
        connect_args={
            "connect_timeout": 5,
            "application_name": f"satworks-scheduler-work:{instance}"[:63],
            "options": "-c statement_timeout=10000",
        },
    )


def run(settings: Settings) -> int:
    """The ``satworks scheduler`` process: until SIGTERM or SIGINT."""
    from satworks.scheduler.intake_adapter import submitter

    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    instance = settings.scheduler_instance or f"{socket.gethostname()}:{os.getpid()}"
    registry = CollectorRegistry()
    metrics = SchedulerMetrics.create(registry)
    metrics.is_leader.set(0)
    for task in TASKS:  # exported at 0 from the start, so rate() sees the first failure
        metrics.submit_failures.labels(task)
    start_http_server(settings.scheduler_metrics_port, settings.scheduler_metrics_host, registry)
    engine = scheduler_engine(settings, instance)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        with submitter(settings, engine) as submit:
            service = SchedulerService(settings, submit=submit, engine=engine, metrics=metrics, instance=instance)
            service.start()
            log.info(
                "scheduler started",
                extra={
                    "action": "scheduler_started",
                    "instance": instance,
                    "tasks": {n: s.text for n, s in schedules(settings).items()},
                },
            )
            try:
                while not stop.is_set():
                    if not service.elector.is_alive():
                        log.error("leader election stopped; exiting", extra={"action": "scheduler_elector_died"})
                        return 1
                    service.refresh()
                    stop.wait(settings.scheduler_check_s)
            finally:
                service.stop()
    finally:
        engine.dispose()
        log.info("scheduler stopped", extra={"action": "scheduler_stopped", "instance": instance})
    return 0
