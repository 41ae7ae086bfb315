"""Platform jobs: the work satworks does for itself, as tracked jobs run by the workers.

One mechanism for every piece of recurring or requested internal work (the reconciler, retention,
payment sweeps and checks, reports; Lightning and draws add theirs the same way):

1. a ``JobType`` with ``internal=True`` (the intake accepts it only from satworks itself: the
   scheduler's ``IntakeSubmit``, the report route; an app's ``POST /v1/jobs`` is told the type does
   not exist), listed in ``PLATFORM_JOB_TYPES`` below;
2. its function takes the worker's resources from ``ctx.worker()`` (``jobs/resources.py``: the
   database pool, the broker, the payment resources, the platform metrics), so it runs with what
   the worker already holds instead of opening its own;
3. for recurring work, a ``ScheduledTask`` in ``scheduler/tasks.py`` naming the job type, and a
   ``schedule_<task>`` setting.

Like any job it has a row (the scheduler keys it by task and slot, ``GET /v1/schedules`` shows its
last outcome), retries with backoff, a time limit and an age limit, and its result is the job's
``result``. Internal actors without a row (``payments.check`` …) stay as they are: a platform job
may enqueue them (``payments.sweep`` is scheduled through ``platform.payments_sweep``).
"""

from __future__ import annotations

from satworks.jobs.base import JobType
from satworks.jobs.maintenance import RECONCILE, RETENTION
from satworks.jobs.payment_upkeep import PAYMENT_CHECKS, PAYMENTS_SWEEP
from satworks.jobs.reports import DAILY_REPORTS, REPORT

PLATFORM_JOB_TYPES: tuple[JobType, ...] = (RECONCILE, RETENTION, PAYMENTS_SWEEP, PAYMENT_CHECKS, REPORT, DAILY_REPORTS)
