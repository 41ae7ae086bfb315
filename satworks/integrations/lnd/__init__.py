"""lnd over gRPC: the protos' generated modules, and a typed client whose errors stop at this package."""
