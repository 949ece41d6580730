"""Blocklist benchmark: calibration, list-level false alarms, clones, search latency.

Run by hand (minutes on two cores; embeddings are cached under .cache/bench/):

    .venv/bin/python -m bench.blocklist.run

Writes docs/benchmarks/blocklist.md and docs/benchmarks/blocklist.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import UTC, datetime

import numpy as np
import torch

from bench.blocklist import clones, latency, scores
from bench.blocklist.corpus_embeddings import load
from bench.corpus import REPO_ROOT
from bench.run_info import commit, machine
from policy.blocklist.matching import (
    DEFAULT_COHORT_TOP_K,
    DEFAULT_DENY_THRESHOLD,
    DEFAULT_REVIEW_THRESHOLD,
    BlocklistThresholds,
)

REPORT = REPO_ROOT / "docs" / "benchmarks" / "blocklist"


def calibration(corpus, *, top_k: int, thresholds: BlocklistThresholds) -> dict:
    folds = scores.fold_scores(corpus, top_k=top_k)
    out: dict = {
        "folds": scores.FOLDS,
        "cohort_size_per_fold": [len(f.cohort_speakers) for f in folds],
        "evaluation_speakers_per_fold": [len(f.eval_speakers) for f in folds],
    }
    for label, normalized in (("raw_cosine", False), ("as_norm", True)):
        targets, impostors = scores.pooled(folds, normalized=normalized)
        eer, eer_threshold = scores.equal_error_rate(targets, impostors)
        grid = np.arange(-1.0, 8.01, 0.5) if normalized else np.arange(0.5, 0.951, 0.025)
        curve = [
            {
                "threshold": round(float(t), 4),
                "far": round(scores.far_frr(targets, impostors, t)[0], 5),
                "frr": round(scores.far_frr(targets, impostors, t)[1], 4),
            }
            for t in grid
        ]
        operating = {}
        for rate in (1e-2, 1e-3, 5e-5):
            threshold = scores.gaussian_tail_threshold(impostors, rate=rate)
            operating[f"far_{rate:g}"] = {
                "threshold": round(threshold, 4),
                "frr": round(float(np.mean(targets < threshold)), 4),
            }
        out[label] = {
            "target_trials": int(targets.size),
            "impostor_trials": int(impostors.size),
            "eer": round(eer, 4),
            "eer_threshold": round(eer_threshold, 4),
            "target_score_percentiles_0_2_50": [round(float(x), 4) for x in np.percentile(targets, [0, 2, 50])],
            "impostor_score_percentiles_99_99.9_max": [
                round(float(x), 4) for x in (*np.percentile(impostors, [99, 99.9]), impostors.max())
            ],
            "threshold_for_98pct_targets": round(float(np.percentile(targets, 2)), 4),
            "gaussian_tail_operating_points": operating,
            "curve": curve,
        }
    targets, impostors = scores.pooled(folds, normalized=True)
    at_defaults = {}
    for name, threshold in (("deny", thresholds.deny), ("review", thresholds.review)):
        far, frr = scores.far_frr(targets, impostors, threshold)
        per_comparison = max(far, scores.gaussian_tail_rate(impostors, threshold=threshold))
        list_level = {}
        for size in (10, None):
            rate, trials = scores.list_level_false_alarms(folds, threshold=threshold, list_size=size, trials=50)
            list_level["10" if size else "all_other_evaluation_speakers"] = {"rate": round(rate, 4), "trials": trials}
        for size in (100, 1000):
            list_level[f"{size}_extrapolated"] = round(scores.extrapolated_list_rate(per_comparison, list_size=size), 4)
        at_defaults[name] = {
            "threshold": threshold,
            "per_comparison_far_empirical": round(far, 6),
            "per_comparison_far_gaussian_tail": round(scores.gaussian_tail_rate(impostors, threshold=threshold), 6),
            "own_speech_reaching_it": round(1 - frr, 4),
            "list_level_false_alarms": list_level,
        }
    out["at_default_thresholds"] = at_defaults
    out["own_speech"] = {
        "denied": round(float(np.mean(targets >= thresholds.deny)), 4),
        "held_for_review": round(float(np.mean((targets >= thresholds.review) & (targets < thresholds.deny))), 4),
        "allowed": round(float(np.mean(targets < thresholds.review)), 4),
    }
    sweep = {}
    for k in (5, 10, 20, 50):
        t, i = scores.pooled(scores.fold_scores(corpus, top_k=k), normalized=True)
        sweep[str(k)] = round(scores.equal_error_rate(t, i)[0], 4)
    out["eer_by_cohort_top_k"] = sweep
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--clone-speakers", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.time()
    thresholds = BlocklistThresholds(deny=DEFAULT_DENY_THRESHOLD, review=DEFAULT_REVIEW_THRESHOLD)
    corpus = load()
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit("policy/blocklist", "policy/speaker.py", "bench/blocklist"),
        "machine": machine(),
        "command": ".venv/bin/python -m bench.blocklist.run "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()),
        "embedder": corpus.embedder_name,
        "speakers": len(corpus.speakers),
        "probes": int(corpus.probe.shape[0]),
        "cohort_top_k": DEFAULT_COHORT_TOP_K,
        "thresholds": {"deny": thresholds.deny, "review": thresholds.review},
    }
    result["calibration"] = calibration(corpus, top_k=DEFAULT_COHORT_TOP_K, thresholds=thresholds)
    result["clones"] = clones.measure(
        corpus, thresholds=thresholds, top_k=DEFAULT_COHORT_TOP_K, speakers=args.clone_speakers
    )
    result["latency"] = []
    # Both thread counts: on a machine shared with other work one thread often has the better
    # tail, because two threads wait for each other whenever either is descheduled.
    for threads in sorted({1, args.threads}):
        torch.set_num_threads(threads)
        for row in latency.measure(
            corpus,
            sizes=(1_000, 10_000, 100_000),
            thresholds=thresholds,
            top_k=DEFAULT_COHORT_TOP_K,
            queries_per_size=args.queries,
        ):
            result["latency"].append({"threads": threads, **row})
    result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["wall_seconds"] = round(time.time() - started, 1)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    from bench.blocklist.report import render

    REPORT.with_suffix(".md").write_text(render(result), encoding="utf-8")
    print(f"wrote {REPORT.with_suffix('.md')} and .json in {result['wall_seconds']} s")


if __name__ == "__main__":
    main()
