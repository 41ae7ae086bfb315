"""Webhook rules that need no network: which addresses the SSRF guard refuses, how answers are classified."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime

import pytest

from satworks.errors import InvalidPayload, UnsafeWebhookUrl
from satworks.integrations.webhooks.guard import AddressPolicy, check_url
from satworks.integrations.webhooks.outcome import Outcome, classify, retry_after_s
from satworks.integrations.webhooks.sender import sign_all
from satworks.signatures import verify
from satworks.webhooks.events import EVENT_TYPES, WebhookEvent, check_patterns, event_id, matches

DEFAULT = AddressPolicy()


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.255.0.9",
        "::1",
        "10.0.0.1",
        "172.16.0.1",
        "172.31.255.254",
        "192.168.0.1",
        "169.254.169.254",
        "169.254.0.1",
        "fe80::1",
        "fc00::1",
        "fd12:3456::1",
        "100.64.0.1",
        "0.0.0.0",
        "::",
        "224.0.0.251",
        "ff02::1",
        "255.255.255.255",
        "192.0.2.1",
        "198.18.0.1",
        "240.0.0.1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "2002:7f00:1::1",
        "64:ff9b::7f00:1",
        "64:ff9b::a9fe:a9fe",
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert DEFAULT.refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "64:ff9b::808:808"])
def test_public_addresses_pass(address: str) -> None:
    assert DEFAULT.refusal(ipaddress.ip_address(address)) is None


def test_allowed_networks_and_hosts_let_chosen_private_addresses_through() -> None:
    policy = AddressPolicy.of(["127.0.0.0/8", "::1/128"], hosts=["Hooks.Internal.Example."])
    assert policy.refusal(ipaddress.ip_address("127.0.0.1")) is None
    assert policy.refusal(ipaddress.ip_address("::1")) is None
    assert policy.refusal(ipaddress.ip_address("10.0.0.1")) is not None
    assert policy.refusal(ipaddress.ip_address("10.0.0.1"), "hooks.internal.example") is None
    # never multicast or unspecified, whatever is allowed
    assert policy.refusal(ipaddress.ip_address("0.0.0.0"), "hooks.internal.example") is not None
    assert AddressPolicy.of(["0.0.0.0/0"]).refusal(ipaddress.ip_address("224.0.0.1")) is not None


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/x", "only http and https"),
        ("gopher://example.com/", "only http and https"),
        ("//example.com/x", "only http and https"),
        ("https://", "no host"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[::1]:8080/", "loopback"),
    ],
)
def test_check_url_refuses_bad_schemes_hosts_and_literals(url: str, message: str) -> None:
    with pytest.raises(UnsafeWebhookUrl, match=message):
        check_url(url, DEFAULT)


def test_check_url_leaves_names_to_the_resolver() -> None:
    assert check_url("https://hooks.example.com/x?y=1", DEFAULT).host == "hooks.example.com"


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.DELIVERED),
        (204, Outcome.DELIVERED),
        (299, Outcome.DELIVERED),
        (301, Outcome.FAILED),
        (307, Outcome.FAILED),
        (400, Outcome.FAILED),
        (401, Outcome.FAILED),
        (404, Outcome.FAILED),
        (408, Outcome.RETRY),
        (409, Outcome.FAILED),
        (429, Outcome.RETRY),
        (500, Outcome.RETRY),
        (502, Outcome.RETRY),
        (599, Outcome.RETRY),
    ],
)
def test_status_classification(status: int, outcome: Outcome) -> None:
    assert classify(status) is outcome


NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("30", 30.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("99999", 3600.0),
        ("Thu, 01 Jan 2026 12:02:00 GMT", 120.0),
        ("Thu, 01 Jan 2026 11:00:00 GMT", 0.0),
        ("Fri, 02 Jan 2026 12:00:00 GMT", 3600.0),
    ],
)
def test_retry_after_in_seconds_or_http_date_is_clamped(value: str | None, seconds: float | None) -> None:
    assert retry_after_s(value, now=NOW, cap_s=3600) == seconds


def test_sign_all_gives_one_v1_per_secret_under_one_timestamp() -> None:
    header = sign_all(b"{}", ["new-secret-0123456789", "old-secret-0123456789"], 1_000)
    assert header.startswith("t=1000,v1=") and header.count("v1=") == 2 and header.count("t=") == 1
    for secret in ("new-secret-0123456789", "old-secret-0123456789"):
        assert verify(header, b"{}", secret, now=1_000, tolerance_s=1) == 1_000
    with pytest.raises(ValueError, match="secret"):
        sign_all(b"{}", [], 1_000)


def test_event_envelope_and_subscriptions() -> None:
    event = WebhookEvent(event_id(17), "payment.settled", datetime(2026, 1, 1, tzinfo=UTC), {"amount_sat": 1})
    assert event.body() == (
        b'{"id":"evt_17","type":"payment.settled","created_at":"2026-01-01T00:00:00.000Z","data":{"amount_sat":1}}'
    )
    assert {"payment.settled", "payment.paid_late", "job.dead", "draw.completed", "report.ready"} <= set(EVENT_TYPES)
    assert matches(["payment.*"], "payment.settled") and not matches(["payment.*"], "job.dead")
    assert matches(["*"], "job.dead") and matches(["job.dead"], "job.dead") and not matches(["job"], "job.dead")
    assert check_patterns(["payment.*", "job.dead", "payment.*"]) == ["payment.*", "job.dead"]
    with pytest.raises(InvalidPayload, match=r"paymnt\.settled"):
        check_patterns(["paymnt.settled", "job.*"])
    with pytest.raises(InvalidPayload, match="at least one"):
        check_patterns([])
