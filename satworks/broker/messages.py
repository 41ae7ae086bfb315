"""The messages satworks sends. They carry ids only: the database holds the work and its state."""

from __future__ import annotations

import uuid
from typing import Any

import dramatiq

from satworks import ids

Delayed = tuple[dramatiq.Message[Any], int | None]
"""A message and its delay in milliseconds (``None``: due now), as ``Broker.enqueue`` takes them."""

ACK_AFTER = "satworks_ack_after"
"""The attribute of a message proxy that defers its ack: a function a middleware sets, which takes the
message's ack (or nack) and runs it once what must come first is done (the job's outcome committed).
Set only on a broker with ``defers_acks``; elsewhere the middleware waits before the ack itself."""

GENERATION = "satworks_generation"
"""The message option naming the job generation a message may claim (absent: 0, the intake's)."""


def job_message(
    job_id: uuid.UUID,
    job_type: str,
    queue: str,
    max_retries: int,
    *,
    delay_ms: int | None = None,
    max_age_ms: int,
    generation: int = 0,
) -> dramatiq.Message[Any]:
    """An app job's message: the worker reads the payload when it claims the job.

    Dramatiq's age limit counts from the message's creation, so a delayed job's limit is extended by
    its delay: the age that matters is the time since the job became due. ``generation`` > 0: a
    message the reconciler sent in place of a lost one (it alone may claim the job).
    """
    options: dict[str, Any] = {"max_retries": max_retries, "max_age": max_age_ms + (delay_ms or 0)}
    if generation:
        options[GENERATION] = generation
    return dramatiq.Message(
        queue_name=queue,
        actor_name=job_type,
        args=(str(job_id),),
        kwargs={},
        options=options,
        message_id=ids.uuid4_str(),  # as Dramatiq's own default, without a system call per message
    )


def message_generation(message: dramatiq.Message[Any]) -> int:
    return int(message.options.get(GENERATION, 0))


def payment_message(actor: str, args: tuple[Any, ...], prefix: str) -> dramatiq.Message[Any]:
    """A message for a platform actor (payments), always on the ``critical`` queue."""
    return dramatiq.Message(queue_name=prefix + "critical", actor_name=actor, args=args, kwargs={}, options={})


def internal_message(actor: str, args: tuple[Any, ...], prefix: str, queue: str) -> dramatiq.Message[Any]:
    """A message for a platform actor without a job row (notifications) on ``queue`` (``default``, ``bulk``)."""
    return dramatiq.Message(queue_name=prefix + queue, actor_name=actor, args=args, kwargs={}, options={})
