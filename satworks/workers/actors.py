"""One Dramatiq actor per job type, carrying the type's retry, time and age policy."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import dramatiq
from pydantic import ValidationError

from satworks.errors import DependencyUnavailable, InvalidPayload, PermanentError
from satworks.jobs.base import JobContext, JobType
from satworks.jobs.payments import PAYMENT_ACTORS, InternalActor
from satworks.jobs.resources import WorkerResources
from satworks.settings import Settings
from satworks.workers.middleware.tracking import JobTracking
from satworks.workers.status import Claim


def declare_actors(
    broker: dramatiq.Broker,
    job_types: dict[str, JobType],
    tracking: JobTracking,
    settings: Settings,
    resources: WorkerResources | None = None,
) -> None:
    """One actor per job type; ``resources`` go to every job (platform jobs use them)."""
    for job in job_types.values():
        dramatiq.actor(  # type: ignore[call-overload]
            _runner(job, tracking, settings, resources),
            actor_name=job.name,
            queue_name=settings.queue_prefix + "default",
            broker=broker,
            max_retries=job.max_retries,
            min_backoff=job.min_backoff_ms,
            max_backoff=job.max_backoff_ms,
            time_limit=job.time_limit_ms or settings.default_time_limit_ms,
            max_age=job.max_age_ms or settings.default_max_age_ms,
            throws=(PermanentError,),
        )


def _runner(
    job: JobType, tracking: JobTracking, settings: Settings, resources: WorkerResources | None
) -> Callable[[str], None]:
    def run(job_id: str) -> None:
        # Dramatiq logs and ignores errors in middleware "before" hooks, so a claim that could not be
        # written still reaches the actor: refuse to run unclaimed work and let Retries try later.
        claim: Claim | None = tracking.current()
        if claim is None or str(claim.job_id) != job_id:
            raise DependencyUnavailable("the job could not be claimed (database unavailable?)")
        try:
            payload = job.payload.model_validate(claim.payload)
        except ValidationError as exc:
            raise InvalidPayload(f"stored payload no longer valid for {job.name}: {exc}") from exc
        tracking.set_result(job.run(JobContext(claim.job_id, claim.attempts, settings, resources), payload))

    run.__name__ = job.name
    return run


def declare_internal_actors(
    broker: dramatiq.Broker, resources: Any, actors: Sequence[InternalActor] = PAYMENT_ACTORS
) -> None:
    """Platform actors (payments, draws) run on the ``critical`` queue with retries for a node that cannot
    be asked; ``resources`` (``PaymentResources``, ``DrawResources``) is passed to each run."""
    for internal in actors:
        dramatiq.actor(  # type: ignore[call-overload]
            _discarding(internal.run, resources, internal.name),
            actor_name=internal.name,
            queue_name=resources.settings.queue_prefix + "critical",
            broker=broker,
            max_retries=internal.max_retries,
            min_backoff=internal.min_backoff_ms,
            max_backoff=internal.max_backoff_ms,
            time_limit=internal.time_limit_ms,
            throws=(PermanentError,),
        )


def _discarding(run: Callable[..., Any], resources: Any, name: str) -> Callable[..., None]:
    """The actor body: results (e.g. a sweep's counts) are for callers in-process, not for the broker."""

    def actor(*args: Any) -> None:
        run(resources, *args)

    actor.__name__ = name.replace(".", "_")
    return actor
