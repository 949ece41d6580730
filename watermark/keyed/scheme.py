"""clonegate's own keyed watermark: an encrypted, authenticated 32-bit identifier in every output."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from ..audio import mono_for_detection, mono_for_embedding, resample
from ..detection import Detection, Segment
from ..errors import WatermarkEmbedFailed
from . import code
from . import detect as dt
from .attribution import Attribution, CandidateSet, attribute
from .embed import embed_16k
from .features import SAMPLE_RATE, Floats
from .hypotheses import Hypothesis, search_grid
from .keys import MESSAGE_BITS, PAYLOAD_BYTES, SEALINGS, check_key, open_payload, seal_many, seal_payload
from .layout import CODED_BITS, Layout, build_layout
from .search import Searcher, chunk_bounds

SEGMENT_S = 0.5
PAYLOAD_ATTEMPTS = 3  # alignments decoded per detection; each opening verifies a random message with probability 2**-32
LIST_SIZE = 16  # messages per alignment the list decoder offers when the best one does not verify
# Two payload frames (2.05 s each) fit in a window this long; it can lie inside one of several
# pieces marked separately and joined.
SHORT_CHUNK_S = 4.5
SHORT_CHUNK_HOP_S = 1.5

Candidates = Callable[[], CandidateSet | Sequence[bytes]]


class KeyedScheme:
    """Keyed band-balance watermark carrying ``PAYLOAD_BYTES`` bytes, encrypted and HMAC-authenticated.

    ``margin_db`` and ``max_change_db`` trade robustness for quality (see docs/watermark.md);
    ``max_false_positive`` is the computed false-positive probability at or below which the mark
    counts as detected (and a candidate counts as attributed).
    """

    name = "keyed"
    payload_bytes = PAYLOAD_BYTES

    def __init__(
        self,
        key: bytes,
        *,
        margin_db: float = 2.0,
        max_change_db: float = 10.0,
        iterations: int = 3,
        max_false_positive: float = 1e-4,
        grid: list[Hypothesis] | None = None,
    ) -> None:
        self._key = check_key(key)
        self._layout = build_layout(self._key)
        self.margin_db = margin_db
        self.max_change_db = max_change_db
        self.iterations = iterations
        self.max_false_positive = max_false_positive
        self.grid = grid if grid is not None else search_grid()

    def embed(self, audio: npt.NDArray[np.floating], *, sample_rate: int, payload: bytes) -> Floats:
        samples, rate = mono_for_embedding(audio, sample_rate=sample_rate)
        coded = code.encode(seal_payload(self._key, payload))
        host16 = resample(samples, from_rate=rate, to_rate=SAMPLE_RATE)
        try:
            mark16 = embed_16k(
                host16,
                layout=self._layout,
                coded_bits=coded,
                margin_db=self.margin_db,
                max_change_db=self.max_change_db,
                iterations=self.iterations,
            )
        except ValueError as exc:
            raise WatermarkEmbedFailed(f"keyed watermark could not be embedded: {exc}") from exc
        mark = resample(mark16, from_rate=SAMPLE_RATE, to_rate=rate)
        mark = np.pad(mark, (0, max(0, samples.size - mark.size)))[: samples.size]
        marked = samples + mark
        if np.max(np.abs(samples)) <= 1.0:
            marked = np.clip(marked, -1.0, 1.0)
        dtype = np.asarray(audio).dtype
        return np.asarray(marked, dtype=dtype if dtype in (np.float32, np.float64) else np.float64)

    def detect(
        self,
        audio: npt.NDArray[np.floating],
        *,
        sample_rate: int,
        segments: bool = True,
        candidates: Candidates | None = None,
    ) -> Detection:
        """Presence, warp, payload and segments; ``candidates`` (called only when no payload
        decodes) lists the identifiers of released outputs a short clip may be attributed to."""
        return self.detect_with_bits(audio, sample_rate=sample_rate, segments=segments, candidates=candidates)[0]

    def detect_with_bits(
        self,
        audio: npt.NDArray[np.floating],
        *,
        sample_rate: int,
        segments: bool = True,
        candidates: Candidates | None = None,
    ) -> tuple[Detection, npt.NDArray[np.int8] | None]:
        """Detection plus the decoded (still encrypted) message bits of the best alignment, for benchmarks."""
        samples, rate = mono_for_detection(audio, sample_rate=sample_rate)
        signal16 = resample(samples, from_rate=rate, to_rate=SAMPLE_RATE)
        bounds = chunk_bounds(signal16.size)
        searcher = Searcher(signal16, layout=self._layout, bounds=bounds)
        n_tests = searcher.n_tests(self.grid)  # the full search, even when it stops early

        # Unwarped first: most inputs are not warped, and a maximum over a subset of the
        # alignments can only be smaller, so the bound for the full search holds.
        alignments = searcher.run(self.grid[:1])
        if dt.false_positive_bound(max(a.z for a in alignments), n_tests) > self.max_false_positive:
            alignments = searcher.run(self.grid[1:])
        best = max(alignments, key=lambda a: a.z)
        fpp = dt.false_positive_bound(best.z, n_tests)

        payload, best_bits, attempts = self._read_payload(alignments)
        if payload is None and fpp <= self.max_false_positive:
            # Pieces marked one by one and then joined (a streamed output's chunks, a splice) put
            # two frame grids into most 8 s windows. Shorter windows, under the warp the
            # presence search found, each see one grid.
            short = searcher.windows(
                best.hypothesis, chunk_bounds(signal16.size, length_s=SHORT_CHUNK_S, hop_s=SHORT_CHUNK_HOP_S)
            )
            payload, short_bits, more = self._read_payload(short)
            attempts += more
            if payload is not None or best_bits is None:
                best_bits = short_bits
        if payload is None and fpp <= self.max_false_positive:
            # The mark is there but the most likely message did not verify: the tag picks the
            # message out of the most likely few (a list decoder checked by its CRC).
            payload, _, more = self._read_payload(alignments, list_size=LIST_SIZE)
            attempts += more
        source: str | None = None
        misattribution: float | None = None
        if payload is not None:
            # an authenticated payload is itself evidence: a random one verifies with probability 2**-32
            misattribution = attempts * len(SEALINGS) * 2.0**-32
            fpp = min(fpp, misattribution)
            source = "decoded"
        elif candidates is not None:
            found = self.attribute(alignments, candidates())
            if found.best is not None and found.false_attribution_probability <= self.max_false_positive:
                # the bound also holds for unmarked audio, so it is evidence of the mark as well
                payload, source = found.best, "attributed"
                misattribution = found.false_attribution_probability
                fpp = min(fpp, misattribution)
        detection = Detection(
            scheme=self.name,
            detected=fpp <= self.max_false_positive,
            score=best.z,
            false_positive_probability=fpp,
            payload=payload,
            payload_verified=source == "decoded",
            segments=_merge_segments(alignments, self._layout, samples.size / rate) if segments else (),
            warp=best.hypothesis.describe,
            payload_source=source,
            false_attribution_probability=misattribution,
        )
        return detection, best_bits

    def attribute(self, alignments: list[dt.Alignment], candidates: CandidateSet | Sequence[bytes]) -> Attribution:
        """The candidate the strongest alignments match best, with its false-attribution bound."""
        strongest = sorted(alignments, key=lambda a: -a.z)[:PAYLOAD_ATTEMPTS]
        listed = candidates if isinstance(candidates, CandidateSet) else self.candidate_set(candidates)
        return attribute(strongest, layout=self._layout, candidates=listed, n_bits=MESSAGE_BITS)

    def candidate_set(self, identifiers: Sequence[bytes]) -> CandidateSet:
        """Released outputs' identifiers with the coded bits the current sealing wrote for each."""
        listed = tuple(bytes(i) for i in identifiers)
        if not listed:
            return CandidateSet((), np.zeros((0, (CODED_BITS + 7) // 8), dtype=np.uint8))
        coded = code.encode_many(seal_many(self._key, list(listed)))
        return CandidateSet(listed, np.packbits(coded, axis=1))

    def _read_payload(
        self, alignments: list[dt.Alignment], *, list_size: int = 1
    ) -> tuple[bytes | None, npt.NDArray[np.int8] | None, int]:
        """(verified payload or None, decoded bits of the best attempt, messages tried) from the
        strongest ``PAYLOAD_ATTEMPTS`` alignments; ``list_size`` > 1 tries that many of the most
        likely messages of each (each one counts in the forgery bound)."""
        best_bits = None
        attempts = 0
        for alignment in sorted(alignments, key=lambda a: -a.z)[:PAYLOAD_ATTEMPTS]:
            soft = dt.payload_soft_bits(alignment, self._layout, CODED_BITS)
            if not np.any(soft):
                continue
            messages = (
                [code.decode(soft, MESSAGE_BITS)] if list_size == 1 else code.decode_list(soft, MESSAGE_BITS, list_size)
            )
            best_bits = messages[0] if best_bits is None else best_bits
            for bits in messages:
                attempts += 1
                payload = open_payload(self._key, bits)
                if payload is not None:
                    return payload, bits, attempts
        return None, best_bits, attempts

    def sealed_bits(self, payload: bytes) -> npt.NDArray[np.int64]:
        """The encrypted, tagged message bits that ``embed`` writes for ``payload`` (for bit-accuracy figures)."""
        return seal_payload(self._key, payload)


def _merge_segments(alignments: list[dt.Alignment], layout: Layout, duration_s: float) -> tuple[Segment, ...]:
    """Local z-score per SEGMENT_S slot, under the best-aligned chunk covering that slot."""
    best: dict[int, tuple[float, float, float]] = {}
    for alignment in alignments:
        for slot, (contrib, energy) in dt.segment_sums(alignment, layout, resolution_s=SEGMENT_S).items():
            if slot not in best or alignment.z > best[slot][0]:
                best[slot] = (alignment.z, contrib, energy)
    n_slots = int(np.ceil(duration_s / SEGMENT_S - 1e-9))
    segments = []
    for slot in range(n_slots):
        _, contrib, energy = best.get(slot, (0.0, 0.0, 0.0))
        z = contrib / np.sqrt(energy) if energy > 1e-9 else 0.0
        segments.append(Segment(slot * SEGMENT_S, min((slot + 1) * SEGMENT_S, duration_s), float(z)))
    return tuple(segments)
