"""Shared pieces of the engine adapters: HTTP error mapping, WAV coding, reference selection.

Remote engines are trusted to run the model, not to behave: every answer is checked for status,
content type and size, and a dropped or slow connection becomes a specific engine error.
"""

from __future__ import annotations

import base64
import importlib.util
import io
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import soundfile as sf

from engine.checks import check_references
from engine.errors import (
    EngineRequestFailed,
    EngineTimeout,
    EngineUnavailable,
    ReferenceInvalid,
    VoiceProfileInvalid,
)
from engine.interface import ReferenceClip

if TYPE_CHECKING:
    import httpx

MAX_RESPONSE_BYTES = 64 * 1024 * 1024  # ~20 minutes of 24 kHz 16-bit audio; more is a broken engine
WAV_TYPES = ("audio/wav", "audio/x-wav", "audio/wave")


def http_client(base_url: str, *, timeout_s: float, connect_timeout_s: float = 5.0) -> httpx.Client:
    import httpx

    return httpx.Client(
        base_url=base_url.rstrip("/"),
        timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
        follow_redirects=False,  # an engine must not send clonegate's requests elsewhere
    )


@contextmanager
def http_errors(engine: str) -> Iterator[None]:
    """Turn transport failures into engine errors the gateway can map."""
    import httpx

    try:
        yield
    except httpx.ConnectError as exc:
        raise EngineUnavailable(f"{engine} is not reachable: {exc}") from exc
    except httpx.TimeoutException as exc:
        raise EngineTimeout(f"{engine} did not answer in time") from exc
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
        raise EngineRequestFailed(f"{engine} dropped the connection: {exc}") from exc
    except httpx.HTTPError as exc:
        raise EngineRequestFailed(f"{engine} request failed: {exc}") from exc


def error_detail(response: httpx.Response) -> str:
    """The engine's own message from an error answer (JSON ``message``/``detail``/``error``)."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if not isinstance(body, dict):
        return str(body)[:200]
    detail = str(body.get("message") or body.get("detail") or body.get("error") or body)
    if body.get("Exception"):
        detail += f": {body['Exception']}"
    return detail[:500]


def raise_for_answer(engine: str, response: httpx.Response, *, expect: tuple[str, ...]) -> None:
    """Refuse error statuses (with the engine's message) and unexpected content types."""
    if response.status_code >= 400:
        raise EngineRequestFailed(f"{engine} answered {response.status_code}: {error_detail(response)}".strip())
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in expect:
        raise EngineRequestFailed(f"{engine} answered with content type {content_type!r}, expected {expect}")


def read_limited(response: httpx.Response, *, engine: str) -> bytes:
    """Read a (streamed) body, refusing bodies larger than MAX_RESPONSE_BYTES."""
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise EngineRequestFailed(f"{engine} sent more than {MAX_RESPONSE_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def json_object(response: httpx.Response, *, engine: str, what: str) -> dict[str, Any]:
    """The JSON object a start-up check asked for; anything else means the wrong service."""
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if response.status_code != 200 or content_type != "application/json":
        raise EngineUnavailable(
            f"{engine}: {what} answered {response.status_code} {content_type!r}: not the expected service"
        )
    try:
        body = response.json()
    except ValueError as exc:
        raise EngineUnavailable(f"{engine}: {what} is not JSON") from exc
    if not isinstance(body, dict):
        raise EngineUnavailable(f"{engine}: {what} is not a JSON object")
    return body


def encode_wav(audio: np.ndarray, sample_rate: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(audio, -1.0, 1.0), sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def decode_wav(data: bytes, *, engine: str) -> tuple[np.ndarray, int]:
    try:
        audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, ValueError) as exc:
        raise EngineRequestFailed(f"{engine} returned audio that is not a readable WAV file: {exc}") from exc
    if audio.shape[1] != 1:
        audio = audio.mean(axis=1, keepdims=True)
    return np.ascontiguousarray(audio[:, 0]), int(rate)


def pick_reference(
    references: Sequence[ReferenceClip],
    *,
    engine: str,
    max_s: float,
    min_s: float = 0.0,
    uses_transcript: bool = False,
    needs_transcript: bool = False,
) -> tuple[ReferenceClip, np.ndarray]:
    """Validate all references and return the one the engine conditions on, at most ``max_s``.

    Zero-shot engines condition on one clip; the longest carries the most voice. A clip without
    a transcript may be trimmed to ``max_s``. An engine that conditions on the transcript too
    (``uses_transcript``) never gets a trimmed clip with its whole transcript, which would no
    longer match: a clip longer than ``max_s`` with a transcript is passed over, and when no
    clip fits the voice is refused, as the engines themselves refuse long references.
    """
    checked = check_references(references)
    candidates: list[tuple[bool, float, ReferenceClip, np.ndarray]] = []
    for clip, audio in zip(references, checked, strict=True):
        seconds = audio.size / clip.sample_rate
        has_transcript = bool((clip.transcript or "").strip()) and (uses_transcript or needs_transcript)
        if needs_transcript and not has_transcript:
            continue
        if has_transcript and seconds > max_s:
            continue  # its transcript would not match the trimmed clip
        if min(seconds, max_s) < min_s:
            continue
        candidates.append((has_transcript, seconds, clip, audio))
    if not candidates:
        wanted = f"{min_s:g}–{max_s:g} s" if min_s else f"at most {max_s:g} s"
        if needs_transcript:
            raise ReferenceInvalid(f"{engine} needs a reference of {wanted} with its transcript")
        if uses_transcript:
            raise ReferenceInvalid(
                f"{engine} needs a reference of {wanted}: a longer clip cannot be cut without cutting its "
                "transcript (give a shorter clip, or one without a transcript)"
            )
        raise ReferenceInvalid(f"{engine} needs a reference of {wanted}")
    # Prefer a clip the engine can read the transcript of, then the longest.
    _, _, clip, audio = max(candidates, key=lambda item: (item[0], item[1]))
    if not (uses_transcript or needs_transcript):
        clip = ReferenceClip(audio=clip.audio, sample_rate=clip.sample_rate, language=clip.language)
    return clip, audio[: int(max_s * clip.sample_rate)]


def wav_to_text(audio: np.ndarray, sample_rate: int) -> str:
    return base64.b64encode(encode_wav(audio, sample_rate)).decode("ascii")


def wav_from_profile(parameters: Mapping[str, Any], *, key: str = "reference_wav") -> bytes:
    try:
        data = base64.b64decode(parameters[key], validate=True)
        sf.info(io.BytesIO(data))
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise VoiceProfileInvalid(f"voice profile has no usable reference audio: {exc}") from exc
    return data


def require_installed(*, engine: str, package: str, module: str, paths: Mapping[str, Path | None]) -> None:
    """Fail at construction (start-up) with every missing piece named, not at the first request."""
    problems = []
    if importlib.util.find_spec(module) is None:
        problems.append(f"package {package} is not installed (it runs in its own engine worker environment)")
    for label, path in paths.items():
        if path is None or str(path) == "":
            problems.append(f"{label} is not configured")
        elif not Path(path).exists():
            problems.append(f"{label} {path} does not exist")
    if problems:
        raise EngineUnavailable(f"{engine} cannot start: " + "; ".join(problems))


def torch_device(preference: str) -> str:
    """'auto' picks CUDA when torch sees a GPU."""
    if preference not in ("auto", "cpu", "cuda"):
        raise EngineUnavailable(f"device must be auto, cpu or cuda, not {preference!r}")
    if preference == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if preference == "cuda":
        raise EngineUnavailable("device 'cuda' requested but torch sees no GPU")
    return "cpu"
