"""The `clonegate` command."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from typing import TYPE_CHECKING

from gateway.cli_audit import register_audit_commands
from gateway.cli_blocklist import register_blocklist_commands
from gateway.cli_keys import register_keys_commands
from gateway.cli_watermark import register_watermark_commands
from gateway.settings import DatabaseLocation, Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from fastapi import FastAPI

WORKER_HEALTHCHECK_SECONDS = 120


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="clonegate", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--host", help="address to bind (default: CLONEGATE_HOST, loopback)")
    serve.add_argument("--port", type=int, help="port (default: CLONEGATE_PORT, 8000)")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="gateway processes sharing the port, each a replica on the same PostgreSQL database (default 1)",
    )
    serve.set_defaults(run=_serve)

    db = commands.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_upgrade = db_commands.add_parser("upgrade", help="apply migrations")
    db_upgrade.add_argument("revision", nargs="?", default="head")
    # The schema needs only the database's location: prod's other settings may not exist yet.
    db_upgrade.set_defaults(run=_db_upgrade, needs_settings=False)
    db_downgrade = db_commands.add_parser("downgrade", help="revert migrations")
    db_downgrade.add_argument("revision")
    db_downgrade.set_defaults(run=_db_downgrade, needs_settings=False)

    token = commands.add_parser("token", help="mint a dev token (dev mode only)")
    token.add_argument("--sub", required=True, help="subject: the caller's id at the identity provider")
    token.add_argument("--role", required=True, action="append", choices=["owner", "client", "auditor", "admin"])
    token.add_argument("--tenant", help="tenant (required for client tokens)")
    token.add_argument("--name", help="display name")
    token.add_argument("--identity-verified", action="store_true", help="set the identity-assurance claim")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")
    token.set_defaults(run=_token)
    register_audit_commands(commands)
    register_blocklist_commands(commands)
    register_keys_commands(commands)
    register_watermark_commands(commands)

    args = parser.parse_args(argv)
    try:
        # `keys generate` makes what the settings will name, and `db` creates the schema, so both
        # run before the settings are complete.
        settings = load_settings() if getattr(args, "needs_settings", True) else None
        return int(args.run(args, settings))
    except SettingsError as exc:
        print(f"clonegate: {exc}", file=sys.stderr)
        return 2


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    """One process, or ``--workers`` processes under uvicorn's supervisor (which restarts one that
    dies). SIGTERM drains each: no new connections, requests in flight get CLONEGATE_DRAIN_SECONDS
    to finish, the rest are cancelled (gateway/replicas/replica.py)."""
    import uvicorn

    from gateway.app import create_app
    from gateway.logs import configure_logging

    host = args.host or settings.host
    port = args.port or settings.port
    if args.workers < 1:
        raise SettingsError("--workers must be at least 1")
    if args.workers > 1 and settings.resolved_database_url.startswith("sqlite"):
        raise SettingsError("--workers above 1 needs PostgreSQL (CLONEGATE_DATABASE_URL): SQLite has one writer")
    configure_logging(settings.log_level)
    drain = settings.drain_seconds
    if args.workers == 1:
        app = create_app(settings)  # built here, so a bad setting is reported before the banner
        print(_banner(settings, f"http://{host}:{port}"), flush=True)
        uvicorn.run(app, host=host, port=port, log_config=None, access_log=False, timeout_graceful_shutdown=drain)
    else:
        # A worker takes connections from the shared socket as soon as it serves, so it serves
        # only once its engine is warm (a cold one would answer 503 engine_not_ready).
        os.environ["CLONEGATE_ENGINE_WARM_BEFORE_SERVING"] = "true"
        # /metrics of any worker sums every worker's counters (gateway/metrics.py): they write
        # them to one folder, fresh for this run unless the operator names one.
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="clonegate-metrics-"))
        print(_banner(settings, f"http://{host}:{port}", workers=args.workers), flush=True)
        uvicorn.run(
            "gateway.cli:app_from_environment",
            factory=True,
            workers=args.workers,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=drain,
            # Loading the models keeps a starting worker busy; the supervisor must not take that
            # for a hung process and kill it.
            timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
        )
    return 0


def app_from_environment() -> FastAPI:
    """The app of one worker process, from the same CLONEGATE_ environment as its supervisor."""
    from gateway.app import create_app
    from gateway.logs import configure_logging

    settings = load_settings()
    configure_logging(settings.log_level)
    return create_app(settings)


def _banner(settings: Settings, base: str, *, workers: int = 1) -> str:
    """What to try next; in prod only what prod allows (tokens come from the identity provider)."""
    processes = f" ({workers} worker processes)" if workers > 1 else ""
    lines = [
        f"clonegate {settings.mode} mode on {base}{processes}",
        f"  console:   {base}/console/",
        f"  API docs:  {base}/docs",
        f"  ready:     {base}/readyz",
    ]
    if settings.is_dev:
        lines.append("  a token:   TOKEN=$(.venv/bin/clonegate token --sub alice --role owner --name Alice)")
    else:
        source = settings.jwt_jwks_url or settings.jwt_jwks_file
        lines.append(
            f"  tokens:    {'/'.join(settings.jwt_algorithms)} from issuer {settings.jwt_issuer} (keys: {source})"
        )
    lines.append(f'  try it:    curl -H "Authorization: Bearer $TOKEN" {base}/v1/me')
    return "\n".join(lines)


def _db_upgrade(args: argparse.Namespace, _: None) -> int:
    from gateway.db import upgrade

    upgrade(DatabaseLocation().resolved_database_url, args.revision)
    return 0


def _db_downgrade(args: argparse.Namespace, _: None) -> int:
    from gateway.db import downgrade

    downgrade(DatabaseLocation().resolved_database_url, args.revision)
    return 0


def _token(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.auth import Role
    from gateway.dev_tokens import mint_dev_token

    print(
        mint_dev_token(
            settings,
            subject=args.sub,
            roles=[Role(name) for name in args.role],
            tenant=args.tenant,
            display_name=args.name,
            identity_verified=args.identity_verified,
            ttl_seconds=args.ttl,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
