"""Watermark robustness benchmark (run by hand): quality, speed, attacks, sweeps, short clips, false positives.

    .venv/bin/python -m bench.watermark.run [--negatives 1000] [--nonspeech 1000] [--jobs 2]

Writes docs/benchmarks/watermark.json and .md (see report.py). ``--clips N`` and smaller
negative counts are for trying it out; the committed report uses the defaults.
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from bench.corpus import REPO_ROOT, all_clips, english_clips
from bench.watermark import nonspeech
from bench.watermark.attacks import ALL_ATTACKS, WRONG_KEY_ATTACKS, apply

KEY = b"benchmark-key-not-a-secret-0123456789"
WRONG_KEY = b"a-different-key-entirely-9876543210"
N_CANDIDATES = 100_000  # released outputs in the index a short clip is matched against
WRONG_KEY_CANDIDATES = 10_000
SHORT_OUTPUT_S = 1.5
_state: dict[str, Any] = {}


def payload_of(index: int) -> bytes:
    return (0x5EED0000 + index).to_bytes(4, "big")


def _decoys(count: int) -> list[bytes]:
    rng = np.random.default_rng(20261201)
    out: list[bytes] = []
    taken = {payload_of(i) for i in range(1000)}
    while len(out) < count:
        value = rng.bytes(4)
        if value not in taken:
            out.append(value)
    return out


def _init_worker(n_clips: int) -> None:
    import torch

    torch.set_num_threads(1)
    from watermark import KeyedScheme, WatermarkConfig, build_stack
    from watermark.keyed.attribution import CandidateSet
    from watermark.perth_layer import PerthScheme

    _state["keyed"] = KeyedScheme(KEY)
    _state["wrong"] = KeyedScheme(WRONG_KEY)
    _state["perth"] = PerthScheme()
    _state["stack"] = build_stack(WatermarkConfig(schemes=("keyed", "perth"), key=KEY))
    released = [payload_of(i) for i in range(n_clips)]
    decoys = _decoys(N_CANDIDATES - n_clips)
    listed = _state["keyed"].candidate_set([*released, *decoys])
    _state["candidates"] = listed
    # the same index without the clips' own requests (a smaller index only makes attribution easier)
    _state["decoys_only"] = CandidateSet(listed.identifiers[n_clips:], listed.packed_codes[n_clips:])
    # a detector holding another key, with an index of its own (smaller: again only easier to attribute)
    _state["wrong_candidates"] = _state["wrong"].candidate_set([*released, *decoys[:WRONG_KEY_CANDIDATES]])


def _keyed_record(audio: np.ndarray, sr: int, payload: bytes, *, candidates: str = "candidates") -> dict[str, Any]:
    keyed = _state["keyed"]
    found, bits = keyed.detect_with_bits(audio, sample_rate=sr, segments=False, candidates=lambda: _state[candidates])
    sealed = keyed.sealed_bits(payload)
    return {
        "score": found.score,
        "fpp": found.false_positive_probability,
        "decoded": found.payload_source == "decoded" and found.payload == payload,
        "resolved": found.payload == payload,
        "wrong_payload": found.payload is not None and found.payload != payload,
        "attributed": found.payload_source == "attributed",
        "false_attribution_probability": found.false_attribution_probability,
        "bit_accuracy": float(np.mean(bits == sealed)) if bits is not None else 0.5,
        "warp": (found.warp or {}).get("family", "none"),
    }


def _perth_score(audio: np.ndarray, sr: int) -> float:
    return float(_state["perth"].detect(audio, sample_rate=sr, segments=False).score)


def quality_and_speed(index: int, path: str, folder: str) -> dict[str, Any]:
    """Embed every scheme in one clip, keep the marked audio for the attack pass, time and score it."""
    from pesq import pesq
    from pystoi import stoi

    from watermark.audio import resample

    x, sr = sf.read(path, dtype="float64")
    payload = payload_of(index)
    out: dict[str, Any] = {"clip": Path(path).stem, "seconds": x.size / sr}
    ref16 = resample(x, from_rate=sr, to_rate=16_000)
    for name in ("keyed", "perth", "stack"):
        scheme = _state[name]
        clocks = [(time.perf_counter(), time.process_time())]
        if (
            name == "stack"
        ):  # presence of both layers checked; whether the payload reads back is the attacks' "none" row
            y = scheme.embed(x, sample_rate=sr, payload=payload, require_payload=False)
        else:
            y = scheme.embed(x, sample_rate=sr, payload=payload)
        clocks.append((time.perf_counter(), time.process_time()))
        scheme.detect(y, sample_rate=sr)
        clocks.append((time.perf_counter(), time.process_time()))
        scheme.detect(x, sample_rate=sr)
        clocks.append((time.perf_counter(), time.process_time()))
        wall = [b[0] - a[0] for a, b in itertools.pairwise(clocks)]
        cpu = [b[1] - a[1] for a, b in itertools.pairwise(clocks)]
        np.save(Path(folder, f"{index}_{name}.npy"), y)
        out[name] = {
            "pesq_wb": float(pesq(16_000, ref16, resample(y, from_rate=sr, to_rate=16_000), "wb")),
            "stoi": float(stoi(x, y, sr, extended=False)),
            "embed_s": wall[0],
            "detect_marked_s": wall[1],
            "detect_unmarked_s": wall[2],
            "embed_cpu_s": cpu[0],
            "detect_marked_cpu_s": cpu[1],
            "detect_unmarked_cpu_s": cpu[2],
        }
    return out


def detect_10s(path: str) -> dict[str, float]:
    """Keyed detection of a 10 s unmarked clip (the full search): wall and CPU seconds, best of 3."""
    x, sr = sf.read(path, dtype="float64")
    x = np.resize(x, 10 * sr)
    walls, cpus = [], []
    for _ in range(3):
        wall, cpu = time.perf_counter(), time.process_time()
        _state["keyed"].detect(x, sample_rate=sr)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return {"wall_s": min(walls), "cpu_s": min(cpus)}


def attack_clip(index: int, path: str, folder: str, splice_path: str) -> dict[str, Any]:
    sr = sf.info(path).samplerate
    host, host_sr = sf.read(splice_path, dtype="float64")
    if host_sr != sr:
        raise SystemExit(f"{splice_path} is not at {sr} Hz")
    splice_host = host[: 4 * sr]  # 2 s of another (German) speaker before and after
    payload = payload_of(index)
    keyed_marked = np.load(Path(folder, f"{index}_keyed.npy"))
    perth_marked = np.load(Path(folder, f"{index}_perth.npy"))
    result: dict[str, Any] = {}
    for number, attack in enumerate(ALL_ATTACKS):
        seed = 1000 * index + number
        attacked = apply(attack, keyed_marked, sr, splice_host=splice_host, seed=seed)
        row = {
            "keyed": _keyed_record(attacked, sr, payload),
            "perth": {"score": _perth_score(apply(attack, perth_marked, sr, splice_host=splice_host, seed=seed), sr)},
        }
        if attack in WRONG_KEY_ATTACKS:
            wrong = _state["wrong"].detect(attacked, sample_rate=sr, candidates=lambda: _state["wrong_candidates"])
            row["wrong_key"] = {"detected": wrong.detected, "payload": wrong.payload is not None}
        result[attack] = row
    return {"clip": Path(path).stem, "attacks": result}


def short_output(index: int, path: str) -> dict[str, Any]:
    """A 1.5 s output marked on its own, as the gateway marks a short utterance."""
    x, sr = sf.read(path, dtype="float64")
    payload = payload_of(index)
    host = x[int(0.5 * sr) : int((0.5 + SHORT_OUTPUT_S) * sr)]
    marked = _state["keyed"].embed(host, sample_rate=sr, payload=payload)
    wrong = _state["wrong"].detect(marked, sample_rate=sr, candidates=lambda: _state["wrong_candidates"])
    return {
        "clip": Path(path).stem,
        "listed": _keyed_record(marked, sr, payload),
        # the request that made it is not in the index: nothing may be attributed
        "unlisted": _keyed_record(marked, sr, payload, candidates="decoys_only"),
        "unmarked": _keyed_record(host, sr, payload),
        "wrong_key": {"detected": wrong.detected, "payload": wrong.payload is not None},
    }


def _attack_job(job: tuple[int, str, str, str]) -> dict[str, Any]:
    return attack_clip(*job)


def _short_job(job: tuple[int, str]) -> dict[str, Any]:
    return short_output(*job)


def _negative_record(x: np.ndarray, sr: int) -> dict[str, Any]:
    found = _state["keyed"].detect(x, sample_rate=sr, segments=False, candidates=lambda: _state["candidates"])
    return {
        "keyed_score": found.score,
        "keyed_fpp": found.false_positive_probability,
        "keyed_payload": found.payload is not None,
        "keyed_attributed": found.payload_source == "attributed",
        "perth_score": _perth_score(x, sr),
    }


def negative(spec: tuple[str, float, float]) -> dict[str, Any]:
    path, start_s, length_s = spec
    info = sf.info(path)
    x, sr = sf.read(path, dtype="float64", start=int(start_s * info.samplerate), frames=int(length_s * info.samplerate))
    return {
        "kind": "speech",
        "clip": Path(path).stem,
        "start_s": start_s,
        "seconds": length_s,
        **_negative_record(x, sr),
    }


def nonspeech_negative(spec: tuple[str, int]) -> dict[str, Any]:
    kind, seed = spec
    x, sr = nonspeech.segment(kind, seed=seed)
    return {"kind": kind, "seed": seed, "seconds": x.size / sr, **_negative_record(x, sr)}


def negative_specs(count: int, seed: int = 20261123) -> list[tuple[str, float, float]]:
    """Unmarked 2-5 s segments from every corpus clip (the duplicate de_Elli recording left out)."""
    rng = np.random.default_rng(seed)
    clips = [p for p in all_clips() if p.stem != "de_Elli"]
    durations = [sf.info(p).duration for p in clips]
    specs: list[tuple[str, float, float]] = []
    while len(specs) < count:
        i = int(rng.integers(len(clips)))
        length = float(rng.uniform(2.0, 5.0))
        if durations[i] < length + 0.01:
            continue
        start = float(rng.uniform(0.0, durations[i] - length))
        specs.append((str(clips[i]), round(start, 3), round(length, 3)))
    return specs


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--negatives", type=int, default=1000, help="unmarked speech segments")
    parser.add_argument("--nonspeech", type=int, default=1000, help="unmarked non-speech segments")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--clips", type=int, default=0, help="limit the number of en_* clips (0: all)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "benchmarks" / "watermark")
    parser.add_argument(
        "--raw",
        type=Path,
        default=REPO_ROOT / ".cache" / "bench-watermark-raw.json",
        help="every record, kept uncommitted",
    )
    parser.add_argument("--report-only", action="store_true", help="rewrite the report from --raw without measuring")
    args = parser.parse_args()
    from bench.watermark.report import write_report

    if args.report_only:
        write_report(args.out, **json.loads(args.raw.read_text()))
        return
    clips = english_clips()[: args.clips or None]
    splice_host = str(next(p for p in all_clips() if p.stem.startswith("de_")))
    started = time.time()
    with tempfile.TemporaryDirectory() as folder:
        _init_worker(len(clips))
        print("quality and speed (serial, for clean timings)...", flush=True)
        quality = []
        for i, p in enumerate(clips):
            quality.append(quality_and_speed(i, str(p), folder))
            print(f"  {p.stem}: {time.time() - started:.0f} s", flush=True)
        speed_10s = detect_10s(str(clips[0]))
        with Pool(args.jobs, initializer=_init_worker, initargs=(len(clips),)) as pool:
            print("attacks...", flush=True)
            attacks = []
            for done in pool.imap(_attack_job, [(i, str(p), folder, splice_host) for i, p in enumerate(clips)]):
                attacks.append(done)
                print(f"  {done['clip']}: {time.time() - started:.0f} s", flush=True)
            print("short outputs...", flush=True)
            shorts = pool.map(_short_job, [(i, str(p)) for i, p in enumerate(clips)])
            print(f"negatives... {time.time() - started:.0f} s", flush=True)
            negatives = pool.map(negative, negative_specs(args.negatives), chunksize=10)
            negatives += pool.map(nonspeech_negative, nonspeech.specs(args.nonspeech), chunksize=10)
    options = (("negatives", args.negatives), ("nonspeech", args.nonspeech), ("jobs", args.jobs), ("clips", args.clips))
    raw = {
        "quality": quality,
        "attacks": attacks,
        "shorts": shorts,
        "negatives": negatives,
        "speed_10s": speed_10s,
        "wall_s": time.time() - started,
        "command": "python -m bench.watermark.run " + " ".join(f"--{k} {v}" for k, v in options),
    }
    args.raw.parent.mkdir(parents=True, exist_ok=True)
    args.raw.write_text(json.dumps(raw, default=float))
    write_report(args.out, **raw)


if __name__ == "__main__":
    main()
