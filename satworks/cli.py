"""The ``satworks`` command: the edge where settings are read and handed to everything else."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from satworks import logs
from satworks.errors import SatworksError
from satworks.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="satworks", description="satworks: jobs, payments and raffles for apps.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="create the database if needed and migrate it to head")
    sub.add_parser("web", help="run the intake API")
    sub.add_parser("up", help="migrate, then run every process of the Procfile with honcho (services must be up)")
    worker = sub.add_parser("worker", help="run a Dramatiq worker pool")
    worker.add_argument("--queues", default="critical,default,bulk", help="comma-separated: critical,default,bulk")
    worker.add_argument("--processes", type=int, default=2)
    worker.add_argument("--threads", type=int, default=8)
    worker.add_argument("--supervise", action="store_true", help="restart the pool when a worker process dies")
    apps = sub.add_parser("apps", help="manage calling apps and their API keys")
    apps_sub = apps.add_subparsers(dest="apps_command", required=True)
    create = apps_sub.add_parser("create", help="create an app and print its API key once")
    create.add_argument("name")
    create.add_argument("--admin", action="store_true", help="also grant the admin scope")
    create.add_argument("--rate-limit-per-minute", type=int, default=None)
    create.add_argument("--quiet", action="store_true", help="print only the key")
    apps_sub.add_parser("list")
    revoke = apps_sub.add_parser("revoke")
    revoke.add_argument("name")
    devnode = sub.add_parser("devnode", help="run a development node simulator (regtest)")
    devnode.add_argument("kind", choices=("bitcoind",))
    devnode.add_argument("args", nargs=argparse.REMAINDER, help="the simulator's own options (--help)")
    sub.add_parser("sweep-payments", help="check every open on-chain payment request now (for ops)")
    enqueue = sub.add_parser("enqueue", help="enqueue a job as an app (for ops)")
    enqueue.add_argument("type")
    enqueue.add_argument("--payload", default="{}")
    enqueue.add_argument("--priority", choices=("high", "normal", "low"), default=None)
    enqueue.add_argument("--app", required=True, help="the app the job belongs to")
    args = parser.parse_args(argv)

    if args.command == "devnode":  # a simulator: it needs none of satworks' settings
        from satworks.devnodes.bitcoind import server

        server.main(args.args)
        return 0
    settings = Settings()
    logs.configure(settings.log_level)
    try:
        return _run(args, settings)
    except SatworksError as exc:  # the CLI's boundary: a clear line, no traceback
        print(f"error: {exc.message}", file=sys.stderr)
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
            print("honcho is not installed", file=sys.stderr)
            return 2
        os.execv(honcho, [honcho, "start", "-f", "Procfile"])  # noqa: S606 - replaces this process
    elif args.command == "web":
        from aiohttp import web

        from satworks.http.app import create_app

        web.run_app(
            create_app(settings),
            host=settings.http_host,
            port=settings.http_port,
            access_log=None,
            print=lambda *_: print(f"satworks web on http://{settings.http_host}:{settings.http_port}"),
        )
    elif args.command == "worker":
        return _exec_worker(settings, args.queues, args.processes, args.threads, supervise=args.supervise)
    elif args.command == "apps":
        return _apps(settings, args)
    elif args.command == "sweep-payments":
        from satworks.ops import sweep_payments

        print(json.dumps(sweep_payments(settings)))
    elif args.command == "enqueue":
        from satworks.ops import enqueue_job

        print(json.dumps(enqueue_job(settings, args.app, args.type, json.loads(args.payload), args.priority)))
    return 0


def _apps(settings: Settings, args: argparse.Namespace) -> int:
    from satworks.db import apps
    from satworks.db.engine import sync_engine

    engine = sync_engine(settings.database_url, pool_size=1)
    with engine.begin() as conn:
        if args.apps_command == "create":
            key = apps.create(conn, args.name, admin=args.admin, rate_limit_per_minute=args.rate_limit_per_minute)
            print(key if args.quiet else f"app {args.name!r} created; its API key (shown once):\n{key}")
        elif args.apps_command == "list":
            for row in apps.listing(conn):
                state = "revoked" if row["revoked_at"] else "active"
                print(f"{row['name']}\t{','.join(row['scopes'])}\t{state}\t{row['created_at']:%Y-%m-%d %H:%M}")
        else:
            apps.revoke(conn, args.name)
            print(f"app {args.name!r} revoked")
    engine.dispose()
    return 0


def _exec_worker(settings: Settings, queues: str, processes: int, threads: int, *, supervise: bool) -> int:
    from satworks.jobs.base import QUEUES

    names = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = set(names) - set(QUEUES)
    if unknown or not names:
        print(f"unknown queues: {sorted(unknown)}; choose from {list(QUEUES)}", file=sys.stderr)
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
    os.execv(dramatiq, argv)  # noqa: S606 - replaces this process with the Dramatiq CLI
    return 0


if __name__ == "__main__":
    sys.exit(main())
