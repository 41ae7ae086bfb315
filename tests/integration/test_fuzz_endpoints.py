"""Our own fuzz over every route (issue 8), beside schemathesis: bytes and JSON no schema describes, odd
headers and query strings, against a real ``satworks web``. Every answer is below 500, in the one error
shape when it is an error, and arrives (no hang)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from satworks.http.routes import all_routes
from satworks.settings import Settings
from satworks.webhooks.secrets import new_key
from tests.integration.bitcoind_fixtures import running_bitcoind
from tests.integration.payments_stack import NODE_TOKEN, WATCHER_SECRET
from tests.support import WebProcess

ROUTES = [(route.method, route.path) for route in all_routes()]
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
BODIES = st.one_of(
    st.binary(max_size=300),
    JSON_VALUES.map(lambda v: json.dumps(v, allow_nan=True).encode()),
    st.dictionaries(
        st.sampled_from(["type", "payload", "method", "amount_sat", "address", "id", "event", "data", "metadata"]),
        JSON_VALUES,
        max_size=5,
    ).map(lambda v: json.dumps(v).encode()),
)
HEADER_VALUES = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80).map(str.strip)
QUERIES = st.dictionaries(
    st.sampled_from(["cursor", "limit", "status", "type", "txid", "blockhash", "token"]),
    st.text(max_size=30),
    max_size=3,
)


@pytest.fixture(scope="module")
def web(base_settings: Settings, tmp_path_factory: Any) -> Iterator[WebProcess]:
    with running_bitcoind() as node:  # a real node: the draws intake asks it for its tip
        configured = base_settings.model_copy(
            update={
                "bitcoind_webhook_token": NODE_TOKEN,
                "bitcoind_rpc_url": node.url,
                "payment_webhook_secret": WATCHER_SECRET,
                "webhook_secret_key": SecretStr(new_key()),  # webhook endpoints configured, as in the quick start
                "auth_failures_per_minute": 1_000_000,
            }
        )
        process = WebProcess(configured, Path(tmp_path_factory.mktemp("ownfuzz")) / "web.log").start()
        yield process
        process.stop()


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_no_input_reaches_a_server_error(web: WebProcess, key: str, method: str, path: str) -> None:
    with httpx.Client(base_url=web.url, timeout=30) as http:

        @given(
            body=BODIES,
            query=QUERIES,
            content_type=st.sampled_from(["application/json", "text/plain", "application/json; charset=latin-1"]),
            idempotency=st.none() | HEADER_VALUES,
            authorization=st.sampled_from([f"Bearer {key}", "Bearer x", "Basic abc", ""]),
            segment=st.sampled_from(["00000000-0000-0000-0000-000000000000", "x", "%00", "1" * 300]),
        )
        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        def answers_below_500(
            body: bytes,
            query: dict[str, str],
            content_type: str,
            idempotency: str | None,
            authorization: str,
            segment: str,
        ) -> None:
            headers = {"Content-Type": content_type, "Authorization": authorization, "X-Forwarded-For": "10.249.0.1"}
            headers["X-Satworks-Node-Token"] = NODE_TOKEN
            if idempotency is not None:
                headers["Idempotency-Key"] = idempotency
            url = re.sub(r"{\w+}", segment, path)
            response = http.request(method, url, params=query, content=body, headers=headers)
            assert response.status_code < 500, (method, url, body[:200], response.text[:500])
            if response.status_code >= 400 and response.headers.get("content-type", "").startswith("application/json"):
                error = response.json()["error"]
                assert set(error) == {"code", "message", "details"} and isinstance(error["details"]["errors"], list)

        answers_below_500()
