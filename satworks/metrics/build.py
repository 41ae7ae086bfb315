"""``satworks_build_info``: which satworks, Python and Dramatiq a process runs, as labels on a constant 1.

A collector rather than a ``Gauge``: worker pools export from a multiprocess directory, where a gauge
would gain a ``pid`` label per process; a collector reports the same one series in every mode.
"""

from __future__ import annotations

import platform
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version

import dramatiq
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

import satworks


class BuildInfo(Collector):
    def __init__(self) -> None:
        try:
            satworks_version = version("satworks")
        except PackageNotFoundError:  # run from a source tree that was never installed
            satworks_version = satworks.__version__
        self.labels = {
            "version": satworks_version,
            "python": platform.python_version(),
            "dramatiq": dramatiq.__version__,
        }

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "satworks_build_info", "satworks, Python and Dramatiq versions of this process.", labels=list(self.labels)
        )
        family.add_metric(list(self.labels.values()), 1)
        yield family


def register_build_info(registry: CollectorRegistry) -> None:
    registry.register(BuildInfo())
