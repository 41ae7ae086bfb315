"""smtp: sending email to a relay (``client.send``), SMTP errors converted into ours."""
