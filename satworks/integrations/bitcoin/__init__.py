"""bitcoin: what satworks needs to talk to Bitcoin Core: address validation and the JSON-RPC client."""
