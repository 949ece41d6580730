"""`?stream=true`: the text in chunks of whole sentences, each marked, screened and released
before it is sent.

Each chunk goes through `SynthesisService.release_piece`, the same function a whole request goes
through after admission: engine, watermark with its self-check (the payload is the request's
`admitted` identifier, so every chunk points at the same audit record), protected-speaker check
of the marked chunk, consent re-check, and a committed `released` event with the chunk's sha256.
Only then are its bytes yielded. A chunk whose mark does not verify is held back and marked
together with the next one. A failure stops the stream where it is (the HTTP response is then
cut off, which clients see as an incomplete body) and records `request.failed`; a client that
goes away leaves `request.cancelled`; both name the sha256 of what had been sent.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING

from engine.interface import CancelToken, EngineAudio
from gateway.auth import Principal
from gateway.shared.reasons import CLIENT_DISCONNECTED
from gateway.synthesis.steps import HeldBack, SynthesisRequest

if TYPE_CHECKING:
    from gateway.synthesis.encoding import PieceEncoder
    from gateway.synthesis.service import SynthesisService
    from gateway.synthesis.steps import Admission

# About six seconds of speech: a chunk this long carries the whole keyed payload (3 s and more),
# not only the mark's presence, and the first audio still arrives after one sentence or two.
MIN_CHUNK_CHARS = 90
_SENTENCE_END = re.compile(r"(?<=[.!?;。！？])\s+")


def text_chunks(text: str, *, min_chars: int = MIN_CHUNK_CHARS) -> list[str]:
    """Whole sentences, joined until a chunk has at least ``min_chars`` characters; a short
    remainder joins the chunk before it."""
    chunks: list[str] = []
    current = ""
    for sentence in _SENTENCE_END.split(text.strip()):
        current = f"{current} {sentence}".strip()
        if len(current) >= min_chars:
            chunks.append(current)
            current = ""
    if current:
        if chunks and len(current) < min_chars // 2:
            chunks[-1] = f"{chunks[-1]} {current}"
        else:
            chunks.append(current)
    return chunks


class SynthesisStream:
    """An admitted request whose audio is produced as it is iterated: the encoded bytes of each
    released chunk, in text order. ``close`` before the end (the client went away) records
    `request.cancelled`, also when no chunk was asked for yet."""

    def __init__(
        self,
        *,
        service: SynthesisService,
        principal: Principal,
        request: SynthesisRequest,
        admission: Admission,
        cancel: CancelToken,
        encode: PieceEncoder,
        lossy: bool,
        encoding_name: str,
        media_type: str,
    ) -> None:
        self._service = service
        self._principal = principal
        self._request = request
        self.admission = admission
        self._cancel = cancel
        self._encode = encode
        self._lossy = lossy
        self._encoding_name = encoding_name
        self.media_type = media_type
        self._ended = False  # a released, failed or cancelled outcome has been recorded
        self._chunks = self._produce()

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    def close(self) -> None:
        self._chunks.close()  # a stream stopped at a chunk records its cancellation in _produce
        if not self._ended:  # never started: closing an unstarted generator runs none of its code
            self._ended = True
            self.admission.give_back_engine_slot()
            self._cancel.cancel(CLIENT_DISCONNECTED)
            self._service.refusals.after_admission(
                principal=self._principal,
                request=self._request,
                admission=self.admission,
                error=GeneratorExit(),
                cancel=self._cancel,
            )

    def _produce(self) -> Generator[bytes]:
        sent = hashlib.sha256()
        count = 0
        held_back: EngineAudio | None = None
        try:
            texts = text_chunks(self.admission.text)
            for index, text in enumerate(texts):
                piece = self._service.release_piece(
                    principal=self._principal,
                    request=self._request,
                    admission=self.admission,
                    text=text,
                    encode=self._encode,
                    lossy=self._lossy,
                    encoding_name=self._encoding_name,
                    first=count == 0,
                    last=index == len(texts) - 1,
                    cancel=self._cancel,
                    held_back=held_back,
                    # Rarely a short chunk cannot carry a payload that reads back (after the
                    # silence-padded retries): it goes out later, marked together with the next one.
                    may_hold_back=index < len(texts) - 1,
                )
                if isinstance(piece, HeldBack):
                    held_back = piece.audio
                    continue
                held_back = None
                sent.update(piece.body)
                count += 1
                yield piece.body
        except BaseException as exc:
            if isinstance(exc, GeneratorExit):
                self._cancel.cancel(CLIENT_DISCONNECTED)
            self._service.refusals.after_admission(
                principal=self._principal,
                request=self._request,
                admission=self.admission,
                error=exc,
                cancel=self._cancel,
                released_sha256=sent.hexdigest() if count else None,
            )
            raise
        finally:
            self._ended = True
            self.admission.give_back_engine_slot()
