"""API key format and verification; settings that refuse to start when inconsistent."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from satworks.db.apps import hash_secret, split_key, verify
from satworks.settings import Settings


def test_keys_split_into_id_and_secret_and_verify_against_the_hash() -> None:
    parts = split_key("sw_0123456789ab_s3cret-value")
    assert parts == ("0123456789ab", "s3cret-value")
    assert verify("s3cret-value", hash_secret("s3cret-value"))
    assert not verify("s3cret-valuf", hash_secret("s3cret-value"))


@pytest.mark.parametrize("key", ["", "sw_short_x", "xx_0123456789ab_s", "sw_0123456789ab_", "sw_0123456789ab_a_b"])
def test_malformed_keys_are_rejected(key: str) -> None:
    assert split_key(key) is None


def test_reaper_must_run_at_least_twice_per_heartbeat_timeout() -> None:
    with pytest.raises(ValidationError, match="reaper_interval_ms"):
        Settings(heartbeat_timeout_ms=2_000, reaper_interval_ms=1_500)


def test_unknown_settings_fail_at_start_with_their_name(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="queue_prefix"):
        Settings(queue_prefix="Bad Prefix!")
    with pytest.raises(ValidationError, match="no_such_setting"):
        Settings(no_such_setting=1)  # type: ignore[call-arg]


def test_amqp_url_selects_rabbitmq() -> None:
    assert Settings(broker_url="amqp://guest:guest@localhost:5672/").broker_kind == "rabbitmq"
    assert Settings().broker_kind == "redis"
