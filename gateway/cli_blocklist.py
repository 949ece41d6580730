"""`clonegate blocklist cohort add` and `clonegate blocklist calibrate`.

The cohort holds speakers known NOT to be protected; only an operator may change it, because
a cohort seeded with a protected voice's clones would lower that voice's scores. Re-adding a
file whose label is already in the cohort does nothing, so the command is safe to repeat.

`reembed` moves the list to the configured model after a model change: the list keeps only each
sample's digest, so the operator supplies the original recordings; entries with a sample
missing stay on the old model and keep the gateway from loading the list (fail closed).

`calibrate` scores a labelled set of recordings (a folder with one sub-folder per speaker, two
or more recordings each) with the configured speaker model against the database's cohort and
writes the thresholds and probability map for that model (``policy.blocklist.calibration``).
The gateway reads the file from CLONEGATE_SPEAKER_CALIBRATION_FILE and refuses it for any other
model. The labelled speakers must be neither cohort members nor in the protected list.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sqlalchemy import select

from gateway.settings import Settings
from policy.blocklist.calibration import (
    DEFAULT_CONSENT_FALSE_MATCH,
    DEFAULT_LIST_SIZE,
    DEFAULT_MAX_OWN_ALLOWED,
    DEFAULT_MAX_WRONGFUL_DENIAL,
)
from policy.blocklist.matching import DEFAULT_COHORT_TOP_K, NORMALIZATIONS

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".webm", ".m4a", ".mp4", ".aac"}

OPERATOR = "operator:cli"


def register_blocklist_commands(commands: argparse._SubParsersAction) -> None:
    blocklist = commands.add_parser("blocklist", help="protected-speaker list administration")
    sub = blocklist.add_subparsers(dest="blocklist_command", required=True)
    cohort = sub.add_parser("cohort", help="the score-normalisation cohort")
    cohort_sub = cohort.add_subparsers(dest="cohort_command", required=True)
    add = cohort_sub.add_parser("add", help="add speakers known not to be protected (one file each)")
    add.add_argument("files", nargs="+", type=Path, help="speech recordings, one speaker per file")
    add.set_defaults(run=_cohort_add)
    calibrate = sub.add_parser("calibrate", help="thresholds for the configured speaker model from a labelled set")
    calibrate.add_argument("labelled", type=Path, help="folder with one sub-folder of recordings per speaker")
    calibrate.add_argument("--output", type=Path, required=True, help="calibration file to write (JSON)")
    calibrate.add_argument("--normalization", choices=list(NORMALIZATIONS), default="as-norm")
    calibrate.add_argument("--cohort-top-k", type=int, default=DEFAULT_COHORT_TOP_K)
    calibrate.add_argument("--no-centering", action="store_true", help="do not centre scores on the cohort mean")
    calibrate.add_argument("--list-size", type=int, default=DEFAULT_LIST_SIZE, help="entries the list is sized for")
    calibrate.add_argument(
        "--max-wrongful-denial",
        type=float,
        default=DEFAULT_MAX_WRONGFUL_DENIAL,
        help="share of innocent voices a list of --list-size entries may deny",
    )
    calibrate.add_argument(
        "--max-own-allowed",
        type=float,
        default=DEFAULT_MAX_OWN_ALLOWED,
        help="share of a protected speaker's own speech that may pass unreviewed",
    )
    calibrate.add_argument(
        "--consent-false-match",
        type=float,
        default=DEFAULT_CONSENT_FALSE_MATCH,
        help="share of different-speaker pairs the consent same-speaker check may accept",
    )
    calibrate.set_defaults(run=_calibrate)
    reembed = sub.add_parser("reembed", help="move the list to the configured speaker model")
    reembed.add_argument("files", nargs="+", type=Path, help="the entries' original sample recordings")
    reembed.set_defaults(run=_reembed)


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


def _labelled_recordings(folder: Path) -> list[tuple[str, Path]]:
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder")
    recordings = [
        (speaker.name, path)
        for speaker in sorted(p for p in folder.iterdir() if p.is_dir())
        for path in sorted(speaker.iterdir())
        if path.suffix.lower() in AUDIO_SUFFIXES
    ]
    speakers = {name for name, _ in recordings}
    if len(speakers) < 2:
        raise ValueError(f"{folder} needs sub-folders for at least two speakers")
    return recordings


def _calibrate(args: argparse.Namespace, settings: Settings) -> int:
    import numpy as np

    from gateway.audio_io import AudioRejected, decode_audio
    from gateway.components import build_embedder
    from gateway.db import create_db_engine, make_session_factory
    from policy.blocklist.calibration import fit_calibration, labelled_trial_scores
    from policy.blocklist.matching import Cohort
    from policy.blocklist.repository import load_cohort_embeddings
    from policy.errors import PolicyError

    embedder = build_embedder(settings)
    try:
        recordings = _labelled_recordings(args.labelled)
        labels, vectors = [], []
        for label, path in recordings:
            audio = decode_audio(path.read_bytes())
            vectors.append(embedder.embed(audio.samples, sample_rate=audio.sample_rate))
            labels.append(label)
        sessions = make_session_factory(create_db_engine(settings.resolved_database_url))
        with sessions() as session:
            cohort_rows = load_cohort_embeddings(session, embedder_name=embedder.name, dimension=embedder.dimension)
        cohort = Cohort(cohort_rows, top_k=args.cohort_top_k, center=not args.no_centering)
        targets, impostors = labelled_trial_scores(
            np.stack(vectors), labels, cohort=cohort, normalization=args.normalization
        )
        calibration = fit_calibration(
            targets=targets,
            impostors=impostors,
            model_id=embedder.name,
            normalization=args.normalization,
            cohort_top_k=args.cohort_top_k,
            cohort_centering=not args.no_centering,
            list_size=args.list_size,
            max_wrongful_denial=args.max_wrongful_denial,
            max_own_allowed=args.max_own_allowed,
            consent_false_match=args.consent_false_match,
            source=(
                f"clonegate blocklist calibrate: {len(set(labels))} speakers, {len(labels)} recordings, "
                f"{targets.size} target / {impostors.size} impostor trials, cohort of {cohort_rows.shape[0]}; "
                f"list size {args.list_size}, wrongful denials <= {args.max_wrongful_denial}, "
                f"own speech allowed <= {args.max_own_allowed}, consent false matches <= {args.consent_false_match}"
            ),
        )
        args.output.write_text(calibration.to_json(), encoding="utf-8")
    except (OSError, ValueError, AudioRejected, PolicyError) as exc:
        print(f"clonegate blocklist calibrate: {exc}", file=sys.stderr)
        return 2
    denied = float(np.mean(targets >= calibration.deny))
    allowed = float(np.mean(targets < calibration.review))
    print(
        f"calibration for {embedder.name} written to {args.output}: deny >= {calibration.deny}, "
        f"review >= {calibration.review}, consent match >= {calibration.consent_match}; on this set (in-sample) "
        f"own speech denied {denied:.1%}, allowed {allowed:.1%}, consent accepted "
        f"{float(np.mean(targets >= calibration.consent_match)):.1%}; set CLONEGATE_SPEAKER_CALIBRATION_FILE={args.output}"
    )
    return 0


def _reembed(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.audio_io import AudioRejected, decode_audio
    from gateway.components import build_embedder
    from gateway.db import create_db_engine, make_session_factory
    from policy.blocklist.reembedding import reembed_entries
    from policy.blocklist.repository import AudioSample
    from policy.errors import PolicyError

    embedder = build_embedder(settings)
    sessions = make_session_factory(create_db_engine(settings.resolved_database_url))
    try:
        recordings = []
        for path in args.files:
            audio = decode_audio(path.read_bytes())
            recordings.append(AudioSample(audio=audio.samples, sample_rate=audio.sample_rate))
        with sessions() as session:
            report = reembed_entries(session, embedder=embedder, recordings=recordings, actor=OPERATOR)
            session.commit()
    except (OSError, AudioRejected, PolicyError) as exc:
        print(f"clonegate blocklist reembed: {exc}", file=sys.stderr)
        return 2
    print(
        f"{embedder.name}: {len(report.moved)} entries re-embedded, {report.already} already on it, "
        f"{len(report.missing)} missing samples"
    )
    for entry_id, count in sorted(report.missing.items()):
        print(f"entry {entry_id}: {count} sample(s) not among the files; it stays on its old model", file=sys.stderr)
    return 1 if report.missing else 0
