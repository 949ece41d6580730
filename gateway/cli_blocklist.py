"""`clonegate blocklist cohort add`: the operator curates the score-normalisation cohort.

The cohort holds speakers known NOT to be protected; only an operator may change it, because
a cohort seeded with a protected voice's clones would lower that voice's scores. Re-adding a
file whose label is already in the cohort does nothing, so the command is safe to repeat.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sqlalchemy import select

from gateway.settings import Settings

OPERATOR = "operator:cli"


def register_blocklist_commands(commands: argparse._SubParsersAction) -> None:
    blocklist = commands.add_parser("blocklist", help="protected-speaker list administration")
    sub = blocklist.add_subparsers(dest="blocklist_command", required=True)
    cohort = sub.add_parser("cohort", help="the score-normalisation cohort")
    cohort_sub = cohort.add_subparsers(dest="cohort_command", required=True)
    add = cohort_sub.add_parser("add", help="add speakers known not to be protected (one file each)")
    add.add_argument("files", nargs="+", type=Path, help="speech recordings, one speaker per file")
    add.set_defaults(run=_cohort_add)


def _cohort_add(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.audio_io import AudioRejected, decode_audio
    from gateway.components import build_embedder
    from gateway.db import create_db_engine, make_session_factory
    from policy.blocklist.models import CohortSpeaker
    from policy.blocklist.repository import add_cohort_speaker
    from policy.errors import PolicyError

    embedder = build_embedder(settings)
    sessions = make_session_factory(create_db_engine(settings.resolved_database_url))
    added = 0
    with sessions() as session:
        known = set(session.scalars(select(CohortSpeaker.label).where(CohortSpeaker.embedder_name == embedder.name)))
        for path in args.files:
            label = path.stem
            if label in known:
                continue
            try:
                audio = decode_audio(path.read_bytes())
                add_cohort_speaker(
                    session,
                    embedder=embedder,
                    label=label,
                    audio=audio.samples,
                    sample_rate=audio.sample_rate,
                    actor=OPERATOR,
                )
            except (OSError, AudioRejected, PolicyError) as exc:
                session.rollback()
                print(f"clonegate blocklist cohort add: {path}: {exc}", file=sys.stderr)
                return 2
            known.add(label)
            added += 1
        session.commit()
    print(f"cohort: {added} speaker(s) added, {len(known)} in total")
    return 0
