"""The keyed detector's search: every chunk of the input under every warp hypothesis.

Chunks are 8 s windows (4 s hop) in input time: longer ones would let a small time-scale error
drift by more than a block. The input is analysed in spans of about a minute (one dense STFT
each, see ``features.Analysis``), so memory stays bounded for a ten-minute input, and every
chunk lies inside one span.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from . import detect as dt
from . import features as ft
from .features import Floats
from .hypotheses import Hypothesis
from .layout import Layout

CHUNK_S = 8.0
CHUNK_HOP_S = 4.0
SPAN_S = 64.0  # analysis span; consecutive spans overlap by a chunk


def chunk_bounds(n_samples: int, *, length_s: float = CHUNK_S, hop_s: float = CHUNK_HOP_S) -> list[tuple[int, int]]:
    """(start, stop) in 16 kHz samples of every chunk; the last one ends at the end of the input."""
    length = int(length_s * ft.SAMPLE_RATE)
    hop = int(hop_s * ft.SAMPLE_RATE)
    if n_samples <= length:
        return [(0, n_samples)]
    starts = list(range(0, n_samples - length + 1, hop))
    if starts[-1] + length < n_samples:
        starts.append(n_samples - length)
    return [(s, s + length) for s in starts]


@dataclass
class Span:
    start: int
    stop: int
    chunks: list[dt.Chunk]

    @property
    def whole(self) -> dt.Chunk | None:
        """The span as one more chunk, when it holds several: without a time-scale error to drift
        (unscaled and pitch hypotheses), a longer fold collects more evidence."""
        if len(self.chunks) < 2:
            return None
        return dt.Chunk(0, self.stop - self.start, self.start / ft.SAMPLE_RATE)


def spans_for(n_samples: int, bounds: list[tuple[int, int]]) -> list[Span]:
    """Group chunks into analysis spans of at most SPAN_S (or one chunk, if a chunk is longer)."""
    limit = int(SPAN_S * ft.SAMPLE_RATE)
    spans: list[Span] = []
    for start, stop in bounds:
        if spans and stop - spans[-1].start <= limit:
            span = spans[-1]
            span.stop = max(span.stop, stop)
        else:
            span = Span(start, stop, [])
            spans.append(span)
        span.chunks.append(dt.Chunk(start - span.start, stop - span.start, start / ft.SAMPLE_RATE))
    return spans


class Searcher:
    """Runs hypotheses over the chunks of one input, keeping each chunk's best alignment.

    Alignments come back per span: its chunks, then the whole span when it counts as a chunk.
    """

    def __init__(self, signal16: Floats, *, layout: Layout, bounds: list[tuple[int, int]]) -> None:
        self._signal = signal16
        self._spans = spans_for(signal16.size, bounds)
        self._scorer = dt.OffsetScorer(layout)
        self._cache: dict[int, tuple[ft.Analysis, float]] = {}
        self.best: list[dt.Alignment] | None = None

    def _analyses(self) -> Iterator[tuple[Span, ft.Analysis, float]]:
        keep = len(self._spans) == 1  # one span: analyse once for every pass
        for index, span in enumerate(self._spans):
            cached = self._cache.get(index)
            if cached is None:
                analysis = ft.Analysis(self._signal[span.start : span.stop])
                cached = (analysis, dt.loud_level_db(analysis))
                if keep:
                    self._cache[index] = cached
            yield span, cached[0], cached[1]

    def n_tests(self, grid: list[Hypothesis]) -> int:
        """Alignments the full search over ``grid`` tries: the union bound's count."""
        per_chunk = dt.tests_per_chunk(1)
        unscaled = sum(1 for h in grid if h.time_scale == 1.0)
        return sum(
            per_chunk * (len(grid) * len(span.chunks) + (unscaled if span.whole is not None else 0))
            for span in self._spans
        )

    def run(self, hypotheses: list[Hypothesis]) -> list[dt.Alignment]:
        """Search ``hypotheses`` and merge into the best alignment of each chunk so far."""
        if not hypotheses:
            if self.best is None:
                raise ValueError("no hypothesis to search")
            return self.best
        found: list[dt.Alignment | None] = []
        for span, analysis, peak in self._analyses():
            whole = span.whole
            best_here: list[dt.Alignment | None] = [None] * (len(span.chunks) + (whole is not None))
            for hypothesis in hypotheses:
                feats = dt.hypothesis_features(analysis, hypothesis, peak_db=peak)
                chunks = [*span.chunks, whole] if whole is not None and hypothesis.time_scale == 1.0 else span.chunks
                aligned = dt.best_alignments(
                    feats, chunks, scorer=self._scorer, span_start_s=span.start / ft.SAMPLE_RATE
                )
                for index, alignment in enumerate(aligned):
                    current = best_here[index]
                    if current is None or alignment.z > current.z:
                        best_here[index] = alignment
            found += best_here
        if self.best is not None:
            found = [b if a is None or b.z >= a.z else a for a, b in zip(found, self.best, strict=True)]
        if any(a is None for a in found):
            raise ValueError("the first search must include an unscaled hypothesis")
        self.best = [a for a in found if a is not None]
        return self.best

    def windows(self, hypothesis: Hypothesis, bounds: list[tuple[int, int]]) -> list[dt.Alignment]:
        """The best alignment of each of other windows (``bounds``) under one hypothesis; a window
        is read inside the span that holds most of it."""
        owner = [
            max(range(len(self._spans)), key=lambda i: min(e, self._spans[i].stop) - max(s, self._spans[i].start))
            for s, e in bounds
        ]
        found: list[dt.Alignment] = []
        for index, (span, analysis, peak) in enumerate(self._analyses()):
            inside = [
                dt.Chunk(max(s, span.start) - span.start, min(e, span.stop) - span.start, s / ft.SAMPLE_RATE)
                for (s, e), o in zip(bounds, owner, strict=True)
                if o == index
            ]
            if inside:
                feats = dt.hypothesis_features(analysis, hypothesis, peak_db=peak)
                found += dt.best_alignments(
                    feats, inside, scorer=self._scorer, span_start_s=span.start / ft.SAMPLE_RATE
                )
        return found
