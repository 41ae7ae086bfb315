"""The HTTP API (aiohttp): parsing, authentication, status codes. Submitting work is ``satworks.intake``,
queries are ``satworks.db``; nothing here calls slow external systems."""
