"""The configured stack: layers survive each other, configuration fails closed."""

from __future__ import annotations

import numpy as np
import pytest

from watermark import (
    DEV_KEY,
    WatermarkConfig,
    WatermarkConfigError,
    WatermarkKeyError,
    WatermarkSelfCheckFailed,
    build_stack,
)

from .conftest import TEST_KEY

PAYLOAD = bytes.fromhex("0000abcd")


@pytest.fixture(scope="module")
def stack():
    return build_stack(WatermarkConfig(schemes=("keyed", "perth"), key=TEST_KEY))


def test_layers_survive_each_other(stack, english_speech):
    x, sr = english_speech[0]
    y = stack.embed(x, sample_rate=sr, payload=PAYLOAD)  # verifies every layer after every step
    found = stack.detect(y, sample_rate=sr)
    assert found.detected
    assert found.scheme("keyed").payload == PAYLOAD
    assert found.scheme("perth").detected
    assert [d["name"] for d in found.as_json()["schemes"]] == ["keyed", "perth"]


def test_reverse_order_also_keeps_both(english_speech):
    reverse = build_stack(WatermarkConfig(schemes=("perth", "keyed"), key=TEST_KEY))
    x, sr = english_speech[1]
    found = reverse.detect(reverse.embed(x, sample_rate=sr, payload=PAYLOAD), sample_rate=sr)
    assert found.scheme("keyed").payload_verified and found.scheme("perth").detected


def test_unmarked_speech_is_not_detected_by_the_stack(stack, english_speech):
    x, sr = english_speech[2]
    found = stack.detect(x, sample_rate=sr)
    assert not found.detected
    assert not any(d.payload_verified for d in found.schemes)


def test_self_check_refuses_audio_whose_mark_cannot_survive(stack):
    """Digital silence cannot carry a mark: the stack must refuse rather than release it unmarked."""
    with pytest.raises(WatermarkSelfCheckFailed):
        stack.embed(np.zeros(3 * 16_000), sample_rate=16_000, payload=PAYLOAD)


def test_rejects_missing_key_outside_dev_mode():
    with pytest.raises(WatermarkKeyError):
        build_stack(WatermarkConfig(schemes=("keyed",), key=None, dev_mode=False))


def test_rejects_built_in_dev_key_in_production():
    with pytest.raises(WatermarkKeyError, match="development"):
        build_stack(WatermarkConfig(schemes=("keyed",), key=DEV_KEY, dev_mode=False))


def test_dev_mode_falls_back_to_the_public_dev_key():
    assert build_stack(WatermarkConfig(schemes=("keyed",), dev_mode=True)).names == ("keyed",)


def test_rejects_short_key():
    with pytest.raises(WatermarkKeyError, match="at least"):
        build_stack(WatermarkConfig(schemes=("keyed",), key=b"short"))


def test_rejects_unknown_scheme_and_empty_stack():
    with pytest.raises(WatermarkConfigError, match="unknown"):
        build_stack(WatermarkConfig(schemes=("keyed", "audiowmark"), key=TEST_KEY))
    with pytest.raises(WatermarkConfigError, match="empty"):
        build_stack(WatermarkConfig(schemes=(), key=TEST_KEY))
    with pytest.raises(WatermarkConfigError, match="twice"):
        build_stack(WatermarkConfig(schemes=("keyed", "keyed"), key=TEST_KEY))


def amplitude_modulated_chords(count: int, *, seed: int = 0, rate: int = 16_000) -> list[np.ndarray]:
    """Four-note chords, 4 s, tremolo 2-8 Hz: unmarked tonal audio PerTh's detector calls marked."""
    rng = np.random.default_rng(seed)
    t = np.arange(4 * rate) / rate
    chords = []
    for _ in range(count):
        notes = 220 * 2 ** (rng.integers(0, 24, 4) / 12)
        tremolo = 1 + 0.5 * np.sin(2 * np.pi * rng.uniform(2, 8) * t)
        chords.append(0.05 * tremolo * sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) for f in notes))
    return chords


def test_default_stack_embeds_the_keyed_mark_alone():
    assert WatermarkConfig().schemes == ("keyed",)
    assert build_stack(WatermarkConfig(dev_mode=True)).names == ("keyed",)


def test_verdict_rests_only_on_layers_with_a_computed_bound():
    """PerTh calls some unmarked chords marked; the stack's verdict must not follow it."""
    stack = build_stack(WatermarkConfig(schemes=("keyed",), key=TEST_KEY, detect_only=("perth",)))
    answers = [stack.detect(chord, sample_rate=16_000, segments=False) for chord in amplitude_modulated_chords(20)]
    assert any(a.scheme("perth").detected for a in answers)  # the case this guards against does occur
    for answer in answers:
        assert not answer.detected
        assert answer.basis == ("keyed",)
        assert answer.as_json()["verdict_basis"] == ["keyed"]
        assert not answer.scheme("keyed").detected


def test_detect_only_layer_is_reported_but_never_embedded(english_speech):
    stack = build_stack(WatermarkConfig(schemes=("keyed",), key=TEST_KEY, detect_only=("perth",)))
    x, sr = english_speech[0]
    found = stack.detect(stack.embed(x, sample_rate=sr, payload=PAYLOAD), sample_rate=sr, segments=False)
    assert found.detected and found.scheme("keyed").payload == PAYLOAD
    assert not found.scheme("perth").detected  # no PerTh layer was written
    assert [d["name"] for d in found.as_json()["schemes"]] == ["keyed", "perth"]


def test_keyed_layer_cannot_be_detect_only():
    with pytest.raises(WatermarkConfigError, match="never detect-only"):
        build_stack(WatermarkConfig(schemes=("perth",), key=TEST_KEY, detect_only=("keyed",)))
