"""Enrollment hands the engine what each recording says: the consent statement with its known
text, the references with what the recognizer heard, so the embedded engine learns its
conversion from the Piper voice reading the same words (real app, recognizer and engine)."""

from __future__ import annotations

import io

import pytest
import soundfile as sf
import torch

from gateway.dependencies import gateway_of
from tests.gateway.speech import REFERENCE_TEXT, enroll, issue, owner, running_gateway, spoken_wav, token_maker

pytestmark = pytest.mark.slow
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, loaded_models, speech_dir):
    yield from running_gateway(
        tmp_path_factory.mktemp("enrollment-parallel"), models=loaded_models, speech_dir=speech_dir
    )


def seconds(wav: bytes) -> float:
    info = sf.info(io.BytesIO(wav))
    return info.frames / info.samplerate


def test_consent_statement_and_references_become_parallel_speech(gateway) -> None:
    headers = token_maker(gateway)(**owner("mia", "Mia Okafor"))
    challenge_id, statement = issue(gateway, headers)
    consent, reference = spoken_wav(statement), spoken_wav(REFERENCE_TEXT)
    response = enroll(gateway, headers, challenge_id=challenge_id, consent=consent, references=[reference])
    assert response.status_code == 201, response.text
    with gateway_of(gateway.app).sessions() as session:
        material = gateway_of(gateway.app).components.voices.load(session, voice_id=response.json()["voice_id"])
    profile = material.engine_profile
    assert profile.parameters["adaptation_version"] == "2"
    # Both recordings were read back by the base voice: more parallel speech than either alone.
    assert profile.metrics["parallel_seconds"] > max(seconds(consent), seconds(reference)) + 0.5
