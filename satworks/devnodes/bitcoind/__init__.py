"""A simulated Bitcoin Core regtest node: ``server`` (HTTP JSON-RPC and notifications), ``chain`` and
``wallet`` (the model), ``chain_rpc``/``wallet_rpc`` (the methods), ``jsonrpc`` (Core's wire rules),
``miner`` (block production for local runs)."""
