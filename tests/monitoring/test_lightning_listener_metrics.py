"""``satworks lnd-listener``'s /metrics, after it handed a settlement on, passes ``promtool check metrics``
and says what the stream did."""

from __future__ import annotations

import urllib.request

from satworks.integrations.lnd.records import PaymentStatus
from tests.integration.lightning_stack import MakeStack, lightning, until
from tests.integration.lnd_fixtures import lnd_network
from tests.monitoring.promql import dashboard_exprs, metric_refs, rule_exprs
from tests.monitoring.test_exposition import build_info, promtool_check
from tests.monitoring.test_expressions_name_exported_metrics import ALERTS, DASHBOARD, listener_samples, sample_names

__all__ = ["lightning", "lnd_network"]


async def test_listener_metrics_pass_promtool_and_show_the_stream(promtool: str, lightning: MakeStack) -> None:
    stack = await lightning()
    payment = await stack.created(amount_sat=2_000)
    assert (await stack.pay(payment["payment_request"])).status == PaymentStatus.SUCCEEDED
    await stack.wait_for(payment["id"], "settled")
    assert stack.listener is not None
    listener = stack.listener
    await until(lambda: listener.metrics().get("satworks_lnd_stream_lag_seconds_count") == 1.0, what="the lag")
    port = stack.settings.lnd_listener_metrics_port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    assert promtool_check(promtool, text) == "exit 0"
    assert len(build_info(text)) == 1
    samples = listener.metrics()
    assert (samples["satworks_lnd_stream_up"], samples["satworks_lnd_stream_settle_index"]) == (1.0, 1.0)
    assert samples["satworks_lnd_stream_last_update_timestamp_seconds"] > 0
    # The names the dashboard and the rules read from this job: declared by the code (what
    # test_expressions_name_exported_metrics.py checks them against) and, but for the reconnects no
    # settlement made, in this real scrape.
    exprs = [expr for _, expr in [*dashboard_exprs(DASHBOARD), *rule_exprs(ALERTS)]]
    read = {ref.name for expr in exprs for ref in metric_refs(expr) if "satworks-lnd-listener" in ref.jobs} - {"up"}
    assert read <= listener_samples()
    assert read - {"satworks_lnd_stream_reconnects_total"} <= sample_names(text)
