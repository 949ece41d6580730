"""Everything one app is built from: infrastructure, shared components and one service per use case.

`create_app` (gateway/app.py) builds a `Gateway` once; routes reach its services through the typed
dependencies of gateway/dependencies.py, never through the app's state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from audit.checkpoint import SigningKey
from audit.integrator import IntegratorThread
from gateway.audit_log.service import AuditService
from gateway.auth import TokenVerifier
from gateway.blocklist.exceptions import BlocklistExceptions
from gateway.blocklist.service import BlocklistService
from gateway.components import Components
from gateway.detection.service import DetectionService
from gateway.enrollment.service import EnrollmentService
from gateway.metrics import MetricsExporter
from gateway.openai_api.service import OpenAISpeechService
from gateway.rate_limits.limiter import RateLimiter
from gateway.rate_limits.reporting import RefusalReporter
from gateway.readiness import Readiness
from gateway.replicas.replica import ThisReplica
from gateway.settings import Settings
from gateway.synthesis.service import SynthesisService
from gateway.voices.service import VoicesService


@dataclass(frozen=True)
class Services:
    synthesis: SynthesisService
    enrollment: EnrollmentService
    voices: VoicesService
    blocklist: BlocklistService
    blocklist_exceptions: BlocklistExceptions
    detection: DetectionService
    audit: AuditService
    openai_speech: OpenAISpeechService


@dataclass(frozen=True)
class Gateway:
    settings: Settings
    db_engine: Engine
    sessions: sessionmaker[Session]
    token_verifier: TokenVerifier
    readiness: Readiness
    components: Components
    audit_key: SigningKey
    audit_integrator: IntegratorThread
    rate_limiter: RateLimiter
    rate_limit_reporter: RefusalReporter
    replica: ThisReplica
    metrics: MetricsExporter
    services: Services


def build_services(
    settings: Settings,
    *,
    sessions: sessionmaker[Session],
    db_engine: Engine,
    components: Components,
    audit_key: SigningKey,
    rate_limiter: RateLimiter,
    replica: ThisReplica,
) -> Services:
    assurance = settings.require_owner_identity_assurance
    synthesis = SynthesisService(sessions=sessions, components=components, rate_limiter=rate_limiter, replica=replica)
    return Services(
        synthesis=synthesis,
        enrollment=EnrollmentService(
            sessions=sessions,
            components=components,
            require_identity_assurance=assurance,
            recording_window=timedelta(seconds=settings.consent_recording_window_seconds),
        ),
        voices=VoicesService(sessions=sessions, db_engine=db_engine),
        blocklist=BlocklistService(sessions=sessions, components=components, require_identity_assurance=assurance),
        blocklist_exceptions=BlocklistExceptions(sessions=sessions, components=components),
        detection=DetectionService(sessions=sessions, watermark=components.watermark),
        audit=AuditService(key=audit_key),
        openai_speech=OpenAISpeechService(synthesis=synthesis, settings=settings, watermark=components.watermark),
    )
