"""scheduler: filled in by later capabilities."""
