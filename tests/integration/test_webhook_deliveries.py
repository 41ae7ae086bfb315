"""Webhooks end to end: endpoints registered over HTTP, app events delivered by a real worker process
to a real HTTP receiver, signed, retried, recorded, redelivered, and surviving a worker restart."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import uuid
from typing import Any

import psycopg
from pydantic import SecretStr

from satworks.signatures import HEADER
from satworks.webhooks.secrets import SecretBox, new_key
from tests.integration.jobs_helpers import wait_for_status
from tests.integration.notify_stack import NotifyEnv, NotifyStack, make_key_for
from tests.integration.test_cli import satworks
from tests.platform_support import submit_as_scheduler
from tests.support import db_dsn, documented_verify, eventually, scalar


async def test_a_job_event_reaches_only_subscribed_endpoints_signed_as_the_docs_verify(notify: NotifyStack) -> None:
    jobs_hook = await notify.register("/jobs", ["job.*"])
    await notify.register("/payments", ["payment.*"])
    job_id = await notify.job(note="hello")

    [hit] = await notify.hits("/jobs", 1)
    event = json.loads(hit.body)
    assert event["type"] == "job.succeeded" and event["data"]["job_id"] == job_id
    assert event["data"]["status"] == "succeeded" and event["data"]["result"]["attempt"] == 1
    assert re.fullmatch(r"evt_\d+", event["id"]) and hit.headers["X-Satworks-Event-Id"] == event["id"]
    verify = documented_verify()
    assert verify(hit.headers[HEADER], hit.body, jobs_hook["secret"])
    assert not verify(hit.headers[HEADER], hit.body, "whsec_not_the_secret")

    delivery = await notify.delivery_when(lambda d: d["status"] == "delivered", what="the delivery recorded")
    assert delivery["endpoint_id"] == jobs_hook["id"]
    assert delivery["event"] == {"id": event["id"], "type": "job.succeeded"}
    assert delivery["attempts"] == 1 and delivery["last_status_code"] == 200
    assert notify.receiver.at("/payments") == []
    assert len(await notify.deliveries()) == 1


async def test_the_secret_is_shown_once_and_stored_only_encrypted(notify: NotifyStack) -> None:
    created = await notify.register("/once", ["job.dead"])
    assert created["secret"].startswith("whsec_")
    listed = await notify.get("/v1/webhook-endpoints")
    read = await notify.get(f"/v1/webhook-endpoints/{created['id']}")
    assert [e["id"] for e in listed["items"]] == [created["id"]]
    assert "secret" not in listed["items"][0] and "secret" not in read
    stored = scalar(notify.settings, "SELECT secret_enc FROM webhook_endpoints WHERE id = %s", created["id"])
    assert created["secret"] not in stored


async def test_failed_attempts_are_retried_with_growing_gaps_until_the_receiver_answers(notify: NotifyStack) -> None:
    await notify.register("/flaky", ["job.succeeded"])
    notify.receiver.answer("/flaky", 500, 500, (429, {"Retry-After": "2"}))
    await notify.job()

    hits = await notify.hits("/flaky", 4)
    assert len({json.loads(h.body)["id"] for h in hits}) == 1, "every attempt carries the same event"
    gaps = [b.at - a.at for a, b in itertools.pairwise(hits)]
    min_s = notify.settings.webhook_retry_min_ms / 1000
    assert all(gap >= min_s * 0.9 for gap in gaps), gaps
    # The schedule's ceilings grow (0.6 s, 1.2 s, ...: tests/unit/test_webhook_schedule.py); after the
    # 429 the wait is at least the receiver's Retry-After, longer than any first retry may wait.
    assert gaps[2] >= 2.0 > 2 * min_s, gaps

    delivery = await notify.delivery_when(lambda d: d["status"] == "delivered")
    assert delivery["attempts"] == 4
    detail = await notify.get(f"/v1/webhook-deliveries/{delivery['id']}")
    history = list(reversed(detail["history"]))
    assert [a["status_code"] for a in history] == [500, 500, 429, 200]
    assert [a["outcome"] for a in history] == ["retry", "retry", "retry", "delivered"]
    assert history[0]["response_head"] == "answer 500" and all(a["latency_ms"] >= 0 for a in history)


async def test_a_receiver_that_times_out_is_tried_again(notify: NotifyStack) -> None:
    await notify.register("/slow", ["job.succeeded"])
    notify.receiver.answer("/slow", ("hang", notify.settings.webhook_timeout_s + 1))
    await notify.job()

    delivery = await notify.delivery_when(lambda d: d["status"] == "delivered")
    detail = await notify.get(f"/v1/webhook-deliveries/{delivery['id']}")
    first, second = reversed(detail["history"])
    assert first["outcome"] == "retry" and first["status_code"] is None and "timed out" in first["error"]
    assert second["outcome"] == "delivered"


async def test_a_client_error_fails_at_once_and_a_redirect_to_loopback_is_not_followed(notify: NotifyStack) -> None:
    await notify.register("/gone", ["job.succeeded"])
    await notify.register("/moved", ["job.succeeded"])
    notify.receiver.answer("/gone", 410)
    notify.receiver.answer("/moved", (302, {"Location": notify.receiver.url("/target")}))
    await notify.job()

    async def both_failed() -> list[dict[str, Any]] | None:
        found = await notify.deliveries(status="failed")
        return found if len(found) == 2 else None

    failed = await eventually(both_failed, what="two failed deliveries")
    assert sorted(d["last_status_code"] for d in failed) == [302, 410]
    assert all(d["attempts"] == 1 for d in failed)
    assert notify.receiver.at("/target") == []


async def test_a_worker_killed_mid_retry_loses_no_delivery(notify: NotifyStack) -> None:
    await notify.register("/restart", ["job.succeeded"])
    notify.receiver.answer("/restart", 503, 503)
    await notify.job()

    await notify.hits("/restart", 1)
    await notify.delivery_when(lambda d: d["status"] == "retrying", what="a retrying delivery")
    notify.env.restart_worker()  # SIGKILL, then a fresh process

    delivered = await notify.delivery_when(lambda d: d["status"] == "delivered", timeout_s=60)
    assert delivered["attempts"] == 3 and len(notify.receiver.at("/restart")) == 3


async def test_redelivery_sends_the_same_event_again_and_is_recorded(notify: NotifyStack) -> None:
    await notify.register("/again", ["job.succeeded"])
    await notify.job()
    [first] = await notify.hits("/again", 1)
    delivery = await notify.delivery_when(lambda d: d["status"] == "delivered")

    response = await notify.client.post(f"/v1/webhook-deliveries/{delivery['id']}/redeliver", headers=notify.auth)
    assert response.status == 202, await response.text()
    _, second = await notify.hits("/again", 2)
    assert json.loads(second.body)["id"] == json.loads(first.body)["id"]
    again = await notify.delivery_when(lambda d: d["attempts"] == 2 and d["status"] == "delivered")
    assert again["id"] == delivery["id"]

    other = await notify.client.post(
        f"/v1/webhook-deliveries/{delivery['id']}/redeliver", headers={**notify.auth, "Authorization": "Bearer x"}
    )
    assert other.status == 401


async def test_rotation_signs_with_both_secrets_during_the_overlap(notify: NotifyStack) -> None:
    created = await notify.register("/rotated", ["job.succeeded"])
    response = await notify.client.post(f"/v1/webhook-endpoints/{created['id']}/rotate-secret", headers=notify.auth)
    assert response.status == 200, await response.text()
    rotated = await response.json()
    assert rotated["secret"] != created["secret"] and rotated["previous_secret_expires_at"] is not None
    await notify.job()

    [hit] = await notify.hits("/rotated", 1)
    verify = documented_verify()
    assert verify(hit.headers[HEADER], hit.body, rotated["secret"])
    assert verify(hit.headers[HEADER], hit.body, created["secret"])
    assert hit.headers[HEADER].count("v1=") == 2


async def test_deliveries_are_listed_newest_first_by_status_with_a_cursor(notify: NotifyStack) -> None:
    await notify.register("/listed", ["job.succeeded"])
    for _ in range(3):
        await notify.job()
    hits = await notify.hits("/listed", 3)
    arrived = [int(json.loads(h.body)["id"].removeprefix("evt_")) for h in hits]
    assert arrived == sorted(arrived), "one endpoint receives events in creation order"
    await eventually(lambda: _count(notify, "delivered", 3), what="three delivered")

    first = await notify.get("/v1/webhook-deliveries", status="delivered", limit=2)
    second = await notify.get("/v1/webhook-deliveries", status="delivered", limit=2, cursor=first["next_cursor"])
    ids = [d["id"] for d in first["items"] + second["items"]]
    assert len(ids) == len(set(ids)) == 3 and second["next_cursor"] is None
    events = [int(d["event"]["id"].removeprefix("evt_")) for d in first["items"] + second["items"]]
    assert events == sorted(events, reverse=True)
    assert (await notify.get("/v1/webhook-deliveries", status="dead"))["items"] == []
    bad = await notify.client.get("/v1/webhook-deliveries", params={"status": "lost"}, headers=notify.auth)
    assert bad.status == 422 and (await bad.json())["error"]["code"]


async def _count(notify: NotifyStack, status: str, n: int) -> bool:
    return len(await notify.deliveries(status=status)) >= n


async def test_a_deleted_endpoint_is_gone_and_gets_no_more_events(notify: NotifyStack) -> None:
    created = await notify.register("/deleted", ["job.succeeded"])
    response = await notify.client.delete(f"/v1/webhook-endpoints/{created['id']}", headers=notify.auth)
    assert response.status == 200 and (await response.json())["deleted"] is True
    missing = await notify.client.get(f"/v1/webhook-endpoints/{created['id']}", headers=notify.auth)
    assert missing.status == 404
    again = await notify.client.delete(f"/v1/webhook-endpoints/{created['id']}", headers=notify.auth)
    assert again.status == 404

    await notify.register("/alive", ["job.succeeded"])
    await notify.job()
    await notify.hits("/alive", 1)
    assert notify.receiver.at("/deleted") == []


async def test_unsafe_or_malformed_endpoints_are_refused_and_nothing_is_stored(notify: NotifyStack) -> None:
    client, auth = notify.client, notify.auth
    # The stack allows loopback (like the quick start); these stay refused.
    for url in (
        "http://169.254.169.254/latest/meta-data",
        "http://10.1.2.3/hook",
        "http://192.168.1.1/hook",
        "http://[::1]:8080/hook",
        "ftp://example.com/hook",
        "http://224.0.0.1/hook",
        "not a url",
    ):
        response = await client.post("/v1/webhook-endpoints", json={"url": url, "events": ["*"]}, headers=auth)
        assert response.status == 422, (url, await response.text())
        assert (await response.json())["error"]["code"] == "validation_failed"
    unknown = await client.post(
        "/v1/webhook-endpoints", json={"url": notify.receiver.url("/x"), "events": ["payment.nope"]}, headers=auth
    )
    assert unknown.status == 422 and "payment.nope" in await unknown.text()
    assert (await notify.get("/v1/webhook-endpoints"))["items"] == []


async def test_without_an_allowance_loopback_and_names_resolving_to_it_are_refused(client: Any, auth: Any) -> None:
    # The default settings allow no private network: loopback literals and names are refused too.
    for url in ("http://127.0.0.1:9/hook", "http://localhost:9/hook", "http://[::ffff:127.0.0.1]/hook"):
        response = await client.post("/v1/webhook-endpoints", json={"url": url, "events": ["*"]}, headers=auth)
        assert response.status == 422, (url, await response.text())
        assert "refused" in (await response.json())["error"]["message"]


def test_ops_manage_endpoints_from_the_command_line(notify_env: NotifyEnv) -> None:
    settings = notify_env.settings
    name = f"cli-{uuid.uuid4().hex[:8]}"
    assert satworks(settings, "apps", "create", name, "--quiet").returncode == 0
    url = "http://127.0.0.1:9/cli-hook"

    added = satworks(settings, "webhooks", "add", "--app", name, "--url", url, "--events", "payment.*,job.dead")
    assert added.returncode == 0, added.stderr
    endpoint_id = added.stdout.split()[1]
    secret = added.stdout.strip().splitlines()[-1]
    assert secret.startswith("whsec_") and secret not in satworks(settings, "webhooks", "list", "--app", name).stdout
    listed = satworks(settings, "webhooks", "list", "--app", name).stdout.strip().split("\t")
    assert listed[:3] == [endpoint_id, url, "payment.*,job.dead"]

    rotated = satworks(settings, "webhooks", "rotate", "--app", name, endpoint_id)
    assert rotated.returncode == 0 and "the old one signs too until" in rotated.stdout
    assert rotated.stdout.strip().splitlines()[-1] not in (secret, "")

    refused = satworks(settings, "webhooks", "add", "--app", name, "--url", "http://10.0.0.1/", "--events", "*")
    assert refused.returncode != 0 and "refused" in refused.stderr and "Traceback" not in refused.stderr
    removed = satworks(settings, "webhooks", "remove", "--app", name, endpoint_id)
    assert removed.returncode == 0, removed.stderr
    assert satworks(settings, "webhooks", "list", "--app", name).stdout.strip() == ""
    again = satworks(settings, "webhooks", "remove", "--app", name, endpoint_id)
    assert again.returncode != 0 and "Traceback" not in again.stderr


async def test_an_app_never_sees_or_touches_another_apps_endpoints_deliveries_or_emails(notify: NotifyStack) -> None:
    created = await notify.register("/mine", ["job.succeeded"])
    await notify.job()
    delivery = await notify.delivery_when(lambda d: d["status"] == "delivered")
    email = await notify.client.post(
        "/v1/emails", json={"to": ["x@example.org"], "subject": "s", "text": "t"}, headers=notify.auth
    )
    email_id = (await email.json())["id"]

    other = {**notify.auth, "Authorization": f"Bearer {make_key_for(notify.settings)}"}
    client = notify.client
    for method, path in (
        ("GET", f"/v1/webhook-endpoints/{created['id']}"),
        ("DELETE", f"/v1/webhook-endpoints/{created['id']}"),
        ("POST", f"/v1/webhook-endpoints/{created['id']}/rotate-secret"),
        ("GET", f"/v1/webhook-deliveries/{delivery['id']}"),
        ("POST", f"/v1/webhook-deliveries/{delivery['id']}/redeliver"),
        ("GET", f"/v1/emails/{email_id}"),
    ):
        response = await client.request(method, path, headers=other)
        assert response.status == 404, (method, path, await response.text())
    for path in ("/v1/webhook-endpoints", "/v1/webhook-deliveries", "/v1/emails"):
        assert (await (await client.get(path, headers=other)).json())["items"] == []
    assert len(notify.receiver.at("/mine")) == 1


async def test_failed_and_dead_jobs_are_announced_with_their_error(notify: NotifyStack) -> None:
    await notify.register("/outcomes", ["job.failed", "job.dead"])
    failed_id = await notify.job(fail="permanent")
    succeeded_id = await notify.job()  # not subscribed: no event at all

    [hit] = await notify.hits("/outcomes", 1)
    event = json.loads(hit.body)
    assert event["type"] == "job.failed" and event["data"]["job_id"] == failed_id
    assert event["data"]["error"]["type"] == "ChaosFailure" and "permanent" in event["data"]["error"]["message"]
    await notify.delivery_when(lambda d: d["status"] == "delivered")
    await wait_for_status(notify.client, notify.auth, succeeded_id, "succeeded")
    assert scalar(notify.settings, "SELECT count(*) FROM app_events WHERE subject_id = %s", succeeded_id) == 0
    assert len(notify.receiver.at("/outcomes")) == 1


async def test_the_sweep_sends_a_delivery_whose_message_was_lost(notify: NotifyStack) -> None:
    # job.dead only: the sweep job's own job.succeeded must not wake this endpoint's pump up.
    endpoint = await notify.register("/stranded", ["job.dead"])
    # A fanned-out event whose pump message never reached the broker (the dispatcher died after its commit).
    with psycopg.connect(db_dsn(notify.settings)) as conn:
        event_id = conn.execute(
            "INSERT INTO app_events (app_id, type, subject_id, data, delivered_at) SELECT app_id, 'job.dead',"
            " gen_random_uuid(), '{\"stranded\": true}'::jsonb, now() FROM webhook_endpoints WHERE id = %s"
            " RETURNING id",
            (endpoint["id"],),
        ).fetchone()[0]  # type: ignore[index]
        conn.execute(
            "INSERT INTO webhook_deliveries (id, app_id, endpoint_id, event_id, event_type, status, created_at)"
            " SELECT gen_random_uuid(), app_id, id, %s, 'job.dead', 'pending', now() - interval '2 minutes'"
            " FROM webhook_endpoints WHERE id = %s",
            (event_id, endpoint["id"]),
        )
    await asyncio.to_thread(submit_as_scheduler, notify.settings, "notify.sweep")

    async def stranded_arrived() -> dict[str, Any] | None:
        events = [json.loads(h.body) for h in notify.receiver.at("/stranded")]
        return next((e for e in events if e["id"] == f"evt_{event_id}"), None)

    event = await eventually(stranded_arrived, what="the stranded event")
    assert event["data"] == {"stranded": True}
    await notify.delivery_when(lambda d: d["event"]["id"] == f"evt_{event_id}" and d["status"] == "delivered")


def test_rekey_reencrypts_every_secret_under_the_new_key(notify_env: NotifyEnv) -> None:
    settings = notify_env.settings
    name = f"rekey-{uuid.uuid4().hex[:8]}"
    assert satworks(settings, "apps", "create", name, "--quiet").returncode == 0
    added = satworks(settings, "webhooks", "add", "--app", name, "--url", "http://127.0.0.1:9/k", "--events", "*")
    endpoint_id, secret = added.stdout.split()[1], added.stdout.strip().splitlines()[-1]

    fresh = SecretStr(new_key())
    assert settings.webhook_secret_key is not None
    old_keys = [settings.webhook_secret_key]
    moved = settings.model_copy(update={"webhook_secret_key": fresh, "webhook_secret_old_keys": old_keys})
    rekeyed = satworks(moved, "webhooks", "rekey")
    assert rekeyed.returncode == 0 and "endpoints re-encrypted" in rekeyed.stdout, rekeyed.stderr
    sealed = scalar(settings, "SELECT secret_enc FROM webhook_endpoints WHERE id = %s", endpoint_id)
    assert SecretBox([fresh.get_secret_value()]).open(sealed) == secret
