"""The aiohttp intake: validates, records, enqueues. It never calls slow external systems."""
