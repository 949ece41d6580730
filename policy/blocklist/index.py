"""The in-memory protected-speaker index: an (N x d) float32 matrix of entry models, their cohort
statistics, and an exact best-match search.

Exact over 100,000 entries within 10 ms on two cores: a float32 scan reads 100 MB per query and
is bound by memory bandwidth (about 20 ms here). Large lists are therefore scanned first with an
int8 copy of the matrix (a quarter of the bytes) and a rigorous bound on the quantisation error;
only entries whose upper bound could beat the best exactly scored entry are re-scored in
float32. The answer is the same entry and the same scores as a full float32 scan (a test checks
this against brute force); the int8 pass only decides which rows need exact scoring.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np

from policy.blocklist.matching import (
    BlocklistDecision,
    BlocklistThresholds,
    Cohort,
    Decision,
    as_norm,
    unit_rows,
)
from policy.errors import BlocklistMisconfigured

# Below this many entries the plain float32 scan is already well under a millisecond.
PREFILTER_MIN_ENTRIES = 20_000
# Slack for float32 rounding in the exact dot products and in the bound itself.
BOUND_SLACK = 1e-4
_STATS_CHUNK = 8_192


@dataclass
class _Int8Copy:
    """Per-row symmetric int8 quantisation and the per-row terms of the error bound."""

    codes: object  # torch.Tensor (N, d) int8; kept untyped so torch loads only when used
    scale: np.ndarray  # (N,) float32: row value = code * scale
    residual_norm: np.ndarray  # (N,) ||e - e_hat||
    dequantized_norm: np.ndarray  # (N,) ||e_hat||

    @classmethod
    def build(cls, models: np.ndarray) -> _Int8Copy | None:
        try:
            import torch
        except ImportError:  # pragma: no cover - torch is a hard dependency of the project
            return None
        if models.shape[1] % 8 != 0:
            return None
        scale = np.abs(models).max(axis=1) / 127.0
        scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
        codes = np.clip(np.rint(models / scale[:, None]), -127, 127).astype(np.int8)
        dequantized = codes.astype(np.float32) * scale[:, None]
        copy = cls(
            codes=torch.from_numpy(codes),
            scale=scale,
            residual_norm=np.linalg.norm(models - dequantized, axis=1).astype(np.float32),
            dequantized_norm=np.linalg.norm(dequantized, axis=1).astype(np.float32),
        )
        try:  # torch._int_mm is the int8 GEMM with int32 accumulation; fall back if absent
            copy.approximate(models[0])
        except (RuntimeError, AttributeError):
            return None
        return copy

    def approximate(self, probe: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Approximate raw scores and a bound with |exact - approximate| <= bound per row."""
        import torch

        probe_scale = float(np.abs(probe).max()) / 127.0 or 1.0
        probe_codes = np.clip(np.rint(probe / probe_scale), -127, 127).astype(np.int8)
        probe_error = float(np.linalg.norm(probe - probe_codes.astype(np.float32) * probe_scale))
        # _int_mm wants a matrix on the right whose width is a multiple of 8.
        right = torch.from_numpy(np.repeat(probe_codes[:, None], 8, axis=1))
        dots = torch._int_mm(self.codes, right)[:, 0].numpy()
        approx = dots.astype(np.float32) * self.scale * np.float32(probe_scale)
        # (e - e_hat).q + e_hat.(q - q_hat), each bounded by Cauchy-Schwarz; ||q|| = 1.
        bound = self.residual_norm + self.dequantized_norm * np.float32(probe_error) + BOUND_SLACK
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
    entry_mean: np.ndarray = field(init=False)
    entry_sd: np.ndarray = field(init=False)
    _int8: _Int8Copy | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.cohort is None:
            raise BlocklistMisconfigured("no score-normalisation cohort configured")
        if self.thresholds is None:
            raise BlocklistMisconfigured("no blocklist thresholds configured")
        dimension = self.cohort.dimension
        self.models = unit_rows(
            np.asarray(self.models, dtype=np.float32).reshape(-1, dimension),
            dimension=dimension,
            what="entry models",
        )
        self.entry_ids = np.asarray(self.entry_ids, dtype=np.int64).reshape(-1)
        if self.entry_ids.shape[0] != self.models.shape[0]:
            raise BlocklistMisconfigured("entry ids and entry models differ in number")
        if np.unique(self.entry_ids).size != self.entry_ids.size:
            raise BlocklistMisconfigured("duplicate entry ids in the blocklist index")
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
        return unit_rows(np.asarray(embedding).reshape(1, -1), dimension=self.dimension, what="probe embedding")[0]

    def scores(self, embedding: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw and normalised scores of the probe against every entry (full float32 scan)."""
        probe = self._probe(embedding)
        probe_mean, probe_sd = self.cohort.statistics(probe)
        raw = _scan(self.models, probe)
        normalized = as_norm(
            raw,
            entry_mean=self.entry_mean,
            entry_sd=self.entry_sd,
            probe_mean=probe_mean[0],
            probe_sd=probe_sd[0],
        )
        return raw, normalized

    def check(self, embedding: np.ndarray, *, exempt_entry_ids: Collection[int] = ()) -> BlocklistDecision:
        """The best-matching active entry (ignoring ``exempt_entry_ids``) and the decision."""
        probe = self._probe(embedding)
        if self.size == 0:
            return BlocklistDecision(Decision.ALLOW, None, None, None)
        probe_mean, probe_sd = (float(v[0]) for v in self.cohort.statistics(probe))
        slope = 0.5 * (1.0 / self.entry_sd + 1.0 / probe_sd)
        intercept = -0.5 * (self.entry_mean / self.entry_sd + probe_mean / probe_sd)
        excluded = np.isin(self.entry_ids, np.fromiter(exempt_entry_ids, dtype=np.int64)) if exempt_entry_ids else None

        if self._int8 is None:
            normalized = _scan(self.models, probe) * slope + intercept
            if excluded is not None:
                normalized[excluded] = -np.inf
            best = int(np.argmax(normalized))
        else:
            best = self._best_by_prefilter(probe, slope, intercept, excluded)
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

    def _best_by_prefilter(self, probe, slope, intercept, excluded) -> int:
        approx, bound = self._int8.approximate(probe)
        approx_norm = approx * slope + intercept
        upper = (approx + bound) * slope + intercept
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
        return torch.mv(torch.from_numpy(models), torch.from_numpy(probe)).numpy()
