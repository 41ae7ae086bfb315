"""The broker layer: building Dramatiq's broker, messages, enqueueing from asyncio, queue depths.

Used by the intake (``satworks.intake``), the web process's stats and the workers; it knows nothing
of HTTP or of how jobs run. Broker errors are converted here (``errors.broker_errors``) into
``BrokerUnavailable``.
"""
