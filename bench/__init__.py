"""Benchmarks for satworks (run from the repository root; see bench/README.md)."""
