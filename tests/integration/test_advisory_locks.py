"""Each feature's advisory lock excludes only that feature. The reconciler, the Lightning sweep and the
outbox dispatcher once shared one id: a Lightning sweep was skipped while an outbox dispatch ran, and
the payment it should have settled stayed open (seen as a flaky Lightning test)."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest
from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError

from satworks.db import lightning, outbox, payments, reconcile
from satworks.db.engine import sync_engine
from satworks.settings import Settings
from tests.support import db_dsn


def dispatch_lock_free(conn: Connection) -> bool:
    """Whether the outbox dispatcher would get its lock at once (it waits for it: here, not at all)."""
    try:
        outbox.lock_dispatch(conn, timeout_s=0.001)
    except OperationalError:
        return False
    return True


TAKERS: dict[str, tuple[int, Callable[[Connection], bool]]] = {
    "payments sweep": (payments.SWEEP_LOCK, payments.try_sweep_lock),
    "lightning sweep": (lightning.SWEEP_LOCK, lightning.try_sweep_lock),
    "reconciler": (reconcile.RECONCILE_LOCK, reconcile.try_lock),
    "outbox dispatcher": (outbox.DISPATCH_LOCK, dispatch_lock_free),
}


@pytest.mark.parametrize("holder", sorted(TAKERS))
def test_a_feature_holding_its_lock_keeps_out_only_itself(settings: Settings, holder: str) -> None:
    engine = sync_engine(settings.database_url, pool_size=1)
    try:
        with psycopg.connect(db_dsn(settings), autocommit=True) as held:
            held.execute("SELECT pg_advisory_lock(%s)", (int(TAKERS[holder][0]),))
            free = {}
            for name, (_, take) in TAKERS.items():
                with engine.begin() as conn:  # each try in its own transaction: its xact lock ends with it
                    free[name] = take(conn)
        assert free == {name: name != holder for name in TAKERS}
    finally:
        engine.dispose()
