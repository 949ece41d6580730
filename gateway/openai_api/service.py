"""The OpenAI speech API as a client of the synthesis service.

It only translates: OpenAI's body becomes a `SynthesisRequest` and an output encoding, and the
synthesis service runs the one governed pipeline (consent, protected speakers, text rules,
write-ahead audit, watermark and its self-checks, release). What OpenAI's API lacks comes from
clonegate's settings: the purpose (body `purpose`, the `X-Clonegate-Purpose` header, or the
tenant's default), the language (body `language`, default English) and voice aliases per tenant.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy.orm import Session

from engine.interface import SynthesisControls
from gateway.auth import Permission, Principal
from gateway.openai_api.encodings import stream_encoding, whole_encoding
from gateway.openai_api.errors import InstructionsUnsupported, ModelNotAccepted, PurposeRequired, SpeedUnsupported
from gateway.openai_api.schemas import ModelCard, ModelList, SpeechBody, VoiceCard, VoiceList, VoiceScope
from gateway.settings import Settings
from gateway.shared.clock import utcnow
from gateway.synthesis.encoding import OutputEncoding
from gateway.synthesis.service import SynthesisService
from gateway.synthesis.steps import SynthesisRequest
from policy.consent.grants import consents_of_voice, voices_granted_to, voices_of_owner
from policy.consent.models import Consent, Voice
from watermark import WatermarkStack

PURPOSE_HEADER = "X-Clonegate-Purpose"
# Model cards carry a creation time; clonegate's names are aliases of the configured engine.
MODELS_CREATED = 0


@dataclass(frozen=True)
class SpeechPlan:
    """What one OpenAI speech request asks the synthesis service for."""

    request: SynthesisRequest
    encoding: OutputEncoding
    stream_format: Literal["audio", "sse"] | None


class OpenAISpeechService:
    def __init__(self, *, synthesis: SynthesisService, settings: Settings, watermark: WatermarkStack) -> None:
        self.synthesis = synthesis
        self._settings = settings
        self._watermark = watermark

    def plan(self, *, principal: Principal, body: SpeechBody, header_purpose: str | None) -> SpeechPlan:
        """The synthesis request and encoding, or the refusal of what clonegate cannot honour.
        Nothing is decided about consent here: the synthesis service does that, with its audit."""
        if body.model not in self._settings.openai_models:
            raise ModelNotAccepted(
                f"model {body.model!r} is not accepted here; accepted: {', '.join(self._settings.openai_models)}"
            )
        low, high = SynthesisControls.SPEED_RANGE
        if not low <= body.speed <= high:
            raise SpeedUnsupported(f"the engine supports speed {low}–{high}; {body.speed} was asked for")
        if body.instructions:
            raise InstructionsUnsupported(
                "instructions are not supported: the engine speaks in the consented voice as enrolled; "
                "send the request without instructions"
            )
        request = SynthesisRequest(
            voice_id=self._voice_id(principal, body.voice_name),
            text=body.input,
            language=body.language,
            purpose=self._purpose(principal, body.purpose or header_purpose),
            speed=body.speed,
        )
        if body.stream_format is None:
            encoding = whole_encoding(self.synthesis, body.response_format, watermark=self._watermark)
        else:
            encoding = stream_encoding(body.response_format, watermark=self._watermark)
        return SpeechPlan(request=request, encoding=encoding, stream_format=body.stream_format)

    def models(self) -> ModelList:
        return ModelList(
            data=[
                ModelCard(id=name, created=MODELS_CREATED, owned_by="clonegate")
                for name in self._settings.openai_models
            ]
        )

    def voices(self, session: Session, *, principal: Principal) -> VoiceList:
        """The voices this caller may synthesize with: its own (as owner) and those a live consent
        grants it or its tenant, each with what it may use them for."""
        now = utcnow()
        aliases = self._aliases(principal)
        cards: dict[str, VoiceCard] = {}
        if principal.has(Permission.MANAGE_OWN_VOICES):
            for voice in voices_of_owner(session, owner_iss=principal.issuer, owner_sub=principal.subject):
                if voice.status == "active":
                    cards[voice.id] = _card(voice, aliases, [VoiceScope(kind="owner")])
        for voice in voices_granted_to(session, principal_sub=principal.subject, tenant=principal.tenant, now=now):
            scopes = [
                _consent_scope(consent)
                for consent in consents_of_voice(session, voice_id=voice.id)
                if _names(consent, principal) and _live(consent, now)
            ]
            if voice.id in cards:
                cards[voice.id].scopes.extend(scopes)
            else:
                cards[voice.id] = _card(voice, aliases, scopes)
        return VoiceList(voices=list(cards.values()))

    def _aliases(self, principal: Principal) -> dict[str, str]:
        return self._settings.openai_voice_aliases.get(principal.tenant or "", {})

    def _voice_id(self, principal: Principal, name: str) -> str:
        return self._aliases(principal).get(name, name)

    def _purpose(self, principal: Principal, asked: str | None) -> str:
        purpose = asked or self._settings.openai_default_purposes.get(principal.tenant or "")
        if not purpose:
            tenant = principal.tenant or "<tenant>"
            raise PurposeRequired(
                "OpenAI's speech API has no purpose, and clonegate needs one to check consent: send "
                f'"purpose" in the request body (the openai client\'s extra_body), the {PURPOSE_HEADER} header, '
                f'or set a default for tenant {tenant} with CLONEGATE_OPENAI_DEFAULT_PURPOSES=\'{{"{tenant}": "<purpose>"}}\''
            )
        return purpose


def _names(consent: Consent, principal: Principal) -> bool:
    return (consent.grantee_kind, consent.grantee_id) in {("subject", principal.subject), ("tenant", principal.tenant)}


def _live(consent: Consent, now: datetime) -> bool:
    """As `voices_granted_to` counts a consent: unrevoked, in its window, uses left."""
    return (
        consent.revoked_at is None and consent.not_before <= now < consent.not_after and consent.uses < consent.max_uses
    )


def _card(voice: Voice, aliases: dict[str, str], scopes: list[VoiceScope]) -> VoiceCard:
    return VoiceCard(
        id=voice.id,
        name=voice.owner_name or voice.id,
        aliases=sorted(alias for alias, voice_id in aliases.items() if voice_id == voice.id),
        scopes=scopes,
    )


def _consent_scope(consent: Consent) -> VoiceScope:
    return VoiceScope(
        kind="consent",
        consent_id=consent.id,
        purposes=list(consent.purposes),
        languages=list(consent.languages),
        not_before=consent.not_before.isoformat(),
        not_after=consent.not_after.isoformat(),
        uses=consent.uses,
        max_uses=consent.max_uses,
    )
