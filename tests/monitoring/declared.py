"""The sample names a registry can export, for processes the monitored stack does not run.

A scrape shows only the labelled series that were used, so for the Lightning listener (the stack has no
lnd; its reconnects appear on the first reconnect) the names come from the registry the code builds:
every family, used or not, with the sample suffixes of its type.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("_count", "_sum", "_created"),
    "gauge": ("",),
    "info": ("_info",),
}


def declared_samples(registry: CollectorRegistry) -> set[str]:
    return {family.name + suffix for family in registry.collect() for suffix in SAMPLE_SUFFIXES[family.type]}
