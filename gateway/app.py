"""The FastAPI application: components built from settings, middleware, routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from gateway import __version__
from gateway.auth import TokenVerifier
from gateway.components import LoadedModels, install_pipeline, load_models
from gateway.db import create_db_engine, database_reachable, make_session_factory
from gateway.engines import install_engine
from gateway.errors import install_error_handlers
from gateway.keyfiles import check_key_files
from gateway.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from gateway.readiness import Readiness
from gateway.routes import admin, blocklist, consent, detect, health, synthesis, voices
from gateway.routes.audit import install_audit
from gateway.routes.detect import AnonymousRateLimiter
from gateway.settings import Settings
from gateway.startup_checks import cohort_problem, enforce, schema_problem, voice_storage_problem


def create_app(settings: Settings, *, models: LoadedModels | None = None) -> FastAPI:
    """Build every component eagerly, so a bad key or setting fails here, at start-up.

    Prod also refuses a database below the latest migration and a protected-speaker list without
    a cohort (gateway/startup_checks.py). `models` lets a process that builds several apps (the
    test suite) load the slow models once.
    """
    check_key_files(settings)  # before any model loads: a bad key is the quickest thing to report
    db_engine = create_db_engine(settings.resolved_database_url)
    enforce(settings, schema_problem(db_engine))
    readiness = Readiness()
    readiness.register("database", lambda: database_reachable(db_engine))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        db_engine.dispose()

    app = FastAPI(
        title="clonegate",
        version=__version__,
        description="Safety and governance gateway in front of a voice-cloning engine.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.db_engine = db_engine
    app.state.session_factory = make_session_factory(db_engine)
    app.state.token_verifier = TokenVerifier(settings)
    readiness.register("identity_provider", app.state.token_verifier.ready)
    app.state.readiness = readiness
    install_audit(app, settings)
    models = models or load_models(settings)
    install_engine(app, settings, engine=models.engine)
    install_pipeline(app, settings, models=models)
    components = app.state.components
    enforce(settings, cohort_problem(components.blocklist))
    enforce(
        settings,
        voice_storage_problem(app.state.session_factory, key_encryption_key=components.voices.key_encryption_key),
    )
    app.state.detect_rate_limiter = AnonymousRateLimiter(per_minute=settings.detect_anonymous_per_minute)

    install_error_handlers(app)
    # The middleware added last is outermost: the request id covers the 413 answer too.
    app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware)
    app.include_router(health.router)
    app.include_router(admin.router)
    app.include_router(synthesis.router)
    app.include_router(detect.router)
    app.include_router(consent.router)
    app.include_router(voices.router)
    app.include_router(blocklist.router)
    return app
