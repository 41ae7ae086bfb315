"""integrations: filled in by later capabilities."""
