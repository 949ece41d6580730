"""``clonegate watermark embed | detect`` with the configured key and the stack the gateway runs
(gateway/watermarking.py builds it)."""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from pathlib import Path

import numpy as np

from gateway.detection.verdict import verdict
from gateway.settings import Settings
from gateway.watermarking import build_watermark_stack
from watermark import PAYLOAD_BYTES, WatermarkError

EXIT_NOT_DETECTED = 1
EXIT_ERROR = 2
WRITABLE = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".mp3": "MP3"}


def register_watermark_commands(commands: argparse._SubParsersAction) -> None:
    wm = commands.add_parser("watermark", help="embed or detect clonegate's watermarks with the configured key")
    sub = wm.add_subparsers(dest="watermark_command", required=True)
    embed = sub.add_parser("embed", help="mark an audio file (wav, flac, mp3, ogg in; wav, flac, ogg, mp3 out)")
    embed.add_argument("input", type=Path)
    embed.add_argument("output", type=Path)
    embed.add_argument("--payload", help=f"{PAYLOAD_BYTES}-byte identifier in hex (default: random, printed)")
    embed.set_defaults(run=_embed)
    detect = sub.add_parser("detect", help="look for every configured watermark; exit 0 if found, 1 if not")
    detect.add_argument("input", type=Path)
    detect.add_argument("--json", action="store_true", help="print the full result as JSON")
    detect.set_defaults(run=_detect)


def _read(path: Path):
    from gateway.audio_io import decode_audio

    return decode_audio(path.read_bytes())


def _embed(args: argparse.Namespace, settings: Settings) -> int:
    try:
        payload = bytes.fromhex(args.payload) if args.payload else secrets.token_bytes(PAYLOAD_BYTES)
    except ValueError:
        print(f"clonegate watermark embed: --payload must be {PAYLOAD_BYTES * 2} hex digits", file=sys.stderr)
        return EXIT_ERROR
    fmt = WRITABLE.get(args.output.suffix.lower())
    if fmt is None:
        print(f"clonegate watermark embed: output must end in {', '.join(WRITABLE)}", file=sys.stderr)
        return EXIT_ERROR
    try:
        stack = build_watermark_stack(settings)
        audio = _read(args.input)
        marked = stack.embed(
            np.asarray(audio.samples, dtype=np.float64), sample_rate=audio.sample_rate, payload=payload
        )
        import soundfile

        soundfile.write(args.output, marked.astype(np.float32), audio.sample_rate, format=fmt)
    except (WatermarkError, OSError) as exc:
        print(f"clonegate watermark embed: {getattr(exc, 'code', 'io_error')}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # the gateway's audio decoder raises its own AudioRejected
        code = getattr(exc, "code", None)
        if code is None:
            raise
        print(f"clonegate watermark embed: {code}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(f"marked {args.output} with payload {payload.hex()} ({', '.join(stack.names)})")
    return 0


def _detect(args: argparse.Namespace, settings: Settings) -> int:
    try:
        stack = build_watermark_stack(settings)
        audio = _read(args.input)
        found = stack.detect(np.asarray(audio.samples, dtype=np.float64), sample_rate=audio.sample_rate)
    except (WatermarkError, OSError) as exc:
        print(f"clonegate watermark detect: {getattr(exc, 'code', 'io_error')}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:
        code = getattr(exc, "code", None)
        if code is None:
            raise
        print(f"clonegate watermark detect: {code}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    answer = {**found.as_json(), "verdict": verdict(found)}
    if args.json:
        print(json.dumps(answer))
    else:
        for d in found.schemes:
            fpp = "n/a" if d.false_positive_probability is None else f"{d.false_positive_probability:.3g}"
            payload = (
                f", payload {d.payload.hex()} ({'verified' if d.payload_verified else d.payload_source or 'unverified'})"
                if d.payload is not None
                else ""
            )
            counted = (
                "" if d.false_positive_probability is not None else " [no computed bound: not part of the verdict]"
            )
            print(
                f"{d.scheme}: {'DETECTED' if d.detected else 'not detected'} (score {d.score:.2f}, "
                f"false-positive probability {fpp}{payload}){counted}"
            )
        print(f"verdict: {answer['verdict']['statement']}")
        print(answer["verdict"]["not_evidence_of_human_origin"])
        print("Also check: " + "; ".join(answer["verdict"]["also_check"]) + ".")
    return 0 if found.detected else EXIT_NOT_DETECTED
