"""webhooks: what apps are told (event types, the envelope) and when a failed delivery is tried again."""
