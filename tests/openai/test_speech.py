"""`POST /v1/audio/speech` through the official openai client: every format decodes to audio whose
keyed payload names the request's audit record; streams send released chunks only; refusals
raise the openai client's typed errors with clonegate's reason code."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import threading
from datetime import UTC, datetime

import numpy as np
import openai
import pytest

from engine.errors import EngineCancelled
from engine.interface import CancelToken, SynthesisControls
from gateway.audio_io import decode_audio
from gateway.dependencies import gateway_of
from gateway.openai_api.encodings import PCM_SAMPLE_RATE
from gateway.synthesis.steps import payload_for
from policy.blocklist.repository import AudioSample, add_protected_speaker, deactivate_protected_speaker
from policy.consent.grants import revoke_consent
from tests.gateway.synthesis_fixtures import OWNER_ISSUER_SUB, PURPOSE, TEXT, audit_events, grant_voice
from tests.openai.conftest import ALIAS, LIMITED_TENANT, OTHER_TENANT

STORY = (
    "The old lighthouse keeper climbed the narrow stairs every evening before the sun went down. "
    "He trimmed the wick, polished the great lens and wrote the weather into a worn leather book. "
    "Ships passing in the night never saw him, but they trusted the light he kept burning for them."
)
MEDIA_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}


def _samples(body: bytes, response_format: str) -> tuple[np.ndarray, int]:
    if response_format == "pcm":  # headerless, as OpenAI's: s16le mono at 24 kHz
        return np.frombuffer(body, dtype="<i2").astype(np.float32) / 32767.0, PCM_SAMPLE_RATE
    decoded = decode_audio(body)
    return decoded.samples, decoded.sample_rate


def _request_events(app, admitted_id: int):
    admitted = dict(audit_events(app))[admitted_id]
    return [event for _, event in audit_events(app, request_id=admitted.subjects.request_id)]


def _assert_marked_for(app, samples: np.ndarray, sample_rate: int, admitted_id: int) -> None:
    keyed = gateway_of(app).components.watermark.detect(samples, sample_rate=sample_rate).scheme("keyed")
    assert keyed.payload_verified and keyed.payload == payload_for(admitted_id)


@pytest.mark.parametrize("response_format", list(MEDIA_TYPES))
def test_each_format_decodes_to_audio_whose_mark_resolves_to_its_audit_event(served, response_format):
    raw = served.openai().audio.speech.with_raw_response.create(
        model="tts-1", voice=served.voice.voice_id, input=TEXT, response_format=response_format
    )
    body = raw.content
    assert raw.headers["content-type"] == MEDIA_TYPES[response_format]
    assert raw.headers["x-ai-generated"] == "true"
    samples, rate = _samples(body, response_format)
    assert len(samples) / rate > 2.0
    admitted_id = int(raw.headers["x-clonegate-audit-id"])
    _assert_marked_for(served.app, samples, rate, admitted_id)
    events = _request_events(served.app, admitted_id)
    assert [event.action.value for event in events] == ["request.admitted", "request.released"]
    assert events[0].subjects.voice_id == served.voice.voice_id
    assert events[1].digests.output_sha256 == hashlib.sha256(body).hexdigest()  # exactly these bytes


def test_default_format_is_mp3_and_an_alias_or_the_object_form_names_the_voice(served):
    speech = served.openai().audio.speech
    by_alias = speech.with_raw_response.create(model="gpt-4o-mini-tts", voice=ALIAS, input=TEXT)
    assert by_alias.headers["content-type"] == "audio/mpeg"
    by_object = speech.with_raw_response.create(model="tts-1-hd", voice={"id": served.voice.voice_id}, input=TEXT)
    for raw in (by_alias, by_object):
        admitted_id = int(raw.headers["x-clonegate-audit-id"])
        assert _request_events(served.app, admitted_id)[0].subjects.voice_id == served.voice.voice_id


def _split_by_digests(body: bytes, digests: list[str]) -> list[bytes]:
    """Cut the streamed bytes into consecutive pieces with these sha256s (each released chunk)."""
    pieces, start = [], 0
    for digest in digests:
        hasher = hashlib.sha256()
        for end in range(start + 1, len(body) + 1):
            hasher.update(body[end - 1 : end])
            if hasher.copy().hexdigest() == digest:
                pieces.append(body[start:end])
                start = end
                break
        else:
            raise AssertionError(f"no piece of the stream from byte {start} has sha256 {digest}")
    assert start == len(body), "bytes were streamed that no released event accounts for"
    return pieces


@pytest.mark.parametrize("response_format", ["pcm", "aac", "mp3"])
def test_streamed_audio_is_sent_chunk_by_chunk_each_released_and_marked(served, response_format):
    with served.openai().audio.speech.with_streaming_response.create(
        model="tts-1", voice=served.voice.voice_id, input=STORY, response_format=response_format, stream_format="audio"
    ) as response:
        body = b"".join(response.iter_bytes())
        admitted_id = int(response.headers["x-clonegate-audit-id"])
    events = _request_events(served.app, admitted_id)
    assert [event.action.value for event in events] == ["request.admitted"] + ["request.released"] * 3
    pieces = _split_by_digests(body, [event.digests.output_sha256 for event in events[1:]])
    piece_seconds = 0.0
    for piece in pieces:  # each chunk, as it was sent, carries the request's payload
        samples, rate = _samples(piece, response_format)
        _assert_marked_for(served.app, samples, rate, admitted_id)
        piece_seconds += len(samples) / rate
    # The chunks play as one stream: a decoder reads on past the first one (an MP3 Xing header
    # would make it stop there). Codec padding at each chunk's end may add a little, never less.
    whole, rate = _samples(body, response_format)
    assert len(whole) / rate >= piece_seconds - 0.05 * len(pieces)


def test_sse_stream_sends_openai_delta_events_of_released_chunks_then_done(served):
    with served.openai().audio.speech.with_streaming_response.create(
        model="gpt-4o-mini-tts", voice=served.voice.voice_id, input=STORY, response_format="pcm", stream_format="sse"
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
        admitted_id = int(response.headers["x-clonegate-audit-id"])
    events = [json.loads(line.removeprefix("data: ")) for line in lines]
    assert [event["type"] for event in events] == ["speech.audio.delta"] * 3 + ["speech.audio.done"]
    chunks = [base64.b64decode(event["audio"]) for event in events[:-1]]
    released = [event for event in _request_events(served.app, admitted_id) if event.action.value == "request.released"]
    assert [hashlib.sha256(chunk).hexdigest() for chunk in chunks] == [e.digests.output_sha256 for e in released]
    for chunk in chunks:
        _assert_marked_for(served.app, *_samples(chunk, "pcm"), admitted_id)


def _refusal(served, error_class, *, token=None, **overrides) -> openai.APIStatusError:
    body = {"model": "tts-1", "voice": served.voice.voice_id, "input": TEXT, "response_format": "wav"} | overrides
    with pytest.raises(error_class) as caught:
        served.openai(token).audio.speech.create(**body)
    return caught.value


def test_formats_that_need_the_whole_file_are_not_streamed(served):
    error = _refusal(served, openai.UnprocessableEntityError, response_format="flac", stream_format="audio")
    assert error.code == "stream_format_unsupported"


def test_encoder_that_cannot_run_releases_nothing_and_records_the_failure(served, monkeypatch):
    """Fail closed: without ffmpeg no aac is made, the request is recorded as failed and no audio
    leaves (the openai client gets a 503 with the reason code)."""
    before = {audit_id for audit_id, _ in audit_events(served.app)}
    monkeypatch.setenv("PATH", "/nonexistent")
    error = _refusal(served, openai.InternalServerError, response_format="aac")
    assert error.code == "output_encoding_failed" and error.response.status_code == 503
    new = [event for audit_id, event in audit_events(served.app) if audit_id not in before]
    assert [event.action.value for event in new] == ["request.admitted", "request.failed"]
    assert new[-1].reason == "output_encoding_failed"


def test_voice_id_probing_through_the_openai_route(served):
    """A real voice no consent names the caller for answers like an unknown voice id."""
    stranger = served.token(sub="studio-9", tenant=OTHER_TENANT)
    error = _refusal(served, openai.NotFoundError, token=stranger, extra_body={"purpose": PURPOSE})
    unknown = _refusal(served, openai.NotFoundError, token=stranger, voice="0" * 32, extra_body={"purpose": PURPOSE})
    assert error.code == unknown.code == "voice_not_found" and error.type == "not_found_error"
    assert error.body == unknown.body and served.voice.voice_id not in error.message


def test_purpose_from_the_header_reaches_the_consent_check(served):
    stranger = served.token(sub="studio-9", tenant=OTHER_TENANT)  # no default purpose
    error = _refusal(served, openai.NotFoundError, token=stranger, extra_headers={"X-Clonegate-Purpose": PURPOSE})
    # Past purpose_required (422): the consent check found no consent naming this caller, which
    # answers like an unknown voice (docs/consent.md, "No existence oracle").
    assert error.code == "voice_not_found"


def test_protected_voice_raises_permission_denied(served):
    components = gateway_of(served.app).components
    with gateway_of(served.app).sessions() as session:
        entry = add_protected_speaker(
            session,
            embedder=components.embedder,
            name="Protected Person",
            reason="test",
            source="test",
            actor="test",
            samples=[AudioSample(audio=served.voice.reference, sample_rate=served.voice.sample_rate)],
        )
        session.commit()
        entry_id = entry.id
    components.blocklist.refresh(force=True)
    try:
        assert _refusal(served, openai.PermissionDeniedError).code == "speaker_protected"
    finally:
        with gateway_of(served.app).sessions() as session:
            deactivate_protected_speaker(session, entry_id=entry_id, actor="test", reason="test over")
            session.commit()
        components.blocklist.refresh(force=True)


def test_revoked_grant_raises_permission_denied(served, speech_dir):
    revoked = grant_voice(served.app, sorted(speech_dir.glob("en_*.wav"))[4], issuer=served.settings.jwt_issuer)
    with gateway_of(served.app).sessions() as session:
        revoke_consent(
            session,
            consent_id=revoked.consent_id,
            owner_iss=served.settings.jwt_issuer,
            owner_sub=OWNER_ISSUER_SUB,
            now=datetime.now(UTC),
        )
        session.commit()
    assert _refusal(served, openai.PermissionDeniedError, voice=revoked.voice_id).code == "consent_revoked"


def test_overlong_input_is_refused_before_anything_happens(served):
    before = len(audit_events(served.app))
    error = _refusal(served, openai.UnprocessableEntityError, input="word " * 820)  # 4,100 characters
    assert error.code == "invalid_request" and error.param == "input"
    assert len(audit_events(served.app)) == before


def test_unknown_format_is_refused(served):
    error = _refusal(served, openai.UnprocessableEntityError, response_format="ogg")
    assert error.code == "invalid_request" and error.param == "response_format"


def test_missing_purpose_is_refused_with_how_to_set_one(served):
    no_default = served.token(sub="studio-9", tenant=OTHER_TENANT)
    error = _refusal(served, openai.UnprocessableEntityError, token=no_default)
    assert error.code == "purpose_required"
    assert "extra_body" in error.message and "X-Clonegate-Purpose" in error.message
    assert "CLONEGATE_OPENAI_DEFAULT_PURPOSES" in error.message


def test_speed_the_engine_cannot_do_is_a_clear_422_not_a_clamp(served):
    error = _refusal(served, openai.UnprocessableEntityError, speed=3.0)
    assert error.code == "speed_unsupported" and "0.5" in error.message


def test_denied_text_is_refused_with_the_text_rules_code(served):
    error = _refusal(served, openai.UnprocessableEntityError, input="Please wire the money to this account today.")
    assert error.code == "text_denied"


def test_missing_token_raises_authentication_error(served):
    with pytest.raises(openai.AuthenticationError) as caught:
        served.openai("not-a-jwt").audio.speech.create(model="tts-1", voice=served.voice.voice_id, input=TEXT)
    assert caught.value.code.startswith("token_")


def test_unknown_model_raises_not_found(served):
    assert _refusal(served, openai.NotFoundError, model="tts-2").code == "model_not_found"


def test_busy_engine_raises_rate_limit_error_with_retry_after(served):
    """The served gateway's engine runs one job and queues none: while another job holds it, a
    request gets 429, which the openai client raises as `RateLimitError`."""
    components = gateway_of(served.app).components
    with gateway_of(served.app).sessions() as session:
        profile = components.voices.load(session, voice_id=served.voice.voice_id).engine_profile
    cancel = CancelToken()
    holder = threading.Thread(target=lambda: _run_until_cancelled(components.executor, profile, cancel), daemon=True)
    holder.start()
    try:
        while components.executor.in_flight == 0:
            holder.join(0.01)
        error = _refusal(served, openai.RateLimitError)
        assert error.code == "engine_busy" and int(error.response.headers["retry-after"]) >= 1
    finally:
        cancel.cancel("test over")
        holder.join(60)


def test_spent_rate_limit_raises_rate_limit_error_with_retry_after(served):
    limited = served.openai(served.token(sub="studio-7", tenant=LIMITED_TENANT))
    body = {"model": "tts-1", "voice": served.voice.voice_id, "input": TEXT, "extra_body": {"purpose": PURPOSE}}
    # The first request of a minute spends the budget (and is then refused for want of consent,
    # answered like an unknown voice); the next one in the same window is refused before anything
    # else. Three cover a new minute.
    with pytest.raises(openai.RateLimitError) as caught:
        for _ in range(3):
            with contextlib.suppress(openai.NotFoundError):
                limited.audio.speech.create(**body)
    assert caught.value.code == "rate_limited" and int(caught.value.response.headers["retry-after"]) >= 1


def _run_until_cancelled(executor, profile, cancel: CancelToken) -> None:
    text = " ".join([STORY] * 5)  # far longer than the request under test takes to be refused
    with contextlib.suppress(EngineCancelled):  # it only held the engine
        executor.synthesize(text=text, language="en", voice=profile, controls=SynthesisControls(), cancel=cancel)


def test_openapi_document_declares_openai_errors_on_the_openai_routes(served):
    document = served.client.get("/openapi.json").json()
    for path, method in (("/v1/audio/speech", "post"), ("/v1/audio/voices", "get"), ("/v1/models", "get")):
        responses = document["paths"][path][method]["responses"]
        for status in ("401", "403", "422"):
            schema = responses[status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/OpenAIErrorBody"}, (path, status)
    assert set(document["components"]["schemas"]["OpenAIError"]["required"]) == {"message", "type", "code"}


def test_models_lists_the_accepted_names(served):
    assert [model.id for model in served.openai().models.list()] == ["tts-1", "tts-1-hd", "gpt-4o-mini-tts"]


def test_voices_lists_what_the_caller_may_use_with_its_scopes(served):
    listed = served.openai().get("/audio/voices", cast_to=object)
    mine = next(voice for voice in listed["voices"] if voice["id"] == served.voice.voice_id)
    assert mine["aliases"] == [ALIAS]
    assert [scope["purposes"] for scope in mine["scopes"]] == [[PURPOSE]]
    stranger = served.token(sub="studio-9", tenant=OTHER_TENANT)
    assert served.openai(stranger).get("/audio/voices", cast_to=object) == {"voices": []}
