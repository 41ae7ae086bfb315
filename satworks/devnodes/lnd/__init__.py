"""A simulated lnd (regtest): lnd's gRPC services over TLS, macaroons, BOLT11 invoices and payments
between the nodes of one in-process network. Run it with ``satworks devnode lnd`` (see ``cli.py``);
tests drive ``node.SimNode`` directly."""
