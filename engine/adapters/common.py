"""Shared pieces of the engine adapters: HTTP error mapping, WAV coding, reference selection.

Remote engines are trusted to run the model, not to behave: every answer is checked for status,
content type and size, and a dropped or slow connection becomes a specific engine error.
"""

from __future__ import annotations

import base64
import importlib.util
import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import soundfile as sf

from engine.checks import check_references
from engine.errors import EngineRequestFailed, EngineTimeout, EngineUnavailable, VoiceProfileInvalid
from engine.interface import ReferenceClip

MAX_RESPONSE_BYTES = 64 * 1024 * 1024  # ~20 minutes of 24 kHz 16-bit audio; more is a broken engine


def http_client(base_url: str, *, timeout_s: float, connect_timeout_s: float = 5.0):
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


def raise_for_answer(engine: str, response, *, expect: tuple[str, ...]) -> None:
    """Refuse error statuses (with the engine's message) and unexpected content types."""
    if response.status_code >= 400:
        detail = ""
        try:
            body = response.json()
            if isinstance(body, dict):
                detail = str(body.get("message") or body.get("detail") or body.get("error") or body)
                if body.get("Exception"):
                    detail += f": {body['Exception']}"
        except ValueError:
            detail = response.text[:200]
        raise EngineRequestFailed(f"{engine} answered {response.status_code}: {detail}".strip())
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in expect:
        raise EngineRequestFailed(f"{engine} answered with content type {content_type!r}, expected {expect}")


def read_limited(response, *, engine: str) -> bytes:
    """Read a (streamed) body, refusing bodies larger than MAX_RESPONSE_BYTES."""
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise EngineRequestFailed(f"{engine} sent more than {MAX_RESPONSE_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


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
    return audio[:, 0], int(rate)


def pick_reference(references: Sequence[ReferenceClip], *, max_s: float) -> tuple[ReferenceClip, np.ndarray]:
    """Validate all references and return the longest, trimmed to ``max_s`` seconds.

    Zero-shot engines condition on one clip; the longest carries the most voice.
    """
    clips = check_references(references)
    index = max(range(len(clips)), key=lambda i: clips[i].size / references[i].sample_rate)
    clip, audio = references[index], clips[index]
    return clip, audio[: int(max_s * clip.sample_rate)]


def wav_to_text(audio: np.ndarray, sample_rate: int) -> str:
    return base64.b64encode(encode_wav(audio, sample_rate)).decode("ascii")


def wav_from_profile(parameters: dict, *, key: str = "reference_wav") -> bytes:
    try:
        data = base64.b64decode(parameters[key], validate=True)
        sf.info(io.BytesIO(data))
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise VoiceProfileInvalid(f"voice profile has no usable reference audio: {exc}") from exc
    return data


def require_installed(*, engine: str, package: str, module: str, paths: dict[str, Path | None]) -> None:
    """Fail at construction (start-up) with every missing piece named, not at the first request."""
    problems = []
    if importlib.util.find_spec(module) is None:
        problems.append(f"package {package} is not installed (optional extra; install it beside clonegate)")
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
