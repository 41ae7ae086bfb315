"""The simulator's RPC method table: what each method takes and which handler answers it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from satworks.devnodes.bitcoind.chain import Chain
from satworks.devnodes.bitcoind.jsonrpc import Arg
from satworks.devnodes.bitcoind.wallet import Wallet


@dataclass
class Node:
    """Everything a handler may read or change: the chain, the loaded wallets, the method table.

    ``wallet`` is the wallet the request being served addressed (``/wallet/<name>``); the server sets
    it before each wallet method, which is safe because every RPC runs to completion on one loop.
    """

    chain: Chain
    wallet: Wallet
    wallets: dict[str, Wallet] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    methods: dict[str, Method] = field(default_factory=dict)
    left_ibd: bool = False


Handler = Callable[[Node, list[Any]], object]


@dataclass(frozen=True)
class Method:
    name: str
    category: str
    args: tuple[Arg, ...]
    handler: Handler
    wallet: bool = False
    mutates: bool = False


class Registry:
    """Collects handlers with ``@registry.method(...)``; the server merges the registries."""

    def __init__(self, category: str, *, wallet: bool = False) -> None:
        self.category = category
        self.wallet = wallet
        self.methods: dict[str, Method] = {}

    def method(
        self,
        name: str,
        *args: Arg,
        mutates: bool = False,
        category: str | None = None,
        wallet: bool | None = None,
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            needs_wallet = self.wallet if wallet is None else wallet
            self.methods[name] = Method(name, category or self.category, args, handler, needs_wallet, mutates)
            return handler

        return register
