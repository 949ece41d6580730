"""Parallel conversion on synthetic frame sequences (alignment, the learned offsets, storage) and
the stored profile versions, without loading any model."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from engine.conversion import (
    KEY_DIMS,
    NEIGHBOURS,
    ParallelReading,
    SpectralMapping,
    dtw_path,
    learn_mapping,
)
from engine.conversion_profile import decode_parameters, encode_parameters
from engine.errors import VoiceProfileInvalid
from engine.interface import VoiceProfile

DIMS = 40


def phoneme_sequence(rng: np.random.Generator, durations: list[int], inventory: np.ndarray) -> np.ndarray:
    """Frames of a made-up utterance: each 'phoneme' a fixed vector plus frame noise, with loud
    speech (coefficient 0) between quiet pauses at both ends."""
    frames = [np.tile(inventory[p % len(inventory)], (d, 1)) for p, d in enumerate(durations)]
    speech = np.vstack(frames) + rng.normal(0, 0.05, (sum(durations), DIMS))
    speech[:, 0] = 10.0
    pause = np.zeros((20, DIMS))
    pause[:, 0] = -10.0
    return np.vstack([pause, speech, pause])


def test_dtw_recovers_a_time_stretch() -> None:
    rng = np.random.default_rng(1)
    source = rng.normal(size=(60, 5)).cumsum(axis=0)
    stretched = np.repeat(source, 2, axis=0)  # every frame held twice as long
    path = dtw_path(source, stretched)
    assert tuple(path[0]) == (0, 0) and tuple(path[-1]) == (59, 119)
    assert np.all(np.diff(path, axis=0) >= 0)  # monotone
    # each target frame pairs with the source frame it was copied from
    assert np.mean(path[:, 0] == path[:, 1] // 2) > 0.95


def test_dtw_refuses_an_empty_sequence() -> None:
    with pytest.raises(ValueError):
        dtw_path(np.zeros((0, 3)), np.zeros((4, 3)))


def test_learned_mapping_moves_each_phoneme_by_its_own_offset() -> None:
    """Target speaker = source phonemes each shifted differently, spoken at another pace; the
    mapping learned from one parallel reading converts a new utterance of the same phonemes."""
    rng = np.random.default_rng(7)
    inventory = rng.normal(0, 1.0, (6, DIMS))
    shift = rng.normal(0, 0.5, (6, DIMS))
    shift[:, 0] = 0.0
    durations = list(rng.integers(8, 20, 24))
    source = phoneme_sequence(rng, durations, inventory)
    target = phoneme_sequence(rng, [int(d * 1.4) for d in durations], inventory + shift)
    mapping = learn_mapping([ParallelReading(source=source, target=target)])

    new_durations = list(rng.integers(8, 20, 12))
    test_source = phoneme_sequence(rng, new_durations, inventory)[20:-20]
    expected = phoneme_sequence(rng, new_durations, inventory + shift)[20:-20]
    converted = mapping.apply(test_source)
    before = np.abs(test_source[:, 1:] - expected[:, 1:]).mean()
    after = np.abs(converted[:, 1:] - expected[:, 1:]).mean()
    assert after < 0.25 * before
    assert np.array_equal(converted[:, 0], test_source[:, 0])  # level is left to the source


def test_strength_scales_the_offset() -> None:
    rng = np.random.default_rng(3)
    mapping = SpectralMapping(
        keys=rng.normal(size=(40, KEY_DIMS - 1)).astype(np.float32),
        offsets=np.ones((40, DIMS - 1), dtype=np.float32),
    )
    frames = rng.normal(size=(5, DIMS))
    half = mapping.apply(frames, strength=0.5)
    assert np.allclose(half[:, 1:] - frames[:, 1:], 0.5, atol=1e-6)


def test_mapping_round_trips_through_json() -> None:
    rng = np.random.default_rng(5)
    mapping = SpectralMapping(
        keys=rng.normal(size=(50, KEY_DIMS - 1)).astype(np.float32),
        offsets=rng.normal(size=(50, DIMS - 1)).astype(np.float32),
    )
    stored = json.loads(json.dumps(mapping.to_json()))
    restored = SpectralMapping.from_json(stored)
    assert restored.pairs == 50
    assert np.allclose(restored.keys, mapping.keys, atol=1e-2)  # float16 storage
    assert np.allclose(restored.offsets, mapping.offsets, atol=1e-2)


@pytest.mark.parametrize(
    "change",
    [
        {"keys": "not base64!"},
        {"key_width": 7},
        {"key_width": True},
        {"offset_width": -1},
        {"offsets": ""},
    ],
)
def test_malformed_stored_mapping_is_refused(change: dict[str, object]) -> None:
    rng = np.random.default_rng(2)
    mapping = SpectralMapping(
        keys=rng.normal(size=(20, KEY_DIMS - 1)).astype(np.float32),
        offsets=rng.normal(size=(20, DIMS - 1)).astype(np.float32),
    )
    with pytest.raises((ValueError, KeyError, TypeError)):
        SpectralMapping.from_json({**mapping.to_json(), **change})


def test_non_finite_mapping_is_refused() -> None:
    keys = np.zeros((NEIGHBOURS, KEY_DIMS - 1), dtype=np.float32)
    offsets = np.zeros((NEIGHBOURS, DIMS - 1), dtype=np.float32)
    offsets[3, 3] = np.nan
    with pytest.raises(ValueError):
        SpectralMapping(keys=keys, offsets=offsets)


def test_too_few_pairs_is_refused() -> None:
    with pytest.raises(ValueError):
        SpectralMapping(
            keys=np.zeros((NEIGHBOURS - 1, KEY_DIMS - 1), dtype=np.float32),
            offsets=np.zeros((NEIGHBOURS - 1, DIMS - 1), dtype=np.float32),
        )


V1_PROFILE = Path(__file__).parent / "profiles" / "voice_profile_v1.json"


def test_version_1_profile_decodes_without_conversion_and_keeps_dio() -> None:
    params = VoiceProfile.from_json(V1_PROFILE.read_text()).parameters
    stored = decode_parameters(params)
    assert stored.mapping is None and stored.adaptation.mapping_strength == 0.0
    assert stored.f0_estimator == "dio"


def test_version_2_round_trips_and_uses_harvest() -> None:
    old = decode_parameters(VoiceProfile.from_json(V1_PROFILE.read_text()).parameters)
    rng = np.random.default_rng(4)
    mapping = SpectralMapping(
        keys=rng.normal(size=(30, KEY_DIMS - 1)).astype(np.float32),
        offsets=rng.normal(size=(30, DIMS - 1)).astype(np.float32),
    )
    adaptation = dataclasses.replace(old.adaptation, mapping_strength=0.6)
    params = json.loads(json.dumps(encode_parameters(adaptation, old.pool, mapping)))
    stored = decode_parameters(params)
    assert params["adaptation_version"] == "2" and stored.f0_estimator == "harvest"
    assert stored.adaptation == adaptation and stored.mapping is not None and stored.mapping.pairs == 30


@pytest.mark.parametrize(
    "change",
    [
        lambda p: p["adaptation"].update(mapping_strength=0.6),  # names a conversion it does not hold
        lambda p: p["adaptation"].update(mapping_strength=float("nan")),
        lambda p: p["adaptation"].update(warp=True),
        lambda p: p.update(adaptation_version="0"),
        lambda p: p.update(conversion="keys"),
        lambda p: p["adaptation"].pop("mapping_strength"),
    ],
)
def test_altered_stored_adaptation_is_refused(change) -> None:
    old = decode_parameters(VoiceProfile.from_json(V1_PROFILE.read_text()).parameters)
    params = json.loads(json.dumps(encode_parameters(old.adaptation, old.pool, None)))
    change(params)
    with pytest.raises(VoiceProfileInvalid):
        decode_parameters(params)
