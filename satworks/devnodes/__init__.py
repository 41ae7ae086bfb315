"""devnodes: filled in by later capabilities."""
