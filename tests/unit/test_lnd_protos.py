"""The committed lnd modules are exactly what scripts/gen-protos makes from the committed .proto files."""

from __future__ import annotations

from pathlib import Path

from satworks.integrations.lnd.protos import build, lightning_pb2, router_pb2


def test_generated_modules_match_the_protos(tmp_path: Path) -> None:
    fresh = build.generate(tmp_path)
    committed = sorted(p for p in build.HERE.iterdir() if p.name.endswith((".py", ".pyi")) and "_pb2" in p.name)
    assert [p.name for p in fresh] == [p.name for p in committed]
    stale = [p.name for p in fresh if p.read_text() != (build.HERE / p.name).read_text()]
    assert not stale, f"stale generated modules {stale}: run scripts/gen-protos and commit the result"


def test_messages_keep_lnd_package_names_and_field_numbers() -> None:
    invoice = lightning_pb2.Invoice.DESCRIPTOR
    assert invoice.full_name == "lnrpc.Invoice"
    numbers = {f.name: f.number for f in invoice.fields}
    assert numbers["value_msat"] == 23 and numbers["amt_paid_msat"] == 20 and numbers["state"] == 21
    assert router_pb2.DESCRIPTOR.services_by_name["Router"].full_name == "routerrpc.Router"
    send = router_pb2.DESCRIPTOR.services_by_name["Router"].methods_by_name["SendPaymentV2"]
    assert send.output_type.full_name == "lnrpc.Payment" and send.server_streaming
