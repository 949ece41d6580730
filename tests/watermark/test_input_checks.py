"""Bad input gets a specific error; awkward but valid input gets a correct result."""

from __future__ import annotations

import numpy as np
import pytest

from watermark import InvalidAudio, InvalidPayload
from watermark.audio import resample

PAYLOAD = bytes.fromhex("12345678")


@pytest.mark.parametrize(
    ("audio", "rate", "message"),
    [
        (np.zeros(0), 16_000, "empty"),
        (np.array([0.1]), 16_000, "at least"),
        (np.full(16_000 * 2, np.nan), 16_000, "NaN"),
        (np.r_[np.zeros(16_000 * 2), np.inf], 16_000, "NaN or infinite"),
        (np.zeros(16_000 * 2, dtype=np.int16), 16_000, "floating point"),
        (np.zeros(4_000 * 2), 4_000, "outside"),
        (np.zeros(96_000 * 2), 96_000, "outside"),
        (np.zeros(8_000 * 601), 8_000, "at most"),
    ],
)
def test_bad_input_gets_a_specific_error(keyed, audio, rate, message):
    with pytest.raises(InvalidAudio, match=message):
        keyed.embed(audio, sample_rate=rate, payload=PAYLOAD)
    with pytest.raises(InvalidAudio, match=message):
        keyed.detect(audio, sample_rate=rate)


def test_sample_rate_must_be_an_integer(keyed):
    with pytest.raises(InvalidAudio, match="integer"):
        keyed.detect(np.zeros(32_000), sample_rate=16_000.0)


def test_wrong_payload_length_is_refused(keyed, english_speech):
    x, sr = english_speech[0]
    with pytest.raises(InvalidPayload):
        keyed.embed(x, sample_rate=sr, payload=b"\x01\x02")


def test_stereo_is_refused_for_embedding_and_down_mixed_for_detection(keyed, english_speech):
    x, sr = english_speech[0]
    with pytest.raises(InvalidAudio, match="mono"):
        keyed.embed(np.stack([x, x]), sample_rate=sr, payload=PAYLOAD)
    y = keyed.embed(x, sample_rate=sr, payload=PAYLOAD)
    stereo = np.stack([y, 0.5 * y], axis=1)  # (samples, channels) as soundfile reads it
    assert keyed.detect(stereo, sample_rate=sr).payload == PAYLOAD


def test_narrowband_8k_input_round_trips(keyed, english_speech):
    x, sr = english_speech[1]
    narrow = resample(x, from_rate=sr, to_rate=8_000)
    y = keyed.embed(narrow, sample_rate=8_000, payload=PAYLOAD)
    assert y.shape == narrow.shape
    assert keyed.detect(y, sample_rate=8_000).payload == PAYLOAD


def test_48k_input_round_trips(keyed, english_speech):
    x, sr = english_speech[2]
    wide = resample(x, from_rate=sr, to_rate=48_000)
    y = keyed.embed(wide, sample_rate=48_000, payload=PAYLOAD)
    assert y.shape == wide.shape
    assert keyed.detect(y, sample_rate=48_000).payload == PAYLOAD


def test_ten_minutes_is_accepted_and_marked(keyed, long_german_speech):
    speech, sr = long_german_speech
    narrow = resample(speech, from_rate=sr, to_rate=8_000)
    ten_minutes = np.resize(narrow, 8_000 * 600)
    y = keyed.embed(ten_minutes, sample_rate=8_000, payload=PAYLOAD)
    found = keyed.detect(y, sample_rate=8_000)
    assert found.payload == PAYLOAD
    assert len(found.segments) == 1200


def test_one_second_of_speech_is_accepted(keyed, english_speech):
    x, sr = english_speech[0]
    y = keyed.embed(x[sr : 2 * sr], sample_rate=sr, payload=PAYLOAD)
    assert y.shape == (sr,)
