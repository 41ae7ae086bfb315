"""schemathesis over the whole OpenAPI document against a real ``satworks web`` (issue 8): no server error,
no status the document does not list, every answer in its documented schema and content type.

A bounded number of examples per operation keeps this in the suite's budget; ``scripts/fuzz-api`` runs
the same checks deeper against a running stack.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from pydantic import SecretStr
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from satworks.http.openapi import openapi_document
from satworks.http.pagination import CURSOR_PATTERN
from satworks.http.routes import all_routes
from satworks.jobs.catalog import JOB_TYPES
from satworks.settings import Settings
from satworks.webhooks.secrets import new_key
from tests.integration.bitcoind_fixtures import running_bitcoind
from tests.integration.payments_stack import NODE_TOKEN, WATCHER_SECRET
from tests.support import WebProcess

EXAMPLES = 25  # per operation; scripts/fuzz-api runs many more
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance, content_type_conformance]


@pytest.fixture(scope="module")
def web(base_settings: Settings, tmp_path_factory: Any) -> Iterator[WebProcess]:
    with running_bitcoind() as node:  # a real node: the draws intake asks it for its tip
        configured = base_settings.model_copy(
            update={
                "bitcoind_webhook_token": NODE_TOKEN,
                "bitcoind_rpc_url": node.url,
                "payment_webhook_secret": WATCHER_SECRET,
                "webhook_secret_key": SecretStr(new_key()),  # webhook endpoints configured, as in the quick start
                "auth_failures_per_minute": 1_000_000,  # wrong webhook credentials keep reaching their checks
            }
        )
        process = WebProcess(configured, Path(tmp_path_factory.mktemp("fuzz")) / "web.log").start()
        yield process
        process.stop()


@pytest.fixture(scope="module")
def api_key(base_settings: Settings) -> str:
    from satworks.db import apps
    from satworks.db.engine import sync_engine

    engine = sync_engine(base_settings.database_url, pool_size=1)
    with engine.begin() as conn:
        key = apps.create(conn, "fuzz-" + Path(__file__).stem, admin=True, rate_limit_per_minute=None)
    engine.dispose()
    return key


@pytest.fixture(scope="module")
def api_schema(web: WebProcess) -> Any:
    return schemathesis.openapi.from_url(f"{web.url}/v1/openapi.json")


ROUTES = [(route.method, route.path) for route in all_routes()]


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_every_operation_answers_as_documented(
    api_schema: Any, web: WebProcess, api_key: str, method: str, path: str
) -> None:
    operation = api_schema[path][method]
    auth = {"Authorization": f"Bearer {api_key}", "X-Forwarded-For": "10.250.0.9"}

    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    def answers_as_documented(case: Any) -> None:
        headers = {**(case.headers or {}), **auth}
        case.call_and_validate(base_url=web.url, headers=headers, checks=CHECKS, timeout=30)

    answers_as_documented()


def test_the_document_states_the_limits_the_server_enforces() -> None:
    document = openapi_document(all_routes())
    schemas = document["components"]["schemas"]
    assert schemas["JobIn"]["properties"]["type"]["enum"] == sorted(JOB_TYPES)
    number, text = schemas["PaymentIn"]["properties"]["payment_tolerance"]["anyOf"]
    assert (number["multipleOf"], number["exclusiveMaximum"], text["pattern"]) == (0.01, 100, r"^\d{1,2}(\.\d{1,2})?$")
    for path in ("/v1/jobs", "/v1/payments"):
        (cursor,) = [p for p in document["paths"][path]["get"]["parameters"] if p["name"] == "cursor"]
        assert cursor["schema"]["anyOf"][0]["pattern"] == CURSOR_PATTERN
    assert "408" in document["paths"]["/v1/jobs"]["post"]["responses"]
    assert set(schemas["ErrorDetails"]["required"]) == {"errors"}
