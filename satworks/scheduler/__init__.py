"""The scheduler (recurring work, one active leader): not built yet; it will submit through ``satworks.intake``."""
