"""``satworks devnode lnd``: simulated lnd nodes sharing one network, and ``pay`` to pay from one.

satworks devnode lnd --datadir .local/lnd --port 10009 --nodes merchant,payer
    merchant on 127.0.0.1:10009, payer on 127.0.0.1:10010; each node keeps its files in
    <datadir>/<alias>/: tls.cert, admin.macaroon (binary) and node.json (rpcserver, pubkey, paths)
satworks devnode lnd pay [--node payer] PAYMENT_REQUEST
    pays through the node's real gRPC Router.SendPaymentV2 and prints the final status
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import sys
from pathlib import Path

from satworks import logs
from satworks.errors import SatworksError

DEFAULT_DATADIR = ".local/lnd"
DEFAULT_PORT = 10009  # lnd's gRPC port
_ALIAS = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["pay"]:
        return pay(args[1:])
    return serve(args)


def serve(argv: list[str]) -> int:
    from satworks.devnodes.lnd.node import HRP_NETWORK

    parser = argparse.ArgumentParser(
        prog="satworks devnode lnd", description="Simulated lnd nodes (gRPC over TLS) on one network; `pay` pays."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="the first node's port; the next ones follow (0: free ports)"
    )
    parser.add_argument("--nodes", default="merchant,payer", help="comma-separated aliases")
    parser.add_argument("--datadir", default=DEFAULT_DATADIR, help="one directory per node inside")
    parser.add_argument("--network", choices=sorted(HRP_NETWORK), default="regtest")
    parser.add_argument("--balance-sat", type=int, default=100_000_000, help="each node's spendable balance")
    parser.add_argument("--payment-delay-ms", type=int, default=0, help="how long payments stay IN_FLIGHT")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    aliases = [a.strip() for a in args.nodes.split(",") if a.strip()]
    bad = [a for a in aliases if not _ALIAS.match(a)]
    if not aliases or bad or len(set(aliases)) != len(aliases):
        parser.error(f"--nodes needs distinct aliases of a-z, 0-9, _ and - (got {args.nodes!r})")
    logs.configure(args.log_level)
    asyncio.run(_serve(args, aliases))
    return 0


async def _serve(args: argparse.Namespace, aliases: list[str]) -> None:
    from satworks.devnodes.lnd.node import Network, NodeConfig, SimNode

    network = Network()
    nodes = [
        SimNode(
            NodeConfig(
                alias=alias,
                datadir=Path(args.datadir) / alias,
                network=args.network,
                balance_sat=args.balance_sat,
                htlc_delay_s=args.payment_delay_ms / 1000,
            ),
            network,
        )
        for alias in aliases
    ]
    for i, node in enumerate(nodes):
        port = await node.start(args.host, args.port + i if args.port else 0)
        print(f"lnd simulator {node.config.alias!r} on {args.host}:{port} ({node.files.dir})", flush=True)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    for node in nodes:
        await node.stop()
        node.close()


def pay(argv: list[str]) -> int:
    from satworks.integrations.lnd.client import LndClient

    parser = argparse.ArgumentParser(
        prog="satworks devnode lnd pay", description="Pay a BOLT11 request from a node with Router.SendPaymentV2."
    )
    parser.add_argument("payment_request")
    parser.add_argument("--datadir", default=DEFAULT_DATADIR)
    parser.add_argument("--node", default="payer", help="the simulated node that pays (its <datadir>/<node>/node.json)")
    parser.add_argument("--rpcserver", help="HOST:PORT of any lnd, instead of --node (with the two paths below)")
    parser.add_argument("--tlscertpath")
    parser.add_argument("--macaroonpath")
    parser.add_argument("--amt-sat", type=int, default=0, help="only for a request without an amount")
    parser.add_argument("--timeout", type=int, default=60, help="seconds lnd may try")
    args = parser.parse_args(argv)
    try:
        if args.rpcserver:
            if not (args.tlscertpath and args.macaroonpath):
                parser.error("--rpcserver needs --tlscertpath and --macaroonpath")
            target, cert, macaroon = args.rpcserver, args.tlscertpath, args.macaroonpath
        else:
            target, cert, macaroon = _simulated_node(Path(args.datadir) / args.node)
        with LndClient(target, tls_cert_path=cert, macaroon_path=macaroon, timeout_s=10) as client:
            payment = client.pay(args.payment_request, amt_msat=args.amt_sat * 1000, timeout_s=args.timeout)
    except SatworksError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    result = {
        "status": payment.status.value,
        "failure_reason": payment.failure_reason.value,
        "payment_hash": payment.payment_hash,
        "value_msat": payment.value_msat,
        "fee_msat": payment.fee_msat,
        "preimage": payment.preimage,
    }
    print(json.dumps(result))
    return 0 if payment.status == "SUCCEEDED" else 1


def _simulated_node(node_dir: Path) -> tuple[str, str, str]:
    from satworks.integrations.lnd.errors import LndConfigError

    try:
        info = json.loads((node_dir / "node.json").read_text())
        return str(info["rpcserver"]), str(info["tlscertpath"]), str(info["macaroonpath"])
    except (OSError, ValueError, KeyError):
        raise LndConfigError(f"no simulated lnd node in {node_dir} (is `satworks devnode lnd` running?)") from None
