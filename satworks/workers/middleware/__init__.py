"""Cross-cutting job behaviour, one Dramatiq middleware per policy."""
