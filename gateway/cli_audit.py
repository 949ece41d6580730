"""``clonegate audit export | verify | check | public-key``.

``verify`` needs no database, no network and no settings: an auditor runs it on a bundle
with the log's published verifier key. ``python -m gateway.cli_audit verify ...`` runs it
without importing the rest of the gateway (faster start on a small machine).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from audit.bundle import archive_bundle, read_checkpoint_file, verify_bundle
from audit.checkpoint import VerifierKey
from audit.errors import AuditError

EXIT_FAILED = 1


def register_audit_commands(commands: argparse._SubParsersAction) -> None:
    audit = commands.add_parser("audit", help="tamper-evident audit log")
    sub = audit.add_subparsers(dest="audit_command", required=True)

    export = sub.add_parser("export", help="write an export bundle (directory, or a .tar file)")
    export.add_argument("destination", type=Path)
    export.add_argument("--tenant")
    export.add_argument("--actor", help="actor token subject")
    export.add_argument("--voice")
    export.add_argument("--action")
    export.set_defaults(run=_export)

    verify = sub.add_parser("verify", help="verify a bundle offline (no database, no network)")
    verify.add_argument("bundle", type=Path)
    verify.add_argument("--key", help="the log's verifier key, or a file holding it (GET /v1/audit/public-key)")
    verify.add_argument("--previous-checkpoint", type=Path, help="a signed checkpoint kept from an earlier visit")
    verify.add_argument("--strict", action="store_true", help="also parse every event fully (slower)")
    verify.add_argument("--workers", type=int, default=1, help="processes that hash and check lines (default 1)")
    verify.add_argument(
        "--unsafe-trust-bundle-key",
        action="store_true",
        help="UNSAFE: trust the key shipped inside the bundle (detects no key substitution)",
    )
    verify.set_defaults(run=_verify)

    check = sub.add_parser("check", help="recompute the stored log and check it against its signed checkpoints")
    check.set_defaults(run=_check)

    public_key = sub.add_parser("public-key", help="print the checkpoint verifier key")
    public_key.set_defaults(run=_public_key)


def _parse_key(text: str) -> VerifierKey:
    path = Path(text)
    if path.is_file():
        text = path.read_text()
    return VerifierKey.parse(text)


def _verify(args: argparse.Namespace, _settings=None) -> int:
    try:
        if args.key:
            key = _parse_key(args.key)
        elif args.unsafe_trust_bundle_key:
            key = _bundle_key(args.bundle)
            print("WARNING: UNSAFE: trusting the key inside the bundle; a re-signed bundle would pass", file=sys.stderr)
        else:
            print("clonegate audit verify: --key is required (the log's published verifier key)", file=sys.stderr)
            return 2
        previous = read_checkpoint_file(args.previous_checkpoint) if args.previous_checkpoint else None
        report = verify_bundle(
            args.bundle, trusted_key=key, previous_checkpoint=previous, strict=args.strict, workers=max(1, args.workers)
        )
    except (AuditError, OSError, UnicodeDecodeError) as exc:
        code = getattr(exc, "code", "unreadable")
        print(f"FAILED {code}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print("\n".join(report.lines()))
    return 0


def _bundle_key(bundle: Path) -> VerifierKey:
    import tarfile

    if bundle.is_dir():
        return VerifierKey.parse((bundle / "public_key").read_text())
    with tarfile.open(bundle, "r:*") as tar:
        handle = tar.extractfile("public_key")
        if handle is None:
            raise OSError(f"{bundle} holds no public_key file")
        return VerifierKey.parse(handle.read().decode())


def _sessions(settings):
    from gateway.db import create_db_engine, make_session_factory

    return make_session_factory(create_db_engine(settings.resolved_database_url))


def _export(args: argparse.Namespace, settings) -> int:
    from audit.export import export_bundle
    from audit.store import EventFilter
    from gateway.keyfiles import audit_signing_key

    key = audit_signing_key(settings)
    filters = {"tenant": args.tenant, "actor_sub": args.actor, "voice_id": args.voice, "action": args.action}
    event_filter = EventFilter(**filters) if any(v is not None for v in filters.values()) else None
    try:
        with _sessions(settings)() as session:
            if args.destination.suffix == ".tar":
                with tempfile.TemporaryDirectory() as workspace:
                    count = export_bundle(
                        session, directory=Path(workspace) / "bundle", verifier=key.verifier, event_filter=event_filter
                    )
                    archive_bundle(Path(workspace) / "bundle", args.destination)
            else:
                count = export_bundle(
                    session, directory=args.destination, verifier=key.verifier, event_filter=event_filter
                )
    except AuditError as exc:
        print(f"FAILED {exc.code}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"exported {count} events to {args.destination}")
    return 0


def _check(args: argparse.Namespace, settings) -> int:
    from audit.integrity import check_log_integrity
    from gateway.keyfiles import audit_signing_key

    key = audit_signing_key(settings)
    try:
        with _sessions(settings)() as session:
            report = check_log_integrity(session, verifier=key.verifier, origin=key.name)
    except AuditError as exc:
        print(f"FAILED {exc.code}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(
        f"OK  {report.tree_size} events, {report.checkpoints} signed checkpoints and {report.nodes_checked}"
        f" proof nodes consistent; {report.pending} events waiting for integration"
    )
    return 0


def _public_key(args: argparse.Namespace, settings) -> int:
    from gateway.keyfiles import audit_signing_key

    print(audit_signing_key(settings).verifier.encode())
    return 0


def main(argv: list[str] | None = None) -> int:
    """``verify`` on its own: no settings, no database."""
    parser = argparse.ArgumentParser(prog="python -m gateway.cli_audit")
    commands = parser.add_subparsers(dest="command", required=True)
    register_audit_commands(commands)
    args = parser.parse_args(["audit", *(argv if argv is not None else sys.argv[1:])])
    if args.audit_command != "verify":
        parser.error("only verify runs without the gateway; use `clonegate audit ...`")
    return _verify(args)


if __name__ == "__main__":
    sys.exit(main())
