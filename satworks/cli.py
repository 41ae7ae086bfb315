"""The ``satworks`` command: the edge where settings are read and handed to everything else."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

from pydantic import ValidationError

from satworks import __version__, logs
from satworks.errors import SatworksError
from satworks.settings import Settings
from satworks.webhooks import cli as webhooks_cli


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="satworks", description="satworks: jobs, payments and raffles for apps.")
    parser.add_argument("--version", action="version", version=f"satworks {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("migrate", help="create the database if needed and migrate it to head")
    web = sub.add_parser("web", help="run the intake API")
    web.add_argument("--processes", type=_positive, default=1, help="serving processes sharing the port (SO_REUSEPORT)")
    sub.add_parser("scheduler", help="run the scheduler of recurring tasks (one leader among all that run)")
    sub.add_parser("lnd-listener", help="follow lnd's invoice stream and enqueue a check per settlement")
    sub.add_parser("up", help="migrate, then run every process of the Procfile with honcho (services must be up)")
    worker = sub.add_parser("worker", help="run a Dramatiq worker pool")
    worker.add_argument("--queues", default="critical,default,bulk", help="comma-separated: critical,default,bulk")
    worker.add_argument("--processes", type=_positive, default=2)
    worker.add_argument("--threads", type=_positive, default=8)
    worker.add_argument("--supervise", action="store_true", help="restart the pool when a worker process dies")
    apps = sub.add_parser("apps", help="manage calling apps and their API keys")
    apps_sub = apps.add_subparsers(dest="apps_command", metavar="APPS_COMMAND")
    create = apps_sub.add_parser("create", help="create an app and print its API key once")
    create.add_argument("name")
    create.add_argument("--admin", action="store_true", help="also grant the admin scope")
    create.add_argument("--rate-limit-per-minute", type=int, default=None)
    create.add_argument("--quiet", action="store_true", help="print only the key")
    create.add_argument("--daily-report", action="store_true", help="opt in to the daily reports (scheduler)")
    create.add_argument("--report-email", metavar="ADDR", help="email the daily reports to ADDR (with --daily-report)")
    apps_sub.add_parser("list", help="list every app: name, scopes, active or revoked, created")
    revoke = apps_sub.add_parser(
        "revoke", help="revoke the active app NAME: its key stops working (the name is free again)"
    )
    revoke.add_argument("name")
    daily = apps_sub.add_parser("daily-report", help="opt an app in to (on) or out of (off) the daily reports")
    daily.add_argument("name")
    daily.add_argument("state", choices=("on", "off"))
    daily.add_argument("--email", metavar="ADDR", help="email the daily reports to ADDR from now on")
    devnode = sub.add_parser("devnode", help="run a development node simulator (regtest)")
    devnode.add_argument("kind", choices=("bitcoind", "lnd", "smtp", "webhook-receiver"))
    devnode.add_argument("args", nargs=argparse.REMAINDER, help="the simulator's own options (--help)")
    draw = sub.add_parser("draw", help="provably fair raffle draws")
    draw_sub = draw.add_subparsers(dest="draw_command", required=True)
    verify = draw_sub.add_parser(
        "verify",
        help="recompute a draw's commitment and winners from its proof; exit 0 match, 1 mismatch, 2 cannot verify",
    )
    verify.add_argument("proof", help="the proof JSON (GET /v1/draws/{id}/proof), or - for standard input")
    verify.add_argument("--node", metavar="URL", help="Bitcoin Core JSON-RPC URL: also re-read the beacon block hash")
    verify.add_argument("--timeout-s", type=float, default=10.0, help="deadline of the node call (default 10)")
    webhooks_cli.add_parser(sub)
    sub.add_parser("sweep-payments", help="check every open on-chain payment request now (for ops)")
    enqueue = sub.add_parser("enqueue", help="enqueue a job as an app, platform types too (for ops)")
    enqueue.add_argument("type")
    enqueue.add_argument("--payload", default="{}", help="the job's payload, a JSON object (default {})")
    enqueue.add_argument("--priority", choices=("high", "normal", "low"), default=None)
    enqueue.add_argument("--app", required=True, help="the app the job belongs to")
    args = parser.parse_args(argv)
    if args.command is None:  # bare `satworks`: what it can do
        parser.print_help()
        return 2
    if args.command == "apps" and args.apps_command is None:
        apps.print_help()
        return 2

    if args.command == "devnode" and args.kind == "lnd":  # `satworks devnode lnd [pay] ...`
        from satworks.devnodes.lnd.cli import main as lnd_main

        return lnd_main(args.args)
    if args.command == "devnode":  # a simulator: it needs none of satworks' settings
        if args.kind == "smtp":
            from satworks.devnodes.smtp.main import main as smtp_main

            smtp_main(args.args)
            return 0
        if args.kind == "webhook-receiver":
            from satworks.devnodes.webhook_receiver import main as receiver_main

            receiver_main(args.args)
            return 0
        from satworks.devnodes.bitcoind import server

        server.main(args.args)
        return 0
    if args.command == "draw":  # a player's tool: the proof file (and a node) is all it needs
        return _draw_verify(args.proof, args.node, args.timeout_s)
    try:
        settings = Settings()
    except ValidationError as exc:  # a bad setting: its variable's name, no traceback
        for error in exc.errors(include_url=False):
            name = "SATWORKS_" + "_".join(map(str, error["loc"])).upper() if error["loc"] else "settings"
            print(f"error: {name}: {error['msg']}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level)
    try:
        return _run(args, settings)
    except SatworksError as exc:  # the CLI's boundary: a clear line (and one per problem), no traceback
        print(f"error: {exc.message}", file=sys.stderr)
        for problem in exc.details if isinstance(exc.details, list) else []:
            if isinstance(problem, dict) and problem.get("msg"):
                where = ".".join(str(part) for part in problem.get("loc", ())) or "input"
                print(f"  {where}: {problem['msg']}", file=sys.stderr)
        if isinstance(exc.details, dict) and isinstance(exc.details.get("known_types"), list):
            print(f"  known types: {', '.join(exc.details['known_types'])}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "migrate":
        from satworks.db.migrate import ensure_database, upgrade

        created = ensure_database(settings.database_url)
        upgrade(settings.database_url)
        print("database created and migrated" if created else "database migrated")
    elif args.command == "up":
        from satworks.db.migrate import ensure_database, upgrade

        ensure_database(settings.database_url)
        upgrade(settings.database_url)
        honcho = shutil.which("honcho", path=str(Path(sys.executable).parent)) or shutil.which("honcho")
        if honcho is None:
            print("honcho is not installed: pip install 'satworks[up]'", file=sys.stderr)
            return 2
        os.execv(honcho, [honcho, "start", "-f", "Procfile"])  # noqa: S606 - replaces this process
    elif args.command == "web":
        from satworks.http.serve import serve

        return serve(settings, args.processes)
    elif args.command == "scheduler":
        from satworks.scheduler.service import run

        return run(settings)
    elif args.command == "lnd-listener":
        from satworks.listener.lnd import run as run_listener

        return run_listener(settings)
    elif args.command == "worker":
        return _run_worker(settings, args.queues, args.processes, args.threads, supervise=args.supervise)
    elif args.command == "apps":
        return _apps(settings, args)
    elif args.command == "webhooks":
        return webhooks_cli.run(settings, args)
    elif args.command == "sweep-payments":
        from satworks.ops import sweep_payments

        print(json.dumps(sweep_payments(settings)))
    elif args.command == "enqueue":
        from satworks import json_input
        from satworks.ops import enqueue_job

        try:
            payload = json_input.parse(args.payload)
        except json_input.JsonRefused as exc:
            print(f"error: --payload: {exc.message}", file=sys.stderr)
            return 2
        print(json.dumps(enqueue_job(settings, args.app, args.type, payload, args.priority)))
    return 0


def _draw_verify(source: str, node_url: str | None, timeout_s: float) -> int:
    """One line and an exit code: 0 match, 1 mismatch, 2 the proof is unreadable or the node cannot be asked."""
    from pydantic import ValidationError

    from satworks.draws import DrawProof, verify

    if node_url is not None and not _is_http_url(node_url):  # not echoed: it may hold a password
        print("error: --node is not an http(s)://[user:password@]host[:port] URL", file=sys.stderr)
        return 2
    try:
        raw = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
        proof = DrawProof.model_validate_json(raw)
    except OSError as exc:
        print(f"error: cannot read {source}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        problems = exc.errors(include_url=False, include_context=False, include_input=False)
        where = ".".join(str(part) for part in problems[0]["loc"]) or "document"
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        print(f"error: {source} is not a draw proof: {where}: {problems[0]['msg']}{more}", file=sys.stderr)
        return 2
    result = verify(proof)
    if result.ok and node_url is not None:
        from satworks.integrations.bitcoin.rpc import BitcoinRpc

        height, claimed = proof.beacon.height, proof.beacon.block_hash
        try:
            actual = BitcoinRpc(node_url, timeout_s=timeout_s).get_block_hash(height)
        except SatworksError as exc:
            print(f"error: cannot check the block hash with the node: {exc.message}", file=sys.stderr)
            return 2
        if actual != claimed:
            node_says = f"has {actual}" if actual else "has no block"
            print(f"mismatch: the node {node_says} at height {height}, the proof says {claimed}")
            return 1
        print(f"match: {result.reason}; the node agrees on the block hash")
        return 0
    print(f"{'match' if result.ok else 'mismatch'}: {result.reason}")
    return 0 if result.ok else 1


def _is_http_url(url: str) -> bool:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def _apps(settings: Settings, args: argparse.Namespace) -> int:
    from satworks.db import apps
    from satworks.db.engine import sync_engine
    from satworks.emails.addresses import normalize_address

    address = {"create": getattr(args, "report_email", None), "daily-report": getattr(args, "email", None)}.get(
        args.apps_command
    )
    report_email = normalize_address(address) if address is not None else None  # InvalidEmailAddress: exit 1
    engine = sync_engine(settings.database_url, pool_size=1)
    with engine.begin() as conn:
        if args.apps_command == "create":
            key = apps.create(
                conn,
                args.name,
                admin=args.admin,
                rate_limit_per_minute=args.rate_limit_per_minute,
                daily_report=args.daily_report,
                report_email=report_email,
            )
            print(key if args.quiet else f"app {args.name!r} created; its API key (shown once):\n{key}")
        elif args.apps_command == "list":
            for app in apps.listing(conn):
                state = "revoked" if app.revoked_at else "active"
                print(f"{app.name}\t{','.join(app.scopes)}\t{state}\t{app.created_at:%Y-%m-%d %H:%M}")
        elif args.apps_command == "daily-report":
            apps.set_daily_report(conn, args.name, args.state == "on", report_email=report_email)
            print(
                f"app {args.name!r}: daily report {args.state}"
                + (f", emailed to {report_email}" if report_email else "")
            )
        else:
            apps.revoke(conn, args.name)
            print(f"app {args.name!r} revoked")
    engine.dispose()
    return 0


def _run_worker(settings: Settings, queues: str, processes: int, threads: int, *, supervise: bool) -> int:
    from satworks.jobs.base import QUEUES

    names = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = set(names) - set(QUEUES)
    if unknown or not names:
        print(f"unknown queues: {sorted(unknown)}; choose from {list(QUEUES)}", file=sys.stderr)
        return 2
    if _port_taken(settings.worker_metrics_host, settings.worker_metrics_port):
        # The directory below belongs to the pool serving that port: wiping it would drop its counters.
        print(
            f"error: SATWORKS_WORKER_METRICS_PORT {settings.worker_metrics_port} on {settings.worker_metrics_host}"
            " is in use (another pool?): give each pool a port of its own",
            file=sys.stderr,
        )
        return 2
    # Fresh multiprocess metrics directory per pool, set before any worker imports prometheus_client.
    metrics_dir = Path(tempfile.gettempdir()) / f"satworks-metrics-{settings.worker_metrics_port}"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    dramatiq = shutil.which("dramatiq", path=str(Path(sys.executable).parent)) or shutil.which("dramatiq")
    if dramatiq is None:
        print("the dramatiq command is not installed", file=sys.stderr)
        return 2
    argv = [
        dramatiq,
        "satworks.workers.main",
        "--skip-logging",  # satworks.logs formats every line (JSON); Dramatiq's own text format is not mixed in
        "--processes",
        str(processes),
        "--threads",
        str(threads),
        "--queues",
        *[settings.queue_prefix + n for n in names],
    ]
    if supervise:
        from satworks.workers.supervisor import supervise as run_supervised

        return run_supervised(argv)
    return _run_dramatiq(argv)


def _run_dramatiq(argv: list[str]) -> int:
    """Dramatiq's CLI in this process rather than exec'd: its worker processes fork from here and
    inherit what this command already imported (pydantic, the settings), so a pool starts sooner.
    ``prometheus_client`` is first imported after ``PROMETHEUS_MULTIPROC_DIR`` is set, as it must be."""
    from dramatiq import cli as dramatiq_cli

    sys.argv = argv  # what Dramatiq execs again when SIGHUP asks it to reload
    parser = dramatiq_cli.make_argument_parser()  # type: ignore[no-untyped-call]
    code: int = dramatiq_cli.main(parser.parse_args(argv[1:]))  # type: ignore[no-untyped-call]
    return code


METRICS_PORT_GRACE_S = 3.0
"""How long ``satworks worker`` waits for its metrics port to be let go (the metrics process of a pool
that was just stopped or killed ends within half a second) before it refuses to start."""


def _port_taken(host: str, port: int, *, grace_s: float = METRICS_PORT_GRACE_S) -> bool:
    """Whether something listens on ``host:port`` (bound as the metrics server binds it) for ``grace_s``."""
    deadline = time.monotonic() + grace_s
    while True:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError:
                pass
            else:
                return False
        if time.monotonic() >= deadline:
            return True
        time.sleep(0.1)  # poll interval, bounded by the deadline


if __name__ == "__main__":
    sys.exit(main())
