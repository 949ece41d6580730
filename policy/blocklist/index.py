"""The in-memory protected-speaker index: an (N x d) float32 matrix of entry models, their cohort
statistics, and an exact best-match search.

Exact over 100,000 entries within 10 ms on one core: a float32 scan reads 100 MB per query and
is bound by memory bandwidth (about 20 ms here). Large lists are therefore scanned first with an
int8 copy of the matrix (a quarter of the bytes, 25.6 MB at 100,000 x 256) and a rigorous bound
on the quantisation error; only entries whose upper bound could beat the best exactly scored
entry are re-scored in float32. The answer is the same entry and the same scores as a full
float32 scan (tests check this against brute force); the int8 pass only decides which rows need
exact scoring. The int8 product runs in onnxruntime's MatMulInteger (its MLAS kernel has a
matrix-vector path; torch's int8 GEMM has none and pads the probe to eight columns).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from policy.blocklist.matching import (
    NORMALIZATIONS,
    BlocklistDecision,
    BlocklistThresholds,
    Cohort,
    Decision,
    Normalization,
    score_transform,
)
from policy.errors import BlocklistMisconfigured

# Below this many entries the plain float32 scan is already about a millisecond.
PREFILTER_MIN_ENTRIES = 5_000
# Slack for float32 rounding in the exact dot products and in the bound itself.
BOUND_SLACK = 1e-4
_STATS_CHUNK = 8_192
# The probe goes in as uint8 with zero point 128 (MLAS's fast path is uint8 x int8).
_PROBE_ZERO_POINT = 128
# Entry codes use 7 bits. MLAS's uint8 x int8 kernel on CPUs without VNNI (AVX2: vpmaddubsw)
# adds each pair of adjacent products into a saturating int16, so 2 * 255 * 127 = 64,770 is
# clipped to 32,767 and the dot product comes out wrong (measured here: 995 of 1,000 random full-
# range rows). With codes in [-63, 63] a pair is at most 2 * 255 * 63 = 32,130 and never clips;
# this is the "reduce_range" 7-bit weights that onnxruntime's quantization guide
# (docs/performance/model-optimizations/quantization.md) recommends for such CPUs.
_CODE_MAX = 63


def _int8_product_session(codes_t: np.ndarray) -> Any:
    """An onnxruntime session computing ``(probe_u8 - 128) @ codes_t`` with int32 accumulation."""
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper

    dimension, rows = codes_t.shape
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["probe", "codes", "zero_point"], ["dots"])],
        "blocklist_int8_scan",
        [helper.make_tensor_value_info("probe", TensorProto.UINT8, [1, dimension])],
        [helper.make_tensor_value_info("dots", TensorProto.INT32, [1, rows])],
        initializer=[
            numpy_helper.from_array(codes_t, "codes"),
            numpy_helper.from_array(np.array(_PROBE_ZERO_POINT, dtype=np.uint8), "zero_point"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1  # one query, one core: threads would only wait for each other
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


@dataclass
class _Int8Copy:
    """Per-row symmetric int8 quantisation and the per-row terms of the error bound."""

    session: Any  # onnxruntime.InferenceSession holding the (d, N) int8 codes
    scale: np.ndarray  # (N,) float32: row value = code * scale
    residual_bound: np.ndarray  # (N,) ||e - e_hat|| + BOUND_SLACK
    dequantized_norm: np.ndarray  # (N,) ||e_hat||

    @classmethod
    def build(cls, models: np.ndarray) -> _Int8Copy | None:
        scale = np.abs(models).max(axis=1) / float(_CODE_MAX)
        scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
        codes = np.clip(np.rint(models / scale[:, None]), -_CODE_MAX, _CODE_MAX).astype(np.int8)
        dequantized = codes.astype(np.float32) * scale[:, None]
        try:
            session = _int8_product_session(np.ascontiguousarray(codes.T))
        except ImportError:  # pragma: no cover - both are dependencies; the float scan stays exact
            return None
        return cls(
            session=session,
            scale=scale,
            residual_bound=(np.linalg.norm(models - dequantized, axis=1) + BOUND_SLACK).astype(np.float32),
            dequantized_norm=np.linalg.norm(dequantized, axis=1).astype(np.float32),
        )

    def approximate(self, probe: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Approximate raw scores and a bound with |exact - approximate| <= bound per row."""
        probe_scale = float(np.abs(probe).max()) / 127.0 or 1.0
        probe_codes = np.clip(np.rint(probe / probe_scale), -127, 127)
        probe_error = float(np.linalg.norm(probe - probe_codes.astype(np.float32) * probe_scale))
        feed = (probe_codes + _PROBE_ZERO_POINT).astype(np.uint8)[np.newaxis, :]
        (dots,) = self.session.run(["dots"], {"probe": feed})
        # In place: at 100,000 entries each temporary array is another pass over 400 kB.
        approx = dots[0].astype(np.float32)
        approx *= self.scale
        approx *= np.float32(probe_scale)
        # (e - e_hat).q + e_hat.(q - q_hat), each bounded by Cauchy-Schwarz; ||q|| = 1.
        bound = self.dequantized_norm * np.float32(probe_error)
        bound += self.residual_bound
        return approx, bound


@dataclass
class BlocklistIndex:
    """Immutable snapshot of the active list; build a new one on every change and swap it in."""

    entry_ids: np.ndarray  # (N,) int64
    models: np.ndarray  # (N, d) float32 unit rows
    cohort: Cohort
    thresholds: BlocklistThresholds
    embedder_name: str
    version: int = 0
    normalization: Normalization = "as-norm"
    entry_mean: np.ndarray = field(init=False)
    entry_sd: np.ndarray = field(init=False)
    _int8: _Int8Copy | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.cohort is None:
            raise BlocklistMisconfigured("no score-normalisation cohort configured")
        if self.thresholds is None:
            raise BlocklistMisconfigured("no blocklist thresholds configured")
        dimension = self.cohort.dimension
        # Stored in the cohort's scoring space (centred), so a check is one product per entry.
        self.models = self.cohort.project(
            np.asarray(self.models, dtype=np.float32).reshape(-1, dimension), what="entry models"
        )
        self.entry_ids = np.asarray(self.entry_ids, dtype=np.int64).reshape(-1)
        if self.entry_ids.shape[0] != self.models.shape[0]:
            raise BlocklistMisconfigured("entry ids and entry models differ in number")
        if np.unique(self.entry_ids).size != self.entry_ids.size:
            raise BlocklistMisconfigured("duplicate entry ids in the blocklist index")
        if self.normalization not in NORMALIZATIONS:
            raise BlocklistMisconfigured(f"unknown score normalisation {self.normalization!r}")
        means, sds = [], []
        for start in range(0, self.models.shape[0], _STATS_CHUNK):
            mean, sd = self.cohort.statistics(self.models[start : start + _STATS_CHUNK])
            means.append(mean)
            sds.append(sd)
        self.entry_mean = np.concatenate(means).astype(np.float32) if means else np.zeros(0, np.float32)
        self.entry_sd = np.concatenate(sds).astype(np.float32) if sds else np.ones(0, np.float32)
        if self.models.shape[0] >= PREFILTER_MIN_ENTRIES:
            self._int8 = _Int8Copy.build(self.models)

    @property
    def size(self) -> int:
        return int(self.entry_ids.shape[0])

    @property
    def dimension(self) -> int:
        return self.cohort.dimension

    def _probe(self, embedding: np.ndarray) -> np.ndarray:
        rows = self.cohort.project(np.asarray(embedding).reshape(1, -1), what="probe embedding")
        return np.asarray(rows[0], dtype=np.float32)

    def scores(self, embedding: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw and normalised scores of the probe against every entry (full float32 scan)."""
        probe = self._probe(embedding)
        slope, intercept = self._transform(probe)
        raw = _scan(self.models, probe)
        return raw, raw * slope + intercept

    def _transform(self, probe: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probe_mean, probe_sd = self.cohort.statistics(probe)
        slope, intercept = score_transform(
            self.normalization,
            entry_mean=self.entry_mean,
            entry_sd=self.entry_sd,
            probe_mean=float(probe_mean[0]),
            probe_sd=float(probe_sd[0]),
        )
        return slope.astype(np.float32, copy=False), intercept.astype(np.float32, copy=False)

    def check(self, embedding: np.ndarray, *, exempt_entry_ids: Collection[int] = ()) -> BlocklistDecision:
        """The best-matching active entry (ignoring ``exempt_entry_ids``) and the decision."""
        probe = self._probe(embedding)
        if self.size == 0:
            return BlocklistDecision(Decision.ALLOW, None, None, None)
        slope, intercept = self._transform(probe)
        excluded = np.isin(self.entry_ids, np.fromiter(exempt_entry_ids, dtype=np.int64)) if exempt_entry_ids else None

        if self._int8 is None:
            normalized = _scan(self.models, probe) * slope + intercept
            if excluded is not None:
                normalized[excluded] = -np.inf
            best = int(np.argmax(normalized))
        else:
            best = self._best_by_prefilter(self._int8, probe, slope, intercept, excluded)
        if best < 0 or (excluded is not None and excluded[best]):
            return BlocklistDecision(Decision.ALLOW, None, None, None)
        raw = float(self.models[best] @ probe)
        normalized_best = float(raw * slope[best] + intercept[best])
        return BlocklistDecision(
            decision=self.thresholds.decide(normalized_best),
            entry_id=int(self.entry_ids[best]),
            raw_score=raw,
            normalized_score=normalized_best,
        )

    def _best_by_prefilter(
        self, copy: _Int8Copy, probe: np.ndarray, slope: np.ndarray, intercept: np.ndarray, excluded: np.ndarray | None
    ) -> int:
        approx_norm, upper = copy.approximate(probe)
        approx_norm *= slope
        approx_norm += intercept
        upper *= slope  # slope > 0: the bound scales with it
        upper += approx_norm
        if excluded is not None:
            approx_norm[excluded] = -np.inf
            upper[excluded] = -np.inf
        first = int(np.argmax(approx_norm))
        if not np.isfinite(approx_norm[first]):
            return -1
        first_exact = float(self.models[first] @ probe) * slope[first] + intercept[first]
        # Every row whose upper bound is below an exactly known score cannot be the best.
        candidates = np.flatnonzero(upper >= first_exact)
        exact = (self.models[candidates] @ probe) * slope[candidates] + intercept[candidates]
        return int(candidates[int(np.argmax(exact))])


def _scan(models: np.ndarray, probe: np.ndarray) -> np.ndarray:
    """``models @ probe`` through torch, whose thread count the process controls: numpy's BLAS
    starts its own busy-waiting threads, which on a loaded machine multiply the tail latency."""
    import torch

    with torch.no_grad():
        return np.asarray(torch.mv(torch.from_numpy(models), torch.from_numpy(probe)).numpy())
