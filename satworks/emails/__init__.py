"""emails: what an email says and to whom: templates, addresses and the message built from them."""
