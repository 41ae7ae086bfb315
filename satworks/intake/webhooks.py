"""Webhook endpoints as apps and ops manage them (HTTP and CLI alike), and manual redelivery.

Registration checks the URL with the SSRF guard, resolving its host the way the sender will (an
address literal, or every address the name resolves to), and refuses what delivery would refuse;
delivery checks again, since DNS answers change. The signing secret is made here, returned once and
stored only encrypted (``webhooks/secrets.py``).
"""

from __future__ import annotations

import asyncio
import socket
import uuid

from aiohttp.abc import AbstractResolver
from sqlalchemy.ext.asyncio import AsyncEngine

from satworks.broker.client import BrokerClient
from satworks.db import webhook_deliveries as deliveries_db
from satworks.db import webhook_endpoints as endpoints_db
from satworks.db.webhook_deliveries import DeliveryRecord
from satworks.db.webhook_endpoints import EndpointRecord, NewEndpoint
from satworks.errors import InvalidPayload, UnsafeWebhookUrl, ValidationFailed
from satworks.integrations.webhooks.guard import AddressPolicy, check_url
from satworks.integrations.webhooks.resolver import GuardedResolver
from satworks.jobs.webhooks import deliver_message
from satworks.settings import Settings
from satworks.webhooks.events import check_patterns
from satworks.webhooks.secrets import SecretBox, new_secret

MAX_URL_LENGTH = 2048


class WebhookIntake:
    def __init__(
        self,
        engine: AsyncEngine,
        client: BrokerClient,
        settings: Settings,
        *,
        resolver: AbstractResolver | None = None,
    ) -> None:
        """``resolver``: the DNS under the guard (default: the system's)."""
        self._engine = engine
        self._client = client
        self._settings = settings
        self._policy = AddressPolicy.of(settings.webhook_allowed_networks, settings.webhook_allowed_hosts)
        self._resolver = resolver
        self._box = SecretBox.from_settings(settings)

    async def register(self, app_id: uuid.UUID, url: str, events: list[str]) -> tuple[EndpointRecord, str]:
        """Register an endpoint; returns it and its signing secret (shown once).

        Raises ``ValidationFailed`` (a URL the guard refuses, unknown event types), ``Conflict`` (too many
        endpoints) or ``DependencyUnavailable`` (no secret key configured, the database)."""
        patterns = _patterns(events)
        await self.check_url(url)
        secret = new_secret()
        new = NewEndpoint(uuid.uuid4(), app_id, url, patterns, self._box.seal(secret))
        endpoint = await endpoints_db.create(self._engine, new, max_per_app=self._settings.webhook_max_endpoints)
        return endpoint, secret

    async def rotate(self, app_id: uuid.UUID, endpoint_id: uuid.UUID) -> tuple[EndpointRecord, str]:
        """A new signing secret (shown once); the current one keeps signing for ``webhook_secret_overlap_s``."""
        secret = new_secret()
        overlap_s = self._settings.webhook_secret_overlap_s
        endpoint = await endpoints_db.rotate(
            self._engine, app_id, endpoint_id, self._box.seal(secret), overlap_s=overlap_s
        )
        return endpoint, secret

    async def delete(self, app_id: uuid.UUID, endpoint_id: uuid.UUID) -> int:
        """Delete an endpoint; its open deliveries fail. Returns how many did."""
        return await endpoints_db.delete(self._engine, app_id, endpoint_id)

    async def redeliver(self, app_id: uuid.UUID, delivery_id: uuid.UUID) -> DeliveryRecord:
        """Attempt a delivery again now, with a fresh retry window. Raises ``NotFound``, ``Conflict``."""
        delivery = await deliveries_db.redeliver(self._engine, app_id, delivery_id)
        await self._client.enqueue([(deliver_message(delivery.id, self._settings.queue_prefix), None)])
        return delivery

    async def check_url(self, url: str) -> None:
        """Raise ``ValidationFailed`` unless the guard would let a delivery to ``url`` connect."""
        if len(url) > MAX_URL_LENGTH:
            raise ValidationFailed(f"the URL is longer than {MAX_URL_LENGTH} characters", details=[{"loc": ["url"]}])
        try:
            parsed = check_url(url, self._policy)
            host = parsed.raw_host or ""
            if _is_literal(host):
                return
            resolver = GuardedResolver(self._policy, self._resolver)
            try:
                timeout_s = self._settings.webhook_connect_timeout_s
                await asyncio.wait_for(resolver.resolve(host, parsed.port or 0, socket.AF_UNSPEC), timeout_s)
            finally:
                if self._resolver is None:
                    await resolver.close()
        except UnsafeWebhookUrl as exc:
            raise ValidationFailed(f"webhook URL refused: {exc.message}", details=[{"loc": ["url"]}]) from exc
        except (OSError, TimeoutError) as exc:
            raise ValidationFailed(
                "webhook URL refused: its host cannot be resolved", details=[{"loc": ["url"]}]
            ) from exc


def _patterns(events: list[str]) -> list[str]:
    try:
        return check_patterns(events)
    except InvalidPayload as exc:
        raise ValidationFailed(exc.message, details=[{"loc": ["events"], **exc.details}]) from exc


def _is_literal(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host.strip("[]").partition("%")[0])
    except ValueError:
        return False
    return True
