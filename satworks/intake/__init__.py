"""Submitting work, the one way: used by the HTTP routes, the CLI and (later) the scheduler.

- ``jobs.JobIntake.submit(app_id, JobIn, idempotency_key) -> (JobRecord, replayed)``: validate against
  the job type, record and enqueue one job (group-committed by ``batcher.IntakeBatcher``).
- ``payments.PaymentIntake.create(app_id, PaymentIn, idempotency_key) -> (PaymentRecord, replayed)``,
  and the wake-ups nodes and watchers send (``recheck_tx``, ``sweep``, ``watcher_event``).
- ``emails.EmailIntake.submit(app_id, EmailIn, idempotency_key) -> (EmailRecord, replayed)``: render,
  record and enqueue one outbox email.
- ``webhooks.WebhookIntake``: register, rotate and delete webhook endpoints; redeliver a delivery.
- ``idempotency``: the ``Idempotency-Key`` rule, the same for every endpoint.
- ``requeue.DeadLetterRequeue``: a dead or failed job gets a new run (same id, attempts kept, audited).
- ``recovery``: committed work whose first message never reached the broker is sent again.
- ``resources.open_intake(settings)``: all of it, opened from settings and closed again.

Nothing here knows HTTP; errors are the project's own (``ValidationFailed``, ``Conflict``,
``DependencyUnavailable``).
"""
