"""Schedule specs as operators write them (``interval:60``, ``cron:0 3 * * *``, ``off``) and their triggers.

Every slot is a whole second in UTC and is computed the same way on every host: intervals are
anchored at the Unix epoch (``interval:60`` fires on every whole minute), cron expressions are read
in UTC with crontab's weekday numbers (0 or 7 is Sunday). A slot's time is part of its run's
idempotency key, so two schedulers that compute it must agree to the second.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_INTERVAL = re.compile(r"^(\d+)([smhd]?)$")
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_NUMERIC_DOW = re.compile(r"^[\d*,/-]+$")
FORMS = "'off', 'interval:<n>[s|m|h|d]' (e.g. interval:60, interval:5m) or 'cron:<min> <hour> <dom> <month> <dow>'"


@dataclass(frozen=True)
class Schedule:
    """A parsed spec; ``trigger()`` gives a fresh APScheduler trigger (``None`` when off)."""

    kind: Literal["off", "interval", "cron"]
    text: str
    interval_s: int = 0
    cron: str = ""

    @property
    def enabled(self) -> bool:
        return self.kind != "off"

    def trigger(self) -> Any:
        if self.kind == "interval":
            return IntervalTrigger(seconds=self.interval_s, start_date=EPOCH, timezone=UTC)
        if self.kind == "cron":
            return _cron_trigger(self.cron)
        return None

    def next_after(self, moment: datetime) -> datetime | None:
        """The first slot strictly after ``moment`` (whole seconds, UTC)."""
        trigger = self.trigger()
        if trigger is None:
            return None
        after = moment.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
        fire: datetime | None = trigger.get_next_fire_time(None, after)
        return slot(fire) if fire is not None else None

    def first_slot(self, last_run: datetime | None, now: datetime) -> datetime | None:
        """The slot a newly elected leader starts with.

        The slot after ``last_run`` (after ``now`` for a task that never ran); if that one has
        passed, slots were missed while no scheduler ran and they coalesce into one run now: the
        latest slot at or before ``now``.
        """
        first = self.next_after(last_run or now)
        if first is None or first > now:
            return first
        if self.kind == "interval":  # arithmetic: an interval of seconds may have missed millions of slots
            return EPOCH + timedelta(seconds=int((now - EPOCH).total_seconds()) // self.interval_s * self.interval_s)
        while (following := self.next_after(first)) is not None and following <= now:
            first = following  # cron: at most one slot a minute
        return first


def parse(text: str) -> Schedule:
    """Raises ``ValueError`` saying which forms are accepted."""
    spec = text.strip()
    kind, _, rest = spec.partition(":")
    kind, rest = kind.strip().lower(), rest.strip()
    if kind == "off" and not rest:
        return Schedule("off", "off")
    if kind == "interval":
        match = _INTERVAL.match(rest.lower())
        if match is None:
            raise ValueError(f"bad interval {rest!r}: a whole number of seconds, or with a unit s, m, h or d")
        seconds = int(match.group(1)) * UNITS_S[match.group(2) or "s"]
        if seconds < 1:
            raise ValueError("the interval must be at least 1 second")
        return Schedule("interval", f"interval:{seconds}", interval_s=seconds)
    if kind == "cron":
        try:
            _cron_trigger(rest)
        except ValueError as exc:
            raise ValueError(f"bad cron expression {rest!r}: {exc}") from exc
        return Schedule("cron", f"cron:{' '.join(rest.split())}", cron=" ".join(rest.split()))
    raise ValueError(f"unknown schedule {text!r}; use {FORMS}")


def slot(moment: datetime) -> datetime:
    """A fire time as the whole UTC second it stands for (triggers compute in floats)."""
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=0) + (timedelta(seconds=1) if moment.microsecond >= 500_000 else timedelta())


def _cron_trigger(expr: str) -> Any:
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"{len(fields)} fields; a crontab line has 5: minute hour day-of-month month day-of-week")
    minute, hour, day, month, dow = fields
    return CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=_crontab_weekdays(dow), timezone=UTC)


def _crontab_weekdays(field: str) -> str:
    """Crontab's weekday numbers (0 or 7 = Sunday) as names: APScheduler 3 counts 0 as Monday."""
    if field == "*" or not _NUMERIC_DOW.match(field):
        return field  # "*" or names (mon-fri), which mean the same to both
    days: set[int] = set()
    for item in field.split(","):
        span, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if span == "*":
            first, last = 0, 6
        elif "-" in span:
            low, _, high = span.partition("-")
            first, last = int(low), int(high)
        else:
            first = last = int(span)
            if step_text:
                last = 7
        if not (0 <= first <= 7 and 0 <= last <= 7 and first <= last and step >= 1):
            raise ValueError(f"bad day-of-week {item!r}: numbers 0-7 (0 and 7 are Sunday)")
        days.update(d % 7 for d in range(first, last + 1, step))
    return ",".join(_WEEKDAYS[d] for d in sorted(days))
