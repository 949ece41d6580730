"""POST /v1/detect: presence and segments for anyone entitled, the producing request only for
auditors and the producing tenant, never a guess."""

from __future__ import annotations

import base64
import time

import numpy as np
import pytest
import soundfile

from audit.checkpoint import open_checkpoint
from audit.merkle import verify_inclusion
from gateway.audio_io import decode_audio
from gateway.db import create_db_engine, make_session_factory
from gateway.dependencies import gateway_of
from gateway.rate_limits.limiter import RateLimited, RateLimiter
from gateway.settings import RateLimits
from tests.gateway.conftest import bearer
from tests.gateway.speech import wav_bytes
from tests.gateway.synthesis_fixtures import (
    TENANT,
    read_clip,
    synthesize,
)


def _released(client, token, voice):
    response = synthesize(client, token, voice)
    assert response.status_code == 200, response.text
    return response


def _detect(client, data: bytes, token: str | None):
    headers = bearer(token) if token else {}
    return client.post("/v1/detect", files={"audio": ("suspect.wav", data, "audio/wav")}, headers=headers)


def test_producing_tenant_sees_the_audit_event_behind_its_output(gateway, client_token):
    client, _, voice = gateway
    released = _released(client, client_token, voice)
    answer = _detect(client, released.content, client_token).json()
    assert answer["detected"] is True
    keyed = next(scheme for scheme in answer["schemes"] if scheme["name"] == "keyed")
    assert keyed["payload_verified"] is True
    assert keyed["false_positive_probability"] < 1e-4
    assert keyed["segments"] and all(len(segment) == 3 for segment in keyed["segments"])
    source = answer["source"]
    assert source["status"] == "resolved"
    assert source["audit_id"] == int(released.headers["x-clonegate-audit-id"])
    assert source["event"]["action"] == "request.admitted"
    assert source["event"]["subjects"]["voice_id"] == voice.voice_id


def test_auditor_sees_the_event_with_an_inclusion_proof_that_verifies(gateway, client_token, hs256_token):
    client, app, voice = gateway
    released = _released(client, client_token, voice)
    deadline = time.monotonic() + 30
    while True:  # the integrator signs a checkpoint every second
        source = _detect(client, released.content, hs256_token(role=["auditor"])).json()["source"]
        if source.get("inclusion_proof") or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert source["status"] == "resolved"
    assert source["event"]["actor"]["tenant"] == TENANT
    proof = source["inclusion_proof"]
    checkpoint = open_checkpoint(proof["checkpoint"], verifier=gateway_of(app).audit_key.verifier)
    verify_inclusion(
        index=source["leaf_index"],
        size=checkpoint.size,
        leaf=base64.b64decode(proof["leaf_hash"]),
        proof=[base64.b64decode(node) for node in proof["proof"]],
        root=checkpoint.root_hash,
    )


def test_other_tenant_learns_only_that_audio_is_marked(gateway, client_token, hs256_token):
    client, _, voice = gateway
    released = _released(client, client_token, voice)
    answer = _detect(client, released.content, hs256_token(sub="rival", role=["client"], tenant="rival")).json()
    assert answer["detected"] is True
    assert answer["source"] == {
        "status": "withheld",
        "detail": "the producing request is shown to auditors and to its tenant",
    }


def test_unmarked_speech_is_not_detected(gateway, client_token, speech_dir):
    client, _, _ = gateway
    audio, rate = read_clip(sorted(speech_dir.glob("en_*.wav"))[3], seconds=6)
    answer = _detect(client, wav_bytes(audio, rate), client_token).json()
    keyed = next(scheme for scheme in answer["schemes"] if scheme["name"] == "keyed")
    assert keyed["detected"] is False and keyed["payload"] is None
    assert answer["source"] is None


def test_payload_naming_no_event_is_reported_unknown(gateway, client_token, hs256_token, speech_dir):
    client, app, _ = gateway
    audio, rate = read_clip(sorted(speech_dir.glob("en_*.wav"))[4], seconds=6)
    forged_id = 0x00FFFFF0
    marked = gateway_of(app).components.watermark.embed(audio, sample_rate=rate, payload=forged_id.to_bytes(4, "big"))
    answer = _detect(client, wav_bytes(marked, rate), hs256_token(role=["auditor"])).json()
    assert answer["source"] == {"status": "unknown", "audit_id": forged_id}


def test_spliced_output_is_localised(gateway, client_token, speech_dir):
    client, _, voice = gateway
    released = decode_audio(_released(client, client_token, voice).content)
    rate = released.sample_rate
    before, _ = read_clip(sorted(speech_dir.glob("en_*.wav"))[5], seconds=4)
    after, _ = read_clip(sorted(speech_dir.glob("en_*.wav"))[6], seconds=4)
    from scipy.signal import resample_poly

    source_rate = soundfile.info(sorted(speech_dir.glob("en_*.wav"))[5]).samplerate
    before = resample_poly(before, rate, source_rate).astype(np.float32)
    after = resample_poly(after, rate, source_rate).astype(np.float32)
    spliced = np.concatenate([before, released.samples, after])
    answer = _detect(client, wav_bytes(spliced, rate), client_token).json()
    keyed = next(scheme for scheme in answer["schemes"] if scheme["name"] == "keyed")
    start = len(before) / rate
    end = start + released.duration_seconds
    marked = [segment for segment in keyed["segments"] if segment[2] >= 3.0]
    assert marked, keyed["segments"]
    assert min(s[0] for s in marked) >= start - 1.0 and max(s[1] for s in marked) <= end + 1.0


def test_rejects_anonymous_detection_unless_enabled(gateway):
    client, _, _ = gateway
    response = _detect(client, b"RIFF....WAVE", None)
    assert response.status_code == 401 and response.json()["error"] == "token_missing"


def test_rejects_corrupt_upload(gateway, client_token):
    client, _, _ = gateway
    response = _detect(client, b"RIFF\x00\x00\x00\x00WAVEfmt garbage", client_token)
    assert response.status_code == 422 and response.json()["error"] == "audio_corrupt"


def test_rejects_anonymous_flood_when_anonymous_detection_is_enabled(migrated_database_url):
    engine = create_db_engine(migrated_database_url)
    limiter = RateLimiter(
        sessions=make_session_factory(engine),
        limits=RateLimits(),
        anonymous_detection_per_minute=2,
        clock=lambda: 1_800_000_010.0,
    )
    limiter.admit_anonymous_detection("198.51.100.7")
    limiter.admit_anonymous_detection("198.51.100.7")
    with pytest.raises(RateLimited) as refused:
        limiter.admit_anonymous_detection("198.51.100.7")
    assert refused.value.status == 429 and refused.value.headers["Retry-After"] == "50"
    limiter.admit_anonymous_detection("203.0.113.9")  # another address has its own allowance
    engine.dispose()
