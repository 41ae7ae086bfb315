"""A Bitcoin Core regtest node simulated in process: the wallet RPC over HTTP JSON-RPC.

Tests and local runs talk to it exactly as to ``bitcoind -regtest`` (python-bitcoinrpc's
``AuthServiceProxy`` works unchanged), so satworks' Bitcoin code is exercised through the real
protocol: HTTP Basic auth, Core's legacy-vs-2.0 status codes, batches, -28 while warming up, exact
amounts, reorgs. The HTTP rules are Core's ``httprpc.cpp``/``request.cpp``; the chain and wallet
rules live in ``chain.py`` and ``wallet.py`` beside this module.

All state belongs to the server's event loop and no handler awaits, so every RPC is atomic even when
requests arrive concurrently. Notifications (``walletnotify``/``blocknotify``) are URLs POSTed
without a body by background workers; failures are logged and ignored, as Core ignores a failing
notify command.

Run it: ``python -m satworks.devnodes.bitcoind --port 18443 --rpcuser u --rpcpassword p``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import hmac
import logging
import signal
import socket
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from satworks import logs
from satworks.devnodes.bitcoind import chain_rpc, wallet_rpc
from satworks.devnodes.bitcoind.chain import Chain
from satworks.devnodes.bitcoind.jsonrpc import (
    RPC_IN_WARMUP,
    RPC_INVALID_REQUEST,
    RPC_METHOD_NOT_FOUND,
    RPC_MISC_ERROR,
    RPC_PARSE_ERROR,
    RPC_WALLET_NOT_FOUND,
    RPC_WALLET_NOT_SPECIFIED,
    RpcError,
    bind,
    dumps,
    loads,
)
from satworks.devnodes.bitcoind.methods import Node
from satworks.devnodes.bitcoind.miner import Miner
from satworks.devnodes.bitcoind.wallet import Wallet

log = logging.getLogger("satworks.devnodes.bitcoind")

WALLET_NAME = "satworks"  # the wallet loaded at start; "/wallet/" (Core's unnamed default) reaches it too
WARMUP_STATUS = "Loading wallet…"
NOTIFY_TIMEOUT_S = 5.0
NOTIFY_WORKERS = 4
BAD_AUTH_DELAY_S = 0.25  # Core's brute-force deterrent


@dataclass(frozen=True)
class BitcoindConfig:
    rpc_user: str = "satworks"
    rpc_password: str = "satworks"
    # URL templates POSTed without a body. walletnotify: %s txid, %w wallet, %b block hash or
    # "unconfirmed", %h height or -1; sent when a wallet tx is first seen and whenever it moves
    # (mempool → block, block → mempool/nowhere on a reorg). blocknotify: %s the new best block hash.
    walletnotify_url: str | None = None
    blocknotify_url: str | None = None
    warmup_s: float = 0.0  # after each start, every RPC answers -28 for this long
    rpcservertimeout_s: float = 30.0  # Core's -rpcservertimeout: an idle keep-alive connection is closed


class _Request:
    """Core's ``JSONRPCRequest``: id and version are kept as soon as they are read, for the reply."""

    def __init__(self) -> None:
        self.id: Any = None
        self.has_id = False
        self.v2 = False
        self.method = ""
        self.params: list[Any] | dict[str, Any] = []

    @property
    def notification(self) -> bool:
        return self.v2 and not self.has_id

    def parse(self, value: object) -> None:
        if not isinstance(value, dict):
            raise RpcError(RPC_INVALID_REQUEST, "Invalid Request object")
        self.has_id, self.id = "id" in value, value.get("id")
        version = value.get("jsonrpc")
        if version is not None:
            if not isinstance(version, str):
                raise RpcError(RPC_INVALID_REQUEST, "jsonrpc field must be a string")
            if version not in ("1.0", "2.0"):
                raise RpcError(RPC_INVALID_REQUEST, "JSON-RPC version not supported")
            self.v2 = version == "2.0"
        method = value.get("method")
        if method is None:
            raise RpcError(RPC_INVALID_REQUEST, "Missing method")
        if not isinstance(method, str):
            raise RpcError(RPC_INVALID_REQUEST, "Method must be a string")
        self.method = method
        params = value.get("params")
        if params is None:
            params = []
        if not isinstance(params, list | dict):
            raise RpcError(RPC_INVALID_REQUEST, "Params must be an array or object")
        self.params = params

    def reply(self, result: object, error: RpcError | None) -> dict[str, object]:
        """Core's ``JSONRPCReplyObj``: 1.x carries both result and error, 2.0 only the one that applies."""
        out: dict[str, object] = {"jsonrpc": "2.0"} if self.v2 else {}
        if error is None:
            out["result"] = result
            if not self.v2:
                out["error"] = None
        else:
            if not self.v2:
                out["result"] = None
            out["error"] = error.to_json()
        if self.has_id:
            out["id"] = self.id
        return out


class BitcoindSim:
    def __init__(self, config: BitcoindConfig) -> None:
        self.config = config
        chain = Chain()
        wallet = Wallet(chain, WALLET_NAME)
        self.node = Node(chain, wallet, {WALLET_NAME: wallet})
        self.node.methods = {**chain_rpc.registry.methods, **wallet_rpc.registry.methods}
        self._credentials = f"{config.rpc_user}:{config.rpc_password}".encode()
        self._warm_until = 0.0
        self._unanswered = 0
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.notify_reached = False  # a notification URL answered once: its failures are warnings from now on
        self.notify_failures = 0
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._port: int | None = None

    @property
    def port(self) -> int | None:
        """The port bound by the last ``start`` (useful after starting on port 0)."""
        return self._port

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/", self._handle)
        app.router.add_route("*", "/wallet/{name:.*}", self._handle)
        return app

    async def start(self, host: str, port: int) -> None:
        """Serve on ``host:port`` (0 = any free port); after ``stop`` this is a node restart, state kept."""
        if self._runner is not None:
            raise RuntimeError("already started")
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            sock.close()
            raise
        self._port = sock.getsockname()[1]
        runner = web.AppRunner(
            self.app(), access_log=None, shutdown_timeout=1.0, keepalive_timeout=self.config.rpcservertimeout_s
        )
        await runner.setup()
        await web.SockSite(runner, sock).start()
        self._runner = runner
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=NOTIFY_TIMEOUT_S))
        self._queue = asyncio.Queue()
        self._workers = [asyncio.create_task(self._notifier()) for _ in range(NOTIFY_WORKERS)]
        self.set_warming_up(self.config.warmup_s)
        log.info("bitcoind simulator listening", extra={"host": host, "port": self._port})

    async def stop(self) -> None:
        """Close the listener and connections (clients see refused connections); state is kept."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def open_connections(self) -> int:
        """HTTP connections open now (an idle one is closed after ``rpcservertimeout_s``)."""
        return len(self._runner.server.connections) if self._runner and self._runner.server else 0

    def drop_answers(self, count: int) -> None:
        """Run the next ``count`` requests but close their connection before any answer, as when a
        node dies mid-call or its idle close crosses a request on the wire."""
        self._unanswered = count

    def set_warming_up(self, seconds: float) -> None:
        """Answer -28 "Loading wallet…" to every RPC for ``seconds`` from now (0 ends it)."""
        self._warm_until = time.monotonic() + seconds

    # ---- HTTP

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.method != "POST":
            return web.Response(status=405, text="JSONRPC server handles only POST requests")
        header = request.headers.get("Authorization")
        if header is None or not self._authorized(header):
            if header is not None:
                log.warning("incorrect rpc password", extra={"peer": request.remote})
                await asyncio.sleep(BAD_AUTH_DELAY_S)
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="jsonrpc"'})
        body = await request.read()
        status, text = self._process(body, request.match_info.get("name"))
        if self._unanswered > 0 and request.transport is not None:
            self._unanswered -= 1
            request.transport.close()  # FIN before any byte of the answer
        if text is None:
            return web.Response(status=status)
        return web.Response(status=status, body=text.encode(), content_type="application/json")

    def _authorized(self, header: str) -> bool:
        if not header.startswith("Basic "):
            return False
        try:
            given = base64.b64decode(header[6:].strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(given, self._credentials)

    def _process(self, body: bytes, wallet: str | None) -> tuple[int, str | None]:
        """Core's ``HTTPReq_JSONRPC``: one request or a batch → (HTTP status, JSON text or no body)."""
        request = _Request()
        try:
            try:
                value = loads(body)
            except ValueError:
                raise RpcError(RPC_PARSE_ERROR, "Parse error") from None
            if isinstance(value, dict):
                request.parse(value)
                reply: object = self._exec(request, wallet, catch_errors=request.v2)
                if request.notification:
                    return 204, None
            elif isinstance(value, list):
                replies = []
                for item in value:
                    request = _Request()
                    try:
                        request.parse(item)
                        answer = self._exec(request, wallet, catch_errors=True)
                    except RpcError as exc:
                        answer = request.reply(None, exc)
                    if not request.notification:
                        replies.append(answer)
                if not replies and value:
                    return 204, None
                reply = replies
            else:
                raise RpcError(RPC_PARSE_ERROR, "Top-level object parse error")
            return 200, dumps(reply) + "\n"
        except RpcError as exc:
            status = {RPC_INVALID_REQUEST: 400, RPC_METHOD_NOT_FOUND: 404}.get(exc.code, 500)
            return status, dumps(request.reply(None, exc)) + "\n"

    def _exec(self, request: _Request, wallet: str | None, *, catch_errors: bool) -> dict[str, object]:
        try:
            result = self._execute(request, wallet)
        except RpcError as exc:
            log.debug("rpc failed", extra={"method": request.method, "code": exc.code})
            if not catch_errors:
                raise
            return request.reply(None, exc)
        return request.reply(result, None)

    def _execute(self, request: _Request, wallet: str | None) -> object:
        if time.monotonic() < self._warm_until:
            raise RpcError(RPC_IN_WARMUP, WARMUP_STATUS)
        method = self.node.methods.get(request.method)
        if method is None:
            raise RpcError(RPC_METHOD_NOT_FOUND, "Method not found")
        params = bind(method.name, method.args, request.params)
        if method.wallet:
            self.node.wallet = self._wallet(wallet)
        before = self._wallet_states() if method.mutates else None
        try:
            return method.handler(self.node, params)
        except RpcError:
            raise
        except Exception as exc:  # Core answers any other failure as a misc error
            log.exception("rpc handler crashed", extra={"method": request.method})
            raise RpcError(RPC_MISC_ERROR, str(exc)) from exc
        finally:
            if before is not None:
                self._announce(before)

    def _wallet(self, name: str | None) -> Wallet:
        """Core's ``GetWalletForJSONRPCRequest``: the URL's wallet, else the only one loaded."""
        wallets = self.node.wallets
        if name is not None:
            found = wallets.get(name or WALLET_NAME)
            if found is None:
                raise RpcError(RPC_WALLET_NOT_FOUND, "Requested wallet does not exist or is not loaded")
            return found
        if len(wallets) > 1:
            raise RpcError(
                RPC_WALLET_NOT_SPECIFIED,
                "Wallet file not specified (must request wallet RPC through /wallet/<filename> uri-path).",
            )
        return next(iter(wallets.values()))

    # ---- notifications

    def _wallet_states(self) -> dict[tuple[str, str], str]:
        return {(w.name, txid): w.state_key(txid) for w in self.node.wallets.values() for txid in w.txs}

    def _announce(self, before: dict[tuple[str, str], str]) -> None:
        chain = self.node.chain
        if self.config.walletnotify_url:
            for wallet in self.node.wallets.values():
                for txid in wallet.txs:
                    if before.get((wallet.name, txid)) != wallet.state_key(txid):
                        block = chain.block_of(txid)
                        url = (
                            self.config.walletnotify_url.replace("%s", txid)
                            .replace("%w", wallet.name)
                            .replace("%b", block.hash if block else "unconfirmed")
                            .replace("%h", str(block.height) if block else "-1")
                        )
                        self._queue.put_nowait(url)
        tips, chain.tip_changes = chain.tip_changes, []
        if self.config.blocknotify_url:
            for i, tip in enumerate(tips):
                if i == 0 or tips[i - 1] != tip:
                    self._queue.put_nowait(self.config.blocknotify_url.replace("%s", tip))

    async def _notifier(self) -> None:
        while True:
            url = await self._queue.get()
            session = self._session
            if session is None:
                continue
            try:
                async with session.post(url) as response:
                    await response.read()
                    self.notify_reached = True
                    if response.status >= 400:
                        log.warning("notification refused", extra={"url": url.split("?")[0], "status": response.status})
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.notify_failures += 1
                # Until the intake has answered once it is still starting (the quick start runs both at
                # once): nothing is lost, its sweeps read the node anyway, so that is no warning.
                level = logging.WARNING if self.notify_reached else logging.DEBUG
                log.log(level, "notification failed", extra={"url": url.split("?")[0], "error": type(exc).__name__})


async def _serve(config: BitcoindConfig, host: str, port: int, *, premine: int, mine_every_s: float | None) -> None:
    sim = BitcoindSim(config)
    await sim.start(host, port)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    await asyncio.sleep(config.warmup_s)
    miner = Miner(f"http://{host}:{port}/", config.rpc_user, config.rpc_password)
    mining = asyncio.create_task(miner.run(premine=premine, every_s=mine_every_s, stop=stopping))
    await stopping.wait()
    await mining
    await sim.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m satworks.devnodes.bitcoind", description="Simulated Bitcoin Core regtest node (wallet RPC)."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18443)
    parser.add_argument("--rpcuser", default="satworks")
    parser.add_argument("--rpcpassword", default="satworks")
    parser.add_argument("--walletnotify", default=None, help="URL POSTed per wallet tx change; %%s = txid")
    parser.add_argument("--blocknotify", default=None, help="URL POSTed per new best block; %%s = block hash")
    parser.add_argument("--warmup", type=float, default=0.0, help="seconds of -28 answers after start")
    parser.add_argument(
        "--rpcservertimeout", type=float, default=30.0, help="seconds before an idle connection is closed (Core: 30)"
    )
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--premine", type=int, default=0, help="blocks mined at start (101 funds the wallet)")
    parser.add_argument("--mine-every", type=float, default=None, help="mine a block every N seconds")
    args = parser.parse_args(argv)
    logs.configure(args.log_level)
    config = BitcoindConfig(
        rpc_user=args.rpcuser,
        rpc_password=args.rpcpassword,
        walletnotify_url=args.walletnotify,
        blocknotify_url=args.blocknotify,
        warmup_s=args.warmup,
        rpcservertimeout_s=args.rpcservertimeout,
    )
    asyncio.run(_serve(config, args.host, args.port, premine=args.premine, mine_every_s=args.mine_every))


if __name__ == "__main__":
    main()
