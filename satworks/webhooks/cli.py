"""``satworks webhooks``: an app's endpoints for ops, through the same intake as ``/v1/webhook-endpoints``.

satworks webhooks list --app shop
satworks webhooks add --app shop --url https://shop.example/hooks --events 'payment.*,job.dead'
satworks webhooks rotate --app shop ENDPOINT_ID        # prints the new secret once
satworks webhooks remove --app shop ENDPOINT_ID
satworks webhooks new-key                              # a value for SATWORKS_WEBHOOK_SECRET_KEY
satworks webhooks rekey                                # re-encrypt every secret under the current key
"""

from __future__ import annotations

import argparse
import asyncio
import uuid

from satworks.errors import ValidationFailed
from satworks.settings import Settings

# The parser is built for every ``satworks`` command: what the verbs need is imported when they run.


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    hooks = sub.add_parser("webhooks", help="an app's webhook endpoints (for ops)")
    verbs = hooks.add_subparsers(dest="webhooks_command", required=True)
    listing = verbs.add_parser("list", help="the app's endpoints")
    listing.add_argument("--app", required=True)
    add = verbs.add_parser("add", help="register an endpoint and print its signing secret once")
    add.add_argument("--app", required=True)
    add.add_argument("--url", required=True)
    add.add_argument("--events", required=True, help="comma-separated: payment.settled,payment.*,job.dead,*")
    for verb, text in (("remove", "delete an endpoint (its open deliveries fail)"), ("rotate", "new signing secret")):
        command = verbs.add_parser(verb, help=text)
        command.add_argument("--app", required=True)
        command.add_argument("endpoint_id")
    verbs.add_parser("new-key", help="print a new Fernet key for SATWORKS_WEBHOOK_SECRET_KEY")
    verbs.add_parser("rekey", help="re-encrypt every stored secret under SATWORKS_WEBHOOK_SECRET_KEY")


def run(settings: Settings, args: argparse.Namespace) -> int:
    from satworks.webhooks.secrets import new_key

    if args.webhooks_command == "new-key":
        print(new_key())
        return 0
    if args.webhooks_command == "rekey":
        print(f"{asyncio.run(_rekey(settings))} endpoints re-encrypted")
        return 0
    for line in asyncio.run(_run(settings, args)):
        print(line)
    return 0


async def _run(settings: Settings, args: argparse.Namespace) -> list[str]:
    from satworks.db import apps as apps_db
    from satworks.db import webhook_endpoints as endpoints_db
    from satworks.intake.resources import open_intake

    async with open_intake(settings, pool_size=1, threads=1) as intake:
        app_id = await apps_db.active_id(intake.engine, args.app)
        command = args.webhooks_command
        if command == "list":
            found = await endpoints_db.listing(intake.engine, app_id)
            return [f"{e.id}\t{e.url}\t{','.join(e.events)}\t{e.created_at:%Y-%m-%d %H:%M}" for e in found]
        if command == "add":
            events = [e.strip() for e in args.events.split(",") if e.strip()]
            endpoint, secret = await intake.webhooks.register(app_id, args.url, events)
            return [f"endpoint {endpoint.id} added; its signing secret (shown once):", secret]
        endpoint_id = _uuid(args.endpoint_id)
        if command == "rotate":
            endpoint, secret = await intake.webhooks.rotate(app_id, endpoint_id)
            until = endpoint.previous_expires_at
            note = f"; the old one signs too until {until:%Y-%m-%d %H:%M:%S} UTC" if until else ""
            return [f"endpoint {endpoint.id}: new signing secret (shown once){note}:", secret]
        failed = await intake.webhooks.delete(app_id, endpoint_id)
        return [f"endpoint {endpoint_id} removed; {failed} open deliveries failed"]


async def _rekey(settings: Settings) -> int:
    from satworks.db import webhook_endpoints as endpoints_db
    from satworks.db.engine import async_engine
    from satworks.webhooks.secrets import SecretBox

    box = SecretBox.from_settings(settings)
    engine = async_engine(settings.database_url, pool_size=1)
    done = 0
    try:
        for endpoint_id, sealed, previous in await endpoints_db.all_sealed(engine):
            fresh = box.reseal(sealed)
            fresh_previous = box.reseal(previous) if previous is not None else None
            done += await endpoints_db.reseal(engine, endpoint_id, sealed, fresh, previous, fresh_previous)
    finally:
        await engine.dispose()
    return done


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ValidationFailed(f"not an endpoint id: {value!r}") from None
