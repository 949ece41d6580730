"""Speech and schemes shared by the watermark tests."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

torch.set_num_threads(1)

TEST_KEY = b"watermark-test-key-0123456789abcdef"


@pytest.fixture(scope="session")
def english_speech(speech_dir):
    """A few real English clips as (samples, rate)."""
    clips = []
    for path in sorted(speech_dir.glob("en_*.wav"))[:4]:
        samples, rate = sf.read(path, dtype="float64")
        clips.append((samples, rate))
    return clips


@pytest.fixture(scope="session")
def long_german_speech(speech_dir):
    """Several German clips joined, for splicing and length tests (other speakers than the English ones)."""
    parts = []
    rate = None
    for path in sorted(speech_dir.glob("de_*.wav"))[:6]:
        samples, rate = sf.read(path, dtype="float64")
        parts.append(samples)
    return np.concatenate(parts), rate


@pytest.fixture(scope="session")
def keyed():
    from watermark import KeyedScheme

    return KeyedScheme(TEST_KEY)
