"""Prometheus metrics: names start with ``satworks_``, values are in base units, labels are bounded."""
