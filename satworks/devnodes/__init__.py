"""Development node simulators, one package per node: ``bitcoind/`` (regtest Bitcoin Core)."""
