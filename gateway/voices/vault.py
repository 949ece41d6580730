"""What the gateway keeps of a voice for synthesis: its speaker profile and its engine profile.

Both live encrypted under the voice's own data key (policy/consent/storage.py), so erasing the
voice (deleting the key) makes them unrecoverable together with its recordings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.interface import VoiceProfile
from policy.consent.models import Voice, VoiceSample
from policy.consent.storage import load_blob, load_samples, store_blob
from policy.errors import VoiceNotFound

ENGINE_PROFILE_KIND = "engine_profile"


@dataclass(frozen=True)
class VoiceMaterial:
    voice_id: str
    speaker_profile: np.ndarray
    profile_embedder_name: str  # the speaker model that made speaker_profile
    engine_profile: VoiceProfile
    reference_sha256: tuple[str, ...]


class VoiceVault:
    def __init__(self, *, key_encryption_key: bytes) -> None:
        self._kek = key_encryption_key

    @property
    def key_encryption_key(self) -> bytes:
        """Read-only: enrollment stores a new voice's samples under the same wrapping key."""
        return self._kek

    def save_engine_profile(self, session: Session, *, voice_id: str, profile: VoiceProfile) -> None:
        store_blob(
            session,
            voice_id=voice_id,
            kind=ENGINE_PROFILE_KIND,
            data=profile.to_json().encode(),
            key_encryption_key=self._kek,
            replace=True,
        )

    def load(self, session: Session, *, voice_id: str) -> VoiceMaterial:
        profiles = load_samples(session, voice_id=voice_id, kind="profile", key_encryption_key=self._kek)
        engine_profile = load_blob(session, voice_id=voice_id, kind=ENGINE_PROFILE_KIND, key_encryption_key=self._kek)
        if not profiles or engine_profile is None:
            raise VoiceNotFound(f"voice {voice_id} has no prepared profile")
        references = session.scalars(
            select(VoiceSample.sha256)
            .where(VoiceSample.voice_id == voice_id, VoiceSample.kind == "reference")
            .order_by(VoiceSample.id)
        ).all()
        return VoiceMaterial(
            voice_id=voice_id,
            speaker_profile=profiles[-1][0],
            profile_embedder_name=_profile_model(session, voice_id=voice_id),
            engine_profile=VoiceProfile.from_json(engine_profile),
            reference_sha256=tuple(references[:16]),
        )


def _profile_model(session: Session, *, voice_id: str) -> str:
    voice = session.get(Voice, voice_id)
    if voice is None:
        raise VoiceNotFound(f"voice {voice_id} does not exist")
    return voice.embedder_name
