"""webhooks: POSTing signed events to apps (``sender``) behind the SSRF guard (``guard``); attempts as records."""
