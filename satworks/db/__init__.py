"""The database layer: the only place SQL lives."""
