"""`POST /v1/synthesize?stream=true`: chunks of sentences, each marked, screened and released
(with its own `released` event) before it is sent; a stream cut short by revocation or by the
client leaves `request.failed` or `request.cancelled`, and the gateway keeps serving."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import threading
import time
from datetime import UTC, datetime

import httpx
import pytest
import soundfile
import uvicorn

from engine.interface import CancelToken
from gateway.audio_io import decode_audio
from gateway.dependencies import gateway_of
from gateway.settings import Settings
from gateway.synthesis.marked import SELF_CHECK_PADDING_S
from gateway.synthesis.steps import SynthesisRequest, payload_for
from gateway.synthesis.streaming import MIN_CHUNK_CHARS, text_chunks
from policy.consent.grants import revoke_consent
from policy.consent.models import Consent
from tests.gateway.conftest import bearer, free_port, synthesis_replaced
from tests.gateway.synthesis_fixtures import (
    OWNER_ISSUER_SUB,
    PURPOSE,
    FaultEngine,
    audit_events,
    ready_gateway,
    synthesize,
)
from watermark import WatermarkSelfCheckFailed, WatermarkStack

STORY = (
    "The old lighthouse keeper climbed the narrow stairs every evening before the sun went down. "
    "He trimmed the wick, polished the great lens and wrote the weather into a worn leather book. "
    "Ships passing in the night never saw him, but they trusted the light he kept burning for them. "
    "When the storm finally came in November, the light kept shining until the sky turned grey."
)


@pytest.fixture(scope="module")
def streaming(tmp_path_factory, loaded_models, speech_dir):
    """The gateway behind TestClient and, for disconnects, behind a real uvicorn socket."""
    settings = Settings(mode="dev", data_dir=tmp_path_factory.mktemp("streaming"))
    engine = FaultEngine(loaded_models.engine)
    with ready_gateway(settings, dataclasses.replace(loaded_models, engine=engine), speech_dir, reference_clip=3) as (
        client,
        app,
        voice,
    ):
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        yield client, app, voice, engine, f"http://127.0.0.1:{port}"
        server.should_exit = True
        thread.join(10)


def _stream_body(voice, **overrides) -> str:
    body = {"voice_id": voice.voice_id, "text": STORY, "language": "en", "purpose": PURPOSE, "format": "wav"}
    return json.dumps(body | overrides)


def _events_of_request(app, admitted_id: int):
    request_id = dict(audit_events(app))[admitted_id].subjects.request_id
    return [(audit_id, event) for audit_id, event in audit_events(app, request_id=request_id)]


def _split_by_digests(body: bytes, digests: list[str]) -> list[bytes]:
    """Cut the streamed bytes into consecutive pieces with these sha256s (each released chunk)."""
    pieces, start = [], 0
    for digest in digests:
        hasher = hashlib.sha256()
        for end in range(start + 2, len(body) + 1, 2):
            hasher.update(body[end - 2 : end])
            if hasher.copy().hexdigest() == digest:
                pieces.append(body[start:end])
                start = end
                break
        else:
            raise AssertionError(f"no piece of the stream from byte {start} has sha256 {digest}")
    assert start == len(body), "bytes were streamed that no released event accounts for"
    return pieces


def test_text_is_cut_into_chunks_of_whole_sentences():
    chunks = text_chunks(STORY)
    assert len(chunks) == 4 and " ".join(chunks) == STORY
    assert all(len(chunk) >= MIN_CHUNK_CHARS for chunk in chunks)
    assert text_chunks("Yes. No. " + STORY.split(". ")[0] + ".") == ["Yes. No. " + STORY.split(". ")[0] + "."]
    assert text_chunks(STORY + " Fin.")[-1].endswith("grey. Fin.")  # a short remainder joins the last chunk


def test_every_streamed_chunk_is_marked_and_released_before_it_is_sent(streaming, client_token):
    client, app, voice, _, _ = streaming
    with client.stream(
        "POST",
        "/v1/synthesize?stream=true",
        content=_stream_body(voice),
        headers={**bearer(client_token), "Content-Type": "application/json"},
    ) as response:
        assert response.status_code == 200
        body = b"".join(response.iter_bytes())
    assert response.headers["content-type"] == "audio/wav" and response.headers["x-ai-generated"] == "true"
    admitted_id = int(response.headers["x-clonegate-audit-id"])
    payload = payload_for(admitted_id)
    assert response.headers["x-clonegate-watermark-id"] == payload.hex()

    events = [event for _, event in _events_of_request(app, admitted_id)]
    assert [event.action.value for event in events] == ["request.admitted"] + ["request.released"] * 4
    pieces = _split_by_digests(body, [event.digests.output_sha256 for event in events[1:]])
    assert all(event.watermark_id == payload.hex() for event in events[1:])

    stack = gateway_of(app).components.watermark
    whole = decode_audio(body)
    assert whole.duration_seconds > 15
    assert stack.detect(whole.samples, sample_rate=whole.sample_rate).scheme("keyed").payload == payload
    header = body.index(b"data") + 8  # RIFF, fmt and the LIST/INFO label, then the PCM
    for piece in [pieces[0][header:], *pieces[1:]]:  # each chunk on its own carries the payload
        chunk = soundfile.read(io.BytesIO(body[:header] + piece), dtype="float32")[0]
        keyed = stack.detect(chunk, sample_rate=whole.sample_rate).scheme("keyed")
        assert keyed.payload_verified and keyed.payload == payload
    with soundfile.SoundFile(io.BytesIO(body)) as labelled:
        assert json.loads(labelled.comment)["content_id"] == f"clonegate:{admitted_id}"


def test_rejects_stream_in_a_format_that_needs_the_whole_file(streaming, client_token):
    client, app, voice, _, _ = streaming
    before = len(audit_events(app))
    response = client.post(
        "/v1/synthesize?stream=true",
        content=_stream_body(voice, format="mp3"),
        headers={**bearer(client_token), "Content-Type": "application/json"},
    )
    assert response.status_code == 422 and response.json()["error"] == "stream_format_unsupported"
    assert len(audit_events(app)) == before  # refused before admission: no use counted, nothing logged


def test_stream_refused_at_admission_is_a_plain_error(streaming, hs256_token):
    client, _, voice, _, _ = streaming
    stranger = hs256_token(sub="studio-9", role=["client"], tenant="elsewhere")
    response = client.post(
        "/v1/synthesize?stream=true",
        content=_stream_body(voice),
        headers={**bearer(stranger), "Content-Type": "application/json"},
    )
    assert response.status_code == 404 and response.json()["error"] == "voice_not_found"


def test_consent_revoked_mid_stream_stops_the_stream(streaming, client_token):
    client, app, voice, engine, base = streaming
    calls = []

    def owner_revokes_before_the_second_chunk() -> None:
        calls.append(1)
        if len(calls) == 2:
            with gateway_of(app).sessions() as session:
                revoke_consent(
                    session,
                    consent_id=voice.consent_id,
                    owner_iss=gateway_of(app).settings.jwt_issuer,
                    owner_sub=OWNER_ISSUER_SUB,
                    now=datetime.now(UTC),
                )
                session.commit()

    engine.during_synthesis = owner_revokes_before_the_second_chunk
    try:
        with (
            httpx.Client(base_url=base, timeout=120) as http,
            http.stream(
                "POST",
                "/v1/synthesize?stream=true",
                content=_stream_body(voice),
                headers={**bearer(client_token), "Content-Type": "application/json"},
            ) as response,
        ):
            assert response.status_code == 200
            received = b""
            with pytest.raises(httpx.RemoteProtocolError):  # the body is cut off, never "complete"
                for data in response.iter_bytes():
                    received += data
        events = [event for _, event in _events_of_request(app, int(response.headers["x-clonegate-audit-id"]))]
        assert [event.action.value for event in events] == ["request.admitted", "request.released", "request.failed"]
        failed = events[-1]
        assert failed.reason == "consent_revoked"
        assert failed.digests.output_sha256 == events[1].digests.output_sha256 == hashlib.sha256(received).hexdigest()
    finally:
        engine.during_synthesis = None
        with gateway_of(app).sessions() as session:
            session.get(Consent, voice.consent_id).revoked_at = None
            session.commit()
    assert synthesize(client, client_token, voice).status_code == 200  # still serving


def test_client_disconnect_mid_stream_leaves_a_cancelled_event(streaming, client_token):
    client, app, voice, _engine, base = streaming
    with httpx.Client(base_url=base, timeout=120) as http:
        with http.stream(
            "POST",
            "/v1/synthesize?stream=true",
            content=_stream_body(voice),
            headers={**bearer(client_token), "Content-Type": "application/json"},
        ) as response:
            assert response.status_code == 200
            next(response.iter_raw())  # the first chunk arrived; the client hangs up
        admitted_id = int(response.headers["x-clonegate-audit-id"])
    deadline = time.monotonic() + 60
    while (events := [event for _, event in _events_of_request(app, admitted_id)])[
        -1
    ].action.value != "request.cancelled":
        assert time.monotonic() < deadline, [event.action.value for event in events]
        time.sleep(0.2)
    cancelled = events[-1]
    released = [event for event in events if event.action.value == "request.released"]
    assert 1 <= len(released) < 4, "the stream went on after the client left"
    assert cancelled.reason == "client_disconnected" and cancelled.decision.value == "none"
    assert cancelled.watermark_id == payload_for(admitted_id).hex() and cancelled.digests.output_sha256 is not None
    time.sleep(1.0)  # nothing more is released for this request later
    assert [e.action.value for _, e in _events_of_request(app, admitted_id)] == [e.action.value for e in events]
    assert synthesize(client, client_token, voice).status_code == 200


def test_client_leaving_before_the_audio_is_ready_leaves_a_cancelled_event(streaming, client_token):
    client, app, voice, engine, base = streaming
    engine.fault = "hang"  # the engine works until the request is cancelled
    try:
        with httpx.Client(base_url=base, timeout=2) as http, pytest.raises(httpx.ReadTimeout):
            http.post(
                "/v1/synthesize",
                content=_stream_body(voice),
                headers={**bearer(client_token), "Content-Type": "application/json"},
            )
        deadline = time.monotonic() + 30
        while (last := audit_events(app, voice_id=voice.voice_id)[-1][1]).action.value != "request.cancelled":
            assert time.monotonic() < deadline, last.action.value
            time.sleep(0.2)
        assert last.reason == "client_disconnected" and last.digests.output_sha256 is None
    finally:
        engine.fault = None
    assert synthesize(client, client_token, voice).status_code == 200


def test_stream_closed_before_its_first_chunk_leaves_a_cancelled_event(streaming, client_token):
    # The client can leave between the response's headers and the first chunk being asked for.
    _, app, voice, _, _ = streaming
    service = gateway_of(app).services.synthesis
    stream = service.open_stream(
        principal=gateway_of(app).token_verifier.verify(client_token),
        cancel=CancelToken(),
        request=SynthesisRequest(voice_id=voice.voice_id, text=STORY, language="en", purpose=PURPOSE),
        encoding=service.stream_encoding("wav"),
    )
    stream.close()
    events = [event for _, event in _events_of_request(app, stream.admission.audit_id)]
    assert [event.action.value for event in events] == ["request.admitted", "request.cancelled"]
    assert events[-1].digests.output_sha256 is None


class StackFailingSecondChunk(WatermarkStack):
    """The real stack, except that every attempt at marking the stream's second chunk (the
    first try and each silence-padded retry) fails its self-check."""

    def __init__(self, real: WatermarkStack) -> None:
        super().__init__(real.schemes)
        self.calls = 0

    def embed(self, audio, *, sample_rate, payload, require_payload=True):
        self.calls += 1
        if 2 <= self.calls <= 1 + len(SELF_CHECK_PADDING_S):
            raise WatermarkSelfCheckFailed("injected: this chunk cannot carry the payload")
        return super().embed(audio, sample_rate=sample_rate, payload=payload, require_payload=require_payload)


def test_chunk_whose_mark_fails_goes_out_marked_with_the_next(streaming, client_token):
    client, app, voice, _, _ = streaming
    components = gateway_of(app).components
    with synthesis_replaced(app, watermark=StackFailingSecondChunk(components.watermark)):
        response = client.post(
            "/v1/synthesize?stream=true",
            content=_stream_body(voice),
            headers={**bearer(client_token), "Content-Type": "application/json"},
        )
    assert response.status_code == 200
    admitted_id = int(response.headers["x-clonegate-audit-id"])
    events = [event for _, event in _events_of_request(app, admitted_id)]
    assert [event.action.value for event in events] == ["request.admitted"] + ["request.released"] * 3
    pieces = _split_by_digests(response.content, [event.digests.output_sha256 for event in events[1:]])
    header = response.content.index(b"data") + 8
    seconds = [(len(piece) - (header if i == 0 else 0)) / 2 / 24_000 for i, piece in enumerate(pieces)]
    assert seconds[1] > seconds[0] + 2  # the held-back chunk and the next one, as one
    whole = decode_audio(response.content)
    keyed = components.watermark.detect(whole.samples, sample_rate=whole.sample_rate).scheme("keyed")
    assert keyed.payload == payload_for(admitted_id)
