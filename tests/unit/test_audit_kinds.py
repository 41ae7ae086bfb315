"""The audit kinds are defined once (``AuditKind``); the migration's check constraint must list the same."""

from __future__ import annotations

import importlib.util

from satworks.audit import AuditKind
from satworks.db.schema import audit_events, one_of
from tests.support import ROOT

MIGRATION = ROOT / "satworks" / "db" / "migrations" / "versions" / "0010_audit.py"


def test_the_migration_allows_exactly_the_kinds_the_code_writes() -> None:
    spec = importlib.util.spec_from_file_location("migration_0010_audit", MIGRATION)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert f"kind IN {module.KINDS}" == one_of("kind", AuditKind)


def test_the_table_checks_its_kinds_from_the_enum() -> None:
    checks = {c.name: str(c.sqltext) for c in audit_events.constraints if c.name == "audit_events_kind_valid"}
    assert checks == {"audit_events_kind_valid": one_of("kind", AuditKind)}
