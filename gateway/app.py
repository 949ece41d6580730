"""The FastAPI application, assembled in one place: components and services built from settings,
the lifespan of their background work, middleware, error handlers and every use case's routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI

from gateway import __version__
from gateway.audit_log import routes as audit_routes
from gateway.audit_log.signing import AUDIT_LOG_FIX, build_integrator, check_at_start_up
from gateway.auth import TokenVerifier
from gateway.blocklist import routes as blocklist_routes
from gateway.components import LoadedModels, build_components, load_models
from gateway.console import routes as console_routes
from gateway.container import Gateway, build_services
from gateway.db import DATABASE_FIX, SCHEMA_FIX, check_reachable, create_db_engine, make_session_factory, schema_check
from gateway.detection import routes as detection_routes
from gateway.engines import install_engine
from gateway.enrollment import routes as enrollment_routes
from gateway.errors import install_error_handlers
from gateway.keyfiles import audit_signing_key, check_key_files
from gateway.logs import stamp_request_ids
from gateway.metrics import AuditLogCollector, MetricsExporter
from gateway.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from gateway.openai_api import routes as openai_routes
from gateway.openai_api.errors import OpenAIErrorShape
from gateway.openapi import install_openapi
from gateway.operations import routes as operations_routes
from gateway.rate_limits.limiter import RateLimiter
from gateway.rate_limits.reporting import RefusalReporter
from gateway.readiness import Readiness
from gateway.replicas.replica import ThisReplica
from gateway.settings import Settings
from gateway.startup_checks import cohort_problem, enforce, schema_problem, voice_storage_problem
from gateway.synthesis import routes as synthesis_routes
from gateway.voices import routes as voices_routes

IDENTITY_PROVIDER_FIX = (
    "check that CLONEGATE_JWT_JWKS_URL answers from this host; the gateway retries on its own (docs/operations.md)"
)
ROUTERS = (
    operations_routes.router,
    synthesis_routes.router,
    detection_routes.router,
    enrollment_routes.router,
    voices_routes.router,
    blocklist_routes.router,
    audit_routes.router,
    openai_routes.router,
    console_routes.router,
)


def create_app(settings: Settings, *, models: LoadedModels | None = None) -> FastAPI:
    """Build every component eagerly, so a bad key or setting fails here, at start-up.

    Prod also refuses a database below the latest migration and a protected-speaker list without
    a cohort (gateway/startup_checks.py). `models` lets a process that builds several apps (the
    test suite) load the slow models once.
    """
    stamp_request_ids()
    check_key_files(settings)  # before any model loads: a bad key is the quickest thing to report
    db_engine = create_db_engine(settings.resolved_database_url)
    enforce(settings, schema_problem(db_engine))
    token_verifier = TokenVerifier(settings)
    sessions = make_session_factory(db_engine)
    readiness = Readiness()
    readiness.register("database", lambda: check_reachable(db_engine), fix=DATABASE_FIX)
    readiness.register("database_schema", schema_check(db_engine), fix=SCHEMA_FIX)
    readiness.register("identity_provider", token_verifier.ready, fix=IDENTITY_PROVIDER_FIX)
    audit_key = audit_signing_key(settings)
    integrator = build_integrator(sessions, key=audit_key, settings=settings)
    readiness.register("audit_log", lambda: integrator.healthy, fix=AUDIT_LOG_FIX)
    models = models or load_models(settings)
    rate_limiter = RateLimiter(
        sessions=sessions,
        limits=settings.rate_limits,
        anonymous_detection_per_minute=settings.detect_anonymous_per_minute,
    )

    replica = ThisReplica(
        sessions=sessions,
        db_engine=db_engine,
        heartbeat_seconds=settings.replica_heartbeat_seconds,
        lease_seconds=settings.replica_lease_seconds,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        check_at_start_up(sessions, audit_key, settings=settings)  # a tampered log stops the gateway here
        integrator.start()
        gateway.components.blocklist.start_background_refresh()
        # Closes what replicas that died left before this one admits anything.
        await anyio.to_thread.run_sync(replica.start)
        gateway.rate_limit_reporter.start()
        try:
            yield
        finally:
            # The server has stopped accepting and waited up to CLONEGATE_DRAIN_SECONDS for the
            # requests in flight; what still runs is cancelled and closed now.
            await anyio.to_thread.run_sync(replica.drain)
            replica.stop()
            gateway.rate_limit_reporter.stop()
            gateway.components.blocklist.stop()
            integrator.stop()
            db_engine.dispose()

    app = FastAPI(
        title="clonegate",
        version=__version__,
        description="Safety and governance gateway in front of a voice-cloning engine.",
        lifespan=lifespan,
    )
    executor = install_engine(app, settings, readiness=readiness, engine=models.engine)
    components = build_components(settings, models=models, executor=executor, sessions=sessions, readiness=readiness)
    enforce(settings, cohort_problem(components.blocklist))
    enforce(settings, voice_storage_problem(sessions, key_encryption_key=components.voices.key_encryption_key))
    gateway = Gateway(
        settings=settings,
        db_engine=db_engine,
        sessions=sessions,
        token_verifier=token_verifier,
        readiness=readiness,
        components=components,
        audit_key=audit_key,
        audit_integrator=integrator,
        rate_limiter=rate_limiter,
        rate_limit_reporter=RefusalReporter(sessions, interval=settings.rate_limit_report_seconds),
        replica=replica,
        metrics=MetricsExporter(collectors=[AuditLogCollector(sessions)]),
        services=build_services(
            settings,
            sessions=sessions,
            db_engine=db_engine,
            components=components,
            audit_key=audit_key,
            rate_limiter=rate_limiter,
            replica=replica,
        ),
    )
    app.state.gateway = gateway  # read only by gateway/dependencies.py
    app.state.token_verifier = gateway.token_verifier  # read by gateway.auth.current_principal

    error_shapes = [OpenAIErrorShape()]  # OpenAI's body on its routes
    install_error_handlers(app, shapes=error_shapes)
    # The middleware added last is outermost: the request id covers the 413 answer too.
    app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware)
    for router in ROUTERS:
        app.include_router(router)
    install_openapi(app)
    return app
