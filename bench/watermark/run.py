"""Watermark robustness benchmark (run by hand): quality, speed, attacks, false positives.

    .venv/bin/python -m bench.watermark.run [--negatives 1000] [--jobs 2]

Writes docs/benchmarks/watermark.json and .md (see report.py).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one thread per process: CPU-time figures stay comparable

import argparse
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import soundfile as sf

from bench.corpus import REPO_ROOT, all_clips, english_clips
from bench.watermark.attacks import ATTACKS, apply

KEY = b"benchmark-key-not-a-secret-0123456789"
WRONG_KEY = b"a-different-key-entirely-9876543210"
PAYLOAD_OF = lambda i: (0x5EED0000 + i).to_bytes(4, "big")  # noqa: E731  one identifier per clip
_state: dict = {}


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)
    from watermark import KeyedScheme, WatermarkConfig, build_stack
    from watermark.perth_layer import PerthScheme

    _state["keyed"] = KeyedScheme(KEY)
    _state["wrong"] = KeyedScheme(WRONG_KEY)
    _state["perth"] = PerthScheme()
    _state["stack"] = build_stack(WatermarkConfig(schemes=("keyed", "perth"), key=KEY))


def _keyed_record(audio: np.ndarray, sr: int, payload: bytes) -> dict:
    keyed = _state["keyed"]
    found, bits = keyed.detect_with_bits(audio, sample_rate=sr)
    sealed = keyed.sealed_bits(payload)
    return {
        "score": found.score,
        "fpp": found.false_positive_probability,
        "verified": found.payload_verified and found.payload == payload,
        "bit_accuracy": float(np.mean(bits == sealed)) if bits is not None else 0.5,
    }


def _perth_score(audio: np.ndarray, sr: int) -> float:
    return _state["perth"].detect(audio, sample_rate=sr, segments=False).score


def quality_and_speed(index: int, path: str, folder: str) -> dict:
    """Embed every scheme in one clip, keep the marked audio for the attack pass, time and score it."""
    from pesq import pesq
    from pystoi import stoi

    from watermark.audio import resample

    x, sr = sf.read(path, dtype="float64")
    payload = PAYLOAD_OF(index)
    out = {"clip": Path(path).stem, "seconds": x.size / sr}
    ref16 = resample(x, from_rate=sr, to_rate=16_000)
    for name in ("keyed", "perth", "stack"):
        scheme = _state[name]
        clocks = [(time.perf_counter(), time.process_time())]
        y = scheme.embed(x, sample_rate=sr, payload=payload)
        clocks.append((time.perf_counter(), time.process_time()))
        scheme.detect(y, sample_rate=sr)
        clocks.append((time.perf_counter(), time.process_time()))
        scheme.detect(x, sample_rate=sr)
        clocks.append((time.perf_counter(), time.process_time()))
        wall = [b[0] - a[0] for a, b in zip(clocks, clocks[1:])]
        cpu = [b[1] - a[1] for a, b in zip(clocks, clocks[1:])]
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


def attack_clip(index: int, path: str, folder: str, splice_path: str) -> dict:
    x, sr = sf.read(path, dtype="float64")
    host, host_sr = sf.read(splice_path, dtype="float64")
    assert host_sr == sr
    splice_host = host[: 4 * sr]  # 2 s of another (German) speaker before and after
    payload = PAYLOAD_OF(index)
    marked = {name: np.load(Path(folder, f"{index}_{name}.npy")) for name in ("keyed", "perth", "stack")}
    result: dict = {}
    for attack in ATTACKS:
        seed = 1000 * index + ATTACKS.index(attack)
        attacked = {name: apply(attack, y, sr, splice_host=splice_host, seed=seed) for name, y in marked.items()}
        row = {
            "keyed": _keyed_record(attacked["keyed"], sr, payload),
            "perth": {"score": _perth_score(attacked["perth"], sr)},
            "stack_keyed": _keyed_record(attacked["stack"], sr, payload),
            "stack_perth": {"score": _perth_score(attacked["stack"], sr)},
        }
        if attack in ("none", "mp3_64k"):
            wrong = _state["wrong"].detect(attacked["stack"], sample_rate=sr)
            row["wrong_key_verified"] = wrong.payload_verified
            row["wrong_key_fpp"] = wrong.false_positive_probability
        result[attack] = row
    return {"clip": Path(path).stem, "attacks": result}


def _attack_job(job: tuple) -> dict:
    return attack_clip(*job)


def negative(spec: tuple[str, float, float]) -> dict:
    path, start_s, length_s = spec
    info = sf.info(path)
    x, sr = sf.read(path, dtype="float64", start=int(start_s * info.samplerate), frames=int(length_s * info.samplerate))
    found = _state["keyed"].detect(x, sample_rate=sr)
    return {
        "clip": Path(path).stem,
        "start_s": start_s,
        "seconds": length_s,
        "keyed_score": found.score,
        "keyed_fpp": found.false_positive_probability,
        "keyed_verified": found.payload_verified,
        "perth_score": _perth_score(x, sr),
    }


def negative_specs(count: int, seed: int = 20261123) -> list[tuple[str, float, float]]:
    """Unmarked 2-5 s segments from every corpus clip (the duplicate de_Elli recording left out)."""
    rng = np.random.default_rng(seed)
    clips = [p for p in all_clips() if p.stem != "de_Elli"]
    durations = [sf.info(p).duration for p in clips]
    specs = []
    while len(specs) < count:
        i = int(rng.integers(len(clips)))
        length = float(rng.uniform(2.0, 5.0))
        if durations[i] < length + 0.01:
            continue
        start = float(rng.uniform(0.0, durations[i] - length))
        specs.append((str(clips[i]), round(start, 3), round(length, 3)))
    return specs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--negatives", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--clips", type=int, default=0, help="limit the number of en_* clips (0: all)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "benchmarks" / "watermark")
    args = parser.parse_args()
    clips = english_clips()[: args.clips or None]
    splice_host = str(next(p for p in all_clips() if p.stem.startswith("de_")))
    started = time.time()
    with tempfile.TemporaryDirectory() as folder:
        _init_worker()
        print("quality and speed (serial, for clean timings)...", flush=True)
        quality = []
        for i, p in enumerate(clips):
            quality.append(quality_and_speed(i, str(p), folder))
            print(f"  {p.stem}: {time.time() - started:.0f} s", flush=True)
        with Pool(args.jobs, initializer=_init_worker) as pool:
            print("attacks...", flush=True)
            attacks = []
            jobs = [(i, str(p), folder, splice_host) for i, p in enumerate(clips)]
            for done in pool.imap(_attack_job, jobs):
                attacks.append(done)
                print(f"  {done['clip']}: {time.time() - started:.0f} s", flush=True)
            print("negatives...", flush=True)
            negatives = pool.map(negative, negative_specs(args.negatives), chunksize=10)
    from bench.watermark.report import write_report

    write_report(
        args.out,
        quality=quality,
        attacks=attacks,
        negatives=negatives,
        wall_s=time.time() - started,
        command="python -m bench.watermark.run "
        + " ".join(
            f"--{k} {v}" for k, v in (("negatives", args.negatives), ("jobs", args.jobs), ("clips", args.clips))
        ),
    )


if __name__ == "__main__":
    main()
