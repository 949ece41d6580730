"""Reproduces ``src/f5_tts/infer/utils_infer.py``'s reference preprocessing and its cache."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable

import soundfile as sf

# utils_infer.py 35: a module-level cache, md5 of the reference file -> preprocessed temp file.
_ref_audio_cache: dict[str, str] = {}
CLIP_MS = 12000


def preprocess_ref_audio_text(
    ref_audio_orig: str, ref_text: str, show_info: Callable[..., None] = print
) -> tuple[str, str]:
    # utils_infer.py 298-304: the key is the md5 of the file's bytes.
    with open(ref_audio_orig, "rb") as audio_file:
        audio_hash = hashlib.md5(audio_file.read()).hexdigest()
    if audio_hash in _ref_audio_cache:  # 308-310
        ref_audio = _ref_audio_cache[audio_hash]
    else:
        # 313-314: a NamedTemporaryFile(delete=False) that nothing ever removes.
        with tempfile.NamedTemporaryFile(suffix=".wav", delete=False) as f:
            temp_path = f.name
        audio, rate = sf.read(ref_audio_orig, dtype="float32")
        # 344-346: a reference over 12 s is clipped to 12 s (the silence-based clipping of
        # 318-341 cuts at a pause first; the transcript is kept whole either way).
        if len(audio) * 1000 / rate > CLIP_MS:
            show_info("Audio is over 12s, clipping short. (3)")
            audio = audio[: int(CLIP_MS * rate / 1000)]
        sf.write(temp_path, audio, rate)
        ref_audio = temp_path
        _ref_audio_cache[audio_hash] = ref_audio  # 352-353
    # 369-374: the transcript gets a sentence end, and is otherwise used as given.
    if not ref_text.endswith(". ") and not ref_text.endswith("。"):
        ref_text += " " if ref_text.endswith(".") else ". "
    return ref_audio, ref_text
