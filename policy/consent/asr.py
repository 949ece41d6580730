"""Offline English speech recognition with pocketsphinx 5 (its US English model ships in the wheel).

Two searches are used by statement verification (a third, ``transcribe_open``, transcribes
reference recordings with the general language model):

* ``transcribe``: decoding with a uniform unigram language model over a given word list (the
  statement's words, the phrase vocabulary and the 400 most frequent English words as decoys),
  giving words with times. The bundled general n-gram model reads synthetic and accented speech
  poorly (it hears "voice" as "boys"); a closed vocabulary with equal priors lets the acoustics
  choose, and the decoys give other speech somewhere to go, so a wrong statement scores low.
* ``decode_grammar``: decoding constrained by a JSGF grammar. The random phrase is decoded this
  way against the whole challenge vocabulary, so a recording of another challenge's phrase
  decodes to *that* phrase's words and is refused.

Before either search the audio gets a faint noise floor (``NOISE_FLOOR_DB`` below its RMS, from
a fixed seed, so a recording always decodes the same way). A microphone always records one;
synthetic speech often has none (digital silence, empty frequency bands), and pocketsphinx's
front end (noise estimate, cepstral mean) then reads it badly: espeak-ng statements scored 0.1-0.3
clean and 0.5-0.6 with 20 dB of added noise. The floor is far below any real room's noise.

A pocketsphinx ``Decoder`` is not thread-safe; every call holds the recognizer's lock.
"""

from __future__ import annotations

import math
import os
import tempfile
import threading
from dataclasses import dataclass
from functools import cache

import numpy as np
from scipy.signal import resample_poly

from policy.errors import SpeechRecognitionFailed

ASR_SAMPLE_RATE = 16_000
# pocketsphinx's default front end uses 100 frames per second.
FRAMES_PER_SECOND = 100
# Level of the noise floor added before recognition, relative to the recording's RMS (see above).
NOISE_FLOOR_DB = -40.0
_NOISE_SEED = 20261124


@dataclass(frozen=True)
class RecognizedWord:
    text: str
    start_s: float
    end_s: float


@cache
def pronunciation_dictionary() -> dict[str, tuple[str, ...]]:
    """Word -> first pronunciation, from the CMU dictionary bundled with pocketsphinx."""
    import pocketsphinx

    path = os.path.join(pocketsphinx.get_model_path(), "en-us", "cmudict-en-us.dict")
    words: dict[str, tuple[str, ...]] = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            word, *phones = line.split()
            words.setdefault(word.split("(")[0], tuple(phones))
    return words


def to_asr_pcm(audio: np.ndarray, *, sample_rate: int) -> bytes:
    """Mono float waveform at any rate -> 16 kHz little-endian int16 bytes for pocketsphinx, with
    the fixed noise floor added."""
    audio = np.asarray(audio, dtype=np.float64)
    if sample_rate != ASR_SAMPLE_RATE:
        divisor = np.gcd(int(sample_rate), ASR_SAMPLE_RATE)
        audio = resample_poly(audio, ASR_SAMPLE_RATE // divisor, int(sample_rate) // divisor)
    rms = float(np.sqrt(np.mean(audio**2))) if audio.size else 0.0
    if rms > 0.0:
        floor = np.random.default_rng(_NOISE_SEED).normal(0.0, rms * 10 ** (NOISE_FLOOR_DB / 20), audio.size)
        audio = audio + floor
    return bytes((np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2").tobytes())


class SpeechRecognizer:
    """One pocketsphinx decoder with its default English acoustic model, dictionary and LM."""

    def __init__(self) -> None:
        from pocketsphinx import Decoder

        self._lock = threading.Lock()
        self._decoder = Decoder(samprate=ASR_SAMPLE_RATE, loglevel="FATAL")
        self._lm_search = self._decoder.current_search()
        self._grammar_count = 0

    def transcribe(self, audio: np.ndarray, *, sample_rate: int, vocabulary: set[str]) -> list[RecognizedWord]:
        """Decode with equal prior probability for every word of ``vocabulary``."""
        from pocketsphinx import NGramModel

        dictionary = pronunciation_dictionary()
        words = sorted(word for word in vocabulary if word in dictionary)
        if not words:
            raise SpeechRecognitionFailed("no recognizable words to listen for")
        log_prob = -math.log10(len(words) + 1)
        arpa = (
            f"\\data\\\nngram 1={len(words) + 2}\n\n\\1-grams:\n{log_prob:.4f} </s>\n-99.0000 <s>\n"
            + "".join(f"{log_prob:.4f} {word}\n" for word in words)
            + "\n\\end\\\n"
        )
        pcm = to_asr_pcm(audio, sample_rate=sample_rate)
        with self._lock:
            # pocketsphinx reads language models only from files.
            with tempfile.NamedTemporaryFile("w", suffix=".arpa", encoding="utf-8") as handle:
                handle.write(arpa)
                handle.flush()
                model = NGramModel(self._decoder.config, self._decoder.logmath, handle.name)
            self._decoder.add_lm("closed_vocabulary", model)
            try:
                self._decoder.activate_search("closed_vocabulary")
                return self._decode(pcm)
            finally:
                self._decoder.activate_search(self._lm_search)
                self._decoder.remove_search("closed_vocabulary")

    def transcribe_open(self, audio: np.ndarray, *, sample_rate: int) -> list[RecognizedWord]:
        """Decode with the bundled general English language model: any words, as heard. For
        reference recordings, whose text nobody gave (the embedded engine reads it back)."""
        pcm = to_asr_pcm(audio, sample_rate=sample_rate)
        with self._lock:
            return self._decode(pcm)

    def decode_grammar(self, audio: np.ndarray, *, sample_rate: int, jsgf: str) -> list[RecognizedWord]:
        """Decode under a JSGF grammar; an empty list when no path through the grammar fits."""
        pcm = to_asr_pcm(audio, sample_rate=sample_rate)
        with self._lock:
            self._grammar_count += 1
            name = f"grammar{self._grammar_count}"
            try:
                self._decoder.add_jsgf_string(name, jsgf)
            except ValueError as exc:
                raise SpeechRecognitionFailed(f"statement grammar rejected by the recognizer: {exc}") from exc
            try:
                self._decoder.activate_search(name)
                return self._decode(pcm)
            finally:
                self._decoder.activate_search(self._lm_search)
                self._decoder.remove_search(name)

    def _decode(self, pcm: bytes) -> list[RecognizedWord]:
        decoder = self._decoder
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        if decoder.hyp() is None:
            return []
        words = []
        for segment in decoder.seg():
            text = segment.word
            # Fillers (<s>, </s>, <sil>, [NOISE], ++NOISE++) are not words of the statement.
            if text.startswith(("<", "[", "+")):
                continue
            words.append(
                RecognizedWord(
                    text=text.split("(")[0].lower(),
                    start_s=segment.start_frame / FRAMES_PER_SECOND,
                    end_s=(segment.end_frame + 1) / FRAMES_PER_SECOND,
                )
            )
        return words


@cache
def default_recognizer() -> SpeechRecognizer:
    """The process-wide recognizer (loading the model takes about half a second)."""
    return SpeechRecognizer()
