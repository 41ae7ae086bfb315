"""smtp: the development SMTP server (``satworks devnode smtp``) that keeps and lists what it receives."""
