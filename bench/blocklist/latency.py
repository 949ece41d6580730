"""Search latency of the blocklist index at 1,000 / 10,000 / 100,000 entries.

The corpus has 67 speakers, so large lists are synthetic: entry models are drawn from a normal
distribution with the mean and covariance of the real resemblyzer embeddings (plus a little
isotropic spread so the covariance has full rank) and then normalised. They are as clustered as
real d-vectors, which matters for the int8 prefilter: uniformly random unit vectors would make
every bound trivially small. Queries are the real probe embeddings.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from bench.blocklist.corpus_embeddings import CorpusEmbeddings
from bench.blocklist.scores import Evidence, cohort_of, evidence, splits
from policy.blocklist.calibration import ScoreCalibration
from policy.blocklist.index import BlocklistIndex


def synthetic_models(corpus: CorpusEmbeddings, *, count: int, seed: int) -> np.ndarray:
    real = np.concatenate([corpus.whole.reshape(-1, corpus.whole.shape[-1]), corpus.window])
    mean = real.mean(axis=0)
    centred = real - mean
    rng = np.random.default_rng(seed)
    # Sample through the data (low-rank part) plus isotropic noise of the residual scale.
    weights = rng.standard_normal((count, centred.shape[0])).astype(np.float32) / np.sqrt(centred.shape[0])
    noise_scale = float(np.sqrt(np.mean(centred.var(axis=0)))) * 0.3
    draws = mean + weights @ centred + rng.standard_normal((count, real.shape[1])).astype(np.float32) * noise_scale
    return (draws / np.linalg.norm(draws, axis=1, keepdims=True)).astype(np.float32)


def measure(
    corpus: CorpusEmbeddings,
    *,
    sizes: tuple[int, ...],
    calibration: ScoreCalibration,
    kind: Evidence,
    queries_per_size: int = 1000,
    seed: int = 0,
) -> list[dict]:
    vectors = evidence(corpus, kind)
    cohort = cohort_of(
        vectors,
        splits(len(corpus.speakers))[0].cohort,
        top_k=calibration.cohort_top_k,
        center=calibration.cohort_centering,
    )
    probes = np.concatenate([vectors.reshape(-1, vectors.shape[-1]), corpus.window])
    results = []
    for size in sizes:
        models = synthetic_models(corpus, count=size, seed=seed + size)
        started = time.perf_counter()
        index = BlocklistIndex(
            entry_ids=np.arange(size),
            models=models,
            cohort=cohort,
            thresholds=calibration.thresholds,
            embedder_name=corpus.embedder_name,
            normalization=calibration.normalization,
        )
        build_seconds = time.perf_counter() - started
        for probe in probes[:20]:  # warm caches and the int8 kernel
            index.check(probe)
        timings, cpu_timings, mismatches = [], [], 0
        for query in range(queries_per_size):
            probe = probes[query % probes.shape[0]]
            started, cpu_started = time.perf_counter(), time.process_time()
            decision = index.check(probe)
            timings.append(time.perf_counter() - started)
            cpu_timings.append(time.process_time() - cpu_started)
            if query < 100:  # exactness: the same best entry as a full float32 scan
                _, normalized = index.scores(probe)
                if int(index.entry_ids[int(np.argmax(normalized))]) != decision.entry_id:
                    mismatches += 1
        stages = profile_stages(index, probes) if index._int8 is not None else None
        millis = np.array(timings) * 1e3
        # CPU seconds the process spent (all its threads): what the query costs without the
        # waiting for a core that a shared machine adds to the wall-clock figures.
        cpu_millis = np.array(cpu_timings) * 1e3
        results.append(
            {
                "entries": size,
                "int8_prefilter": index._int8 is not None,
                "build_seconds": round(build_seconds, 3),
                "queries": queries_per_size,
                "p50_ms": round(float(np.percentile(millis, 50)), 3),
                "p99_ms": round(float(np.percentile(millis, 99)), 3),
                "max_ms": round(float(millis.max()), 3),
                "cpu_p50_ms": round(float(np.percentile(cpu_millis, 50)), 3),
                "cpu_p99_ms": round(float(np.percentile(cpu_millis, 99)), 3),
                "mismatches_vs_full_scan_of_100": mismatches,
                "int8_stage_cpu_p50_ms": stages,
            }
        )
    return results


def _cpu_p50_ms(step: Callable[[int], object], *, repeats: int = 200) -> float:
    timings = []
    for i in range(repeats):
        started = time.process_time()
        step(i)
        timings.append(time.process_time() - started)
    return round(float(np.percentile(timings, 50)) * 1e3, 3)


def profile_stages(index: BlocklistIndex, probes: np.ndarray) -> dict[str, float]:
    """CPU p50 of each stage of one int8-prefiltered query, to show where the time goes."""
    copy = index._int8
    assert copy is not None
    projected = [index._probe(p) for p in probes[:50]]
    feed = (np.clip(np.rint(projected[0] / (np.abs(projected[0]).max() / 127)), -127, 127) + 128).astype(np.uint8)
    return {
        "probe_projection_and_cohort_statistics": _cpu_p50_ms(lambda i: index._transform(index._probe(probes[i % 50]))),
        "int8_product_only": _cpu_p50_ms(lambda i: copy.session.run(["dots"], {"probe": feed[np.newaxis, :]})),
        "int8_product_and_bound": _cpu_p50_ms(lambda i: copy.approximate(projected[i % 50])),
        "whole_check": _cpu_p50_ms(lambda i: index.check(probes[i % 50])),
    }
