"""The embedded engine end to end on real speech: Piper + WORLD adaptation and parallel conversion."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from engine import world_adapt as wa
from engine.conversion_profile import decode_parameters
from engine.embedded import EmbeddedEngine
from engine.errors import (
    EngineCancelled,
    LanguageUnsupported,
    ReferenceInvalid,
    TextEmpty,
    TextTooLong,
    VoiceProfileInvalid,
)
from engine.interface import CancelToken, ReferenceClip, SynthesisControls, VoiceProfile

pytestmark = pytest.mark.slow
torch.set_num_threads(1)

SPEAKER = "en_brandon.wav"
# What the consent check's recognizer (pocketsphinx, default language model) heard in the first
# half of that clip: the parallel text the base voice reads.
HEARD = "yeah it's definitely worth checking out especially"
# A profile stored by the engine before parallel conversion (adaptation version 1, en_sarah).
V1_PROFILE = Path(__file__).parent / "profiles" / "voice_profile_v1.json"
SENTENCE = "Please call me back this afternoon, I will be at home after the meeting."


@pytest.fixture(scope="module")
def encoder():
    from resemblyzer import VoiceEncoder

    return VoiceEncoder("cpu", verbose=False)


@pytest.fixture(scope="module")
def embed(encoder):
    from resemblyzer import preprocess_wav

    def run(audio: np.ndarray, rate: int) -> np.ndarray:
        return encoder.embed_utterance(preprocess_wav(np.asarray(audio, dtype=np.float32), source_sr=rate))

    return run


@pytest.fixture(scope="module")
def clip(speech_dir) -> tuple[np.ndarray, np.ndarray, int]:
    """First half prepares the voice, second half is held out for scoring."""
    audio, rate = sf.read(speech_dir / SPEAKER, dtype="float32")
    half = len(audio) // 2
    return audio[:half], audio[half:], rate


@pytest.fixture(scope="module")
def engine() -> EmbeddedEngine:
    engine = EmbeddedEngine(prepare_budget_s=6.0)
    engine.load()
    engine.warm_up()
    return engine


@pytest.fixture(scope="module")
def voice(engine, clip, embed) -> VoiceProfile:
    cache: dict[int, np.ndarray] = {}

    def similarity(candidate, candidate_rate, reference, reference_rate) -> float:
        if id(reference) not in cache:
            cache[id(reference)] = embed(reference, reference_rate)
        return float(embed(candidate, candidate_rate) @ cache[id(reference)])

    prepare, _, rate = clip
    return engine.prepare_voice(references=[ReferenceClip(prepare, rate, transcript=HEARD)], similarity=similarity)


def test_description_names_model_and_device(engine) -> None:
    description = engine.describe()
    assert description.name == "embedded-piper-world"
    assert description.model_id.startswith("en_US-joe-medium@sha256:")
    assert description.device in {"cpu", "cuda"}


def test_profile_is_plain_json_and_round_trips(voice) -> None:
    stored = voice.to_json()
    assert isinstance(json.loads(stored), dict)
    assert VoiceProfile.from_json(stored) == voice
    assert voice.metrics["best_similarity"] > voice.metrics["unadapted_similarity"]


def test_adapted_output_is_speech_of_the_right_length(engine, voice) -> None:
    audio = engine.synthesize(text=SENTENCE, language="en", voice=VoiceProfile.from_json(voice.to_json()))
    assert audio.sample_rate == 22050
    # Piper speaks about 14 characters per second; adaptation keeps the timing.
    assert 0.04 * len(SENTENCE) < audio.duration_s < 0.12 * len(SENTENCE)
    assert np.all(np.isfinite(audio.samples)) and np.max(np.abs(audio.samples)) <= 1.0
    frame = audio.sample_rate // 50
    frames = audio.samples[: len(audio.samples) // frame * frame].reshape(-1, frame)
    assert np.mean(np.sqrt(np.mean(frames**2, axis=1)) > 0.01) > 0.5  # mostly sound, not silence


def test_adapted_output_is_closer_to_the_speaker_than_the_plain_voice(engine, voice, clip, embed) -> None:
    _, held_out, rate = clip
    target = embed(held_out, rate)
    adapted = engine.synthesize(text=SENTENCE, language="en", voice=voice)
    plain = engine.synthesize_unadapted(text=SENTENCE)
    adapted_score = float(embed(adapted.samples, adapted.sample_rate) @ target)
    plain_score = float(embed(plain.samples, plain.sample_rate) @ target)
    assert adapted_score > plain_score + 0.03


def test_speed_and_pitch_controls_take_effect(engine, voice) -> None:
    normal = engine.synthesize(text=SENTENCE, language="en", voice=voice)
    fast = engine.synthesize(text=SENTENCE, language="en", voice=voice, controls=SynthesisControls(speed=1.6))
    assert fast.duration_s < 0.8 * normal.duration_s
    import pyworld

    def median_f0(samples: np.ndarray, rate: int) -> float:
        f0, _ = pyworld.dio(samples.astype(np.float64), rate)
        return float(np.median(f0[f0 > 0]))

    up = engine.synthesize(text=SENTENCE, language="en", voice=voice, controls=SynthesisControls(pitch_semitones=5))
    ratio = median_f0(up.samples, up.sample_rate) / median_f0(normal.samples, normal.sample_rate)
    assert 1.2 < ratio < 1.5  # five semitones is a factor of 1.33


def test_long_text_is_streamed_in_sentence_order(engine, voice) -> None:
    text = "One. Two two two two. Three three three three three three three three."
    chunks = list(engine.synthesize_stream(text=text, language="en", voice=voice))
    assert len(chunks) == 3
    durations = [chunk.duration_s for chunk in chunks]
    assert durations[0] < durations[1] < durations[2]


def test_cancel_stops_between_sentences(engine, voice) -> None:
    token = CancelToken()
    stream = engine.synthesize_stream(
        text="First sentence here. Second one here. Third one.", language="en", voice=voice, cancel=token
    )
    next(stream)
    token.cancel("client went away")
    with pytest.raises(EngineCancelled):
        next(stream)


@pytest.mark.parametrize(("text", "error"), [("", TextEmpty), ("  ?! ", TextEmpty), ("word " * 2000, TextTooLong)])
def test_bad_text_is_refused(engine, voice, text, error) -> None:
    with pytest.raises(error):
        engine.synthesize(text=text, language="en", voice=voice)


def test_unsupported_language_is_refused(engine, voice) -> None:
    with pytest.raises(LanguageUnsupported):
        engine.synthesize(text="Guten Tag.", language="de", voice=voice)


def test_silent_reference_is_refused(engine) -> None:
    with pytest.raises(ReferenceInvalid):
        engine.prepare_voice(references=[ReferenceClip(np.zeros(24000 * 4, dtype=np.float32), 24000)])


def test_short_reference_is_refused(engine, clip) -> None:
    prepare, _, rate = clip
    with pytest.raises(ReferenceInvalid):
        engine.prepare_voice(references=[ReferenceClip(prepare[: int(0.2 * rate)], rate)])


def test_profile_from_another_engine_is_refused(engine, voice) -> None:
    foreign = dataclasses.replace(voice, engine="xtts")
    with pytest.raises(VoiceProfileInvalid):
        engine.synthesize(text=SENTENCE, language="en", voice=foreign)


def test_tampered_adaptation_parameters_are_refused(engine, voice) -> None:
    params = json.loads(json.dumps(voice.parameters))
    params["adaptation"]["warp"] = 9.0
    with pytest.raises(VoiceProfileInvalid):
        engine.synthesize(text=SENTENCE, language="en", voice=dataclasses.replace(voice, parameters=params))
    params["adaptation"]["warp"] = 1.0
    params["frame_pool"]["coded"] = "not base64!"
    with pytest.raises(VoiceProfileInvalid):
        engine.synthesize(text=SENTENCE, language="en", voice=dataclasses.replace(voice, parameters=params))


def test_prepare_without_similarity_still_adapts_pitch(engine, clip) -> None:
    prepare, _, rate = clip
    profile = engine.prepare_voice(references=[ReferenceClip(prepare, rate)])
    assert "best_similarity" not in profile.metrics
    assert profile.parameters["adaptation"]["target_lf0_mean"] != profile.parameters["adaptation"]["source_lf0_mean"]


def test_reading_with_a_transcript_teaches_a_conversion(engine, clip) -> None:
    prepare, _, rate = clip
    profile = engine.prepare_voice(references=[ReferenceClip(prepare, rate, transcript=HEARD)])
    assert profile.parameters["adaptation_version"] == "2"
    assert profile.parameters["adaptation"]["mapping_strength"] > 0
    assert profile.metrics["mapping_pairs"] >= 100  # about 3 s of paired speech frames
    assert profile.metrics["parallel_seconds"] > 2.0
    stored = VoiceProfile.from_json(profile.to_json())
    audio = engine.synthesize(text=SENTENCE, language="en", voice=stored)
    assert np.all(np.isfinite(audio.samples)) and audio.duration_s > 2.0


def test_conversion_changes_the_output_it_is_applied_to(engine, clip) -> None:
    prepare, _, rate = clip
    profile = engine.prepare_voice(references=[ReferenceClip(prepare, rate, transcript=HEARD)])
    params = json.loads(json.dumps(profile.parameters))
    params["adaptation"]["mapping_strength"] = 0.0
    params["conversion"] = None
    without = dataclasses.replace(profile, parameters=params)
    features = engine._probe_features()
    stored, plain = decode_parameters(profile.parameters), decode_parameters(without.parameters)
    assert stored.mapping is not None and plain.mapping is None

    converted = wa.adapted_log_envelope(features, stored.adaptation, stored.mapping)
    unconverted = wa.adapted_log_envelope(features, plain.adaptation, plain.mapping)
    assert float(np.abs(converted - unconverted).mean()) > 0.05


def test_transcript_with_nothing_to_say_prepares_without_conversion(engine, clip) -> None:
    prepare, _, rate = clip
    profile = engine.prepare_voice(references=[ReferenceClip(prepare, rate, transcript=" ?! ")])
    assert profile.parameters["conversion"] is None
    assert profile.parameters["adaptation"]["mapping_strength"] == 0.0


def test_profile_stored_before_conversion_still_synthesizes(engine) -> None:
    old = VoiceProfile.from_json(V1_PROFILE.read_text())
    assert old.parameters["adaptation_version"] == "1" and "conversion" not in old.parameters
    audio = engine.synthesize(text=SENTENCE, language="en", voice=old)
    assert 0.04 * len(SENTENCE) < audio.duration_s < 0.12 * len(SENTENCE)
    # Its pitch parameters were fitted to DIO's F0 of the Piper voice, so it is still analysed
    # with DIO: the output's median pitch follows the stored target (en_sarah, about 200 Hz).
    import pyworld

    f0, _ = pyworld.dio(audio.samples.astype(np.float64), audio.sample_rate)
    target_hz = float(np.exp(old.parameters["adaptation"]["target_lf0_mean"]))
    assert abs(np.log(np.median(f0[f0 > 0]) / target_hz)) < np.log(1.25)


def test_tampered_conversion_is_refused(engine, clip) -> None:
    prepare, _, rate = clip
    profile = engine.prepare_voice(references=[ReferenceClip(prepare, rate, transcript=HEARD)])
    for change in (
        lambda p: p["conversion"].update(keys="not base64!"),
        lambda p: p.update(conversion=None),  # strength > 0 without the conversion it names
        lambda p: p.update(conversion=["keys"]),
        lambda p: p["adaptation"].update(mapping_strength=7.0),
        lambda p: p.update(adaptation_version="3"),
    ):
        params = json.loads(json.dumps(profile.parameters))
        change(params)
        with pytest.raises(VoiceProfileInvalid):
            engine.synthesize(text=SENTENCE, language="en", voice=dataclasses.replace(profile, parameters=params))
