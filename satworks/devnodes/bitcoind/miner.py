"""Block production for the development node: a premine so the wallet can pay, then a block every
few seconds, as a live regtest network would. It talks to the node over its own JSON-RPC."""

from __future__ import annotations

import asyncio
import logging

import aiohttp

log = logging.getLogger(__name__)


class Miner:
    def __init__(self, url: str, user: str, password: str) -> None:
        self._url = url
        self._auth = aiohttp.BasicAuth(user, password)

    async def call(self, session: aiohttp.ClientSession, method: str, *params: object) -> object:
        body = {"jsonrpc": "2.0", "id": method, "method": method, "params": list(params)}
        async with session.post(self._url, json=body, auth=self._auth) as response:
            answer = await response.json()
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    async def run(self, *, premine: int, every_s: float | None, stop: asyncio.Event) -> None:
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            address = await self.call(session, "getnewaddress", "miner")
            if premine:
                await self.call(session, "generatetoaddress", premine, address)
                log.info("premined blocks", extra={"action": "devnode_premine", "blocks": premine})
            while every_s and not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), timeout=every_s)
                except TimeoutError:
                    await self.call(session, "generatetoaddress", 1, address)
