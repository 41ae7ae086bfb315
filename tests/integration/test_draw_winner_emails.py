"""Winners of a ``"notify": true`` draw are emailed once: a draws stack (regtest node simulator, a worker
process, HTTP) whose worker sends through the aiosmtpd sink.

The ``draw_won`` rows are written in the transaction that stores the draw's one result, so running the
draw job again (or storing the result again) makes no second email.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from satworks.db import draw_states
from satworks.db.engine import sync_engine
from satworks.emails.outbox import Composer
from satworks.jobs.draws import queue_winner_emails
from satworks.settings import Settings
from tests.integration.draws_stack import DrawStack, running_draw_stack
from tests.integration.smtp_fixtures import SinkThread, running_sink
from tests.integration.test_draws_api import queued, send_run
from tests.support import eventually, scalar

pytestmark = pytest.mark.timeout(120)

PUBLIC = "https://raffle.example"


@pytest.fixture
def sink() -> Iterator[SinkThread]:
    with running_sink() as running:
        yield running


@pytest.fixture
async def stack(
    base_settings: Settings, make_key: Any, aiohttp_client: Any, sink: SinkThread
) -> AsyncIterator[DrawStack]:
    async with running_draw_stack(
        base_settings,
        make_key,
        aiohttp_client,
        smtp_host="127.0.0.1",
        smtp_port=sink.port,
        smtp_helo_name="tests.local",
        public_base_url=PUBLIC,
    ) as running:
        yield running


def _to(sink: SinkThread, addresses: set[str]) -> list[Any]:
    return [m for m in sink.sink.store.all() if addresses & set(m.rcpt_tos)]


async def test_a_notify_draw_emails_each_winner_with_an_address_once(stack: DrawStack, sink: SinkThread) -> None:
    tag = uuid.uuid4().hex[:8]
    ann, bob = f"ann-{tag}@example.org", f"bob-{tag}@example.org"
    entries = [
        {"id": "ann", "tickets": 3, "email": ann},
        {"id": "bob", "tickets": 2, "email": bob},
        {"id": "cat", "tickets": 5},  # wins too, but gave no address
    ]
    height = await stack.tip() + 1
    draw = await stack.commit(
        raffle_id=f"summer-{tag}",
        entries=entries,
        winners=3,  # every entry wins: two with an email, one without
        beacon={"type": "bitcoin_block", "height": height},
        confirmations=1,
        notify=True,
    )
    await stack.wait_for(draw["id"], "waiting")
    await stack.mine(1)
    done = await stack.wait_for(draw["id"], "completed")
    tickets = {w["id"]: w["ticket"] for w in done["winners"]}
    assert set(tickets) == {"ann", "bob", "cat"}

    async def two() -> list[Any] | None:
        found = _to(sink, {ann, bob})
        return found if len(found) >= 2 else None

    messages = await eventually(two, timeout_s=30, what="two draw_won emails in the sink")
    by_rcpt = {m.rcpt_tos[0]: m.parsed() for m in messages}
    assert set(by_rcpt) == {ann, bob}
    assert done["public_url"] == f"{PUBLIC}/p/draws/" + done["public_url"].rsplit("/", 1)[1]
    for entry, address in (("ann", ann), ("bob", bob)):
        parsed = by_rcpt[address]
        text = parsed.get_body(("plain",)).get_content()
        html = parsed.get_body(("html",)).get_content()
        assert parsed["Subject"] == f"You won in summer-{tag}"
        assert f'Your entry {entry} won in the raffle "summer-{tag}" with ticket #{tickets[entry]}.' in text
        assert done["public_url"] in text and f'href="{done["public_url"]}"' in html
        assert draw["id"] in text
    assert by_rcpt[ann]["To"] == ann and by_rcpt[ann]["Message-ID"] != by_rcpt[bob]["Message-ID"]

    listed = await stack.client.get("/v1/emails", headers=stack.auth)
    rows = (await listed.json())["items"]
    assert sorted((e["template"], e["to"][0]) for e in rows) == [("draw_won", ann), ("draw_won", bob)]

    # The draw job again, twice: the draw is completed, nothing more is written or sent.
    for _ in range(2):
        send_run(stack.settings, draw["id"])

    async def drained() -> bool | None:
        return True if not queued(stack.settings) else None

    await eventually(drained, timeout_s=30, what="the extra draw jobs to finish")
    # Storing the winners' emails again (as a second result would) makes none: they are keyed per entry.
    engine = sync_engine(stack.settings.database_url, pool_size=1)
    try:
        with engine.begin() as conn:
            record = draw_states.load(conn, uuid.UUID(draw["id"]))
            assert record is not None
            notices = draw_states.winner_notices(conn, record, done["winners"])
            assert [n.entry_id for n in notices] == [w["id"] for w in done["winners"] if w["id"] != "cat"]
            assert queue_winner_emails(conn, notices, Composer(stack.settings)) == []
    finally:
        engine.dispose()
    count = "SELECT count(*) FROM emails WHERE template = 'draw_won' AND %s = ANY(to_addrs)"
    assert scalar(stack.settings, count, bob) == 1
    assert len(_to(sink, {ann, bob})) == 2


async def test_a_draw_without_notify_emails_nobody(stack: DrawStack, sink: SinkThread) -> None:
    address = f"quiet-{uuid.uuid4().hex[:8]}@example.org"
    height = await stack.tip() + 1
    draw = await stack.commit(
        raffle_id="quiet",
        entries=[{"id": "only", "tickets": 1, "email": address}],
        winners=1,
        beacon={"type": "bitcoin_block", "height": height},
        confirmations=1,
    )
    await stack.wait_for(draw["id"], "waiting")
    await stack.mine(1)
    await stack.wait_for(draw["id"], "completed")
    assert scalar(stack.settings, "SELECT count(*) FROM emails WHERE %s = ANY(to_addrs)", address) == 0
    assert _to(sink, {address}) == []
