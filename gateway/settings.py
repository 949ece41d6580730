"""Typed settings for the gateway, read from `CLONEGATE_*` environment variables.

Dev mode runs on built-in secrets and keys so that `./bootstrap serve` works with no set-up;
prod mode refuses every built-in secret and requires each key file, naming the setting.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings import SettingsError as EnvironmentParseError

from gateway.dev_material import DEV_JWT_SECRET, dev_material_in

__all__ = ["DEV_JWT_ISSUER", "DEV_JWT_SECRET", "Settings", "SettingsError", "load_settings"]

# The dev issuer of `clonegate token`; prod refuses it (tokens come from the identity provider).
DEV_JWT_ISSUER = "https://dev.clonegate.invalid"

ASYMMETRIC_JWT_ALGORITHMS = ("RS256", "ES256")
HS_JWT_ALGORITHMS = ("HS256",)


class SettingsError(ValueError):
    """The configuration is unusable; the message names the setting."""


def _plain_or_json_list(value: Any) -> Any:
    """`ES256,RS256` or `["ES256", "RS256"]` from the environment; anything else passes through."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not a JSON list: {exc.msg}") from None
    return [item.strip() for item in text.split(",") if item.strip()]


def _json_list_only(value: Any) -> Any:
    """Regular expressions may contain commas, so these lists are JSON only."""
    if not isinstance(value, str):
        return value
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = None
    if not isinstance(parsed, list):
        raise ValueError('must be a JSON list of regular expressions, e.g. ["forbidden phrase"]')
    return parsed


class LimitSet(BaseModel):
    """The budgets of one tenant or one token subject. A field left out keeps the default; null
    means no limit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    synthesis_requests_per_minute: int | None = Field(default=None, ge=1, le=1_000_000)
    synthesis_audio_seconds_per_day: float | None = Field(default=None, gt=0, le=1e9)
    detection_requests_per_minute: int | None = Field(default=None, ge=1, le=1_000_000)
    enrollment_requests_per_minute: int | None = Field(default=None, ge=1, le=1_000_000)

    def over(self, base: LimitSet) -> LimitSet:
        """These budgets where set (null included), ``base``'s elsewhere."""
        return base.model_copy(update={name: getattr(self, name) for name in self.model_fields_set})


DEFAULT_TENANT_LIMITS = LimitSet(
    synthesis_requests_per_minute=120,
    synthesis_audio_seconds_per_day=36_000,
    detection_requests_per_minute=600,
    enrollment_requests_per_minute=60,
)
DEFAULT_SUBJECT_LIMITS = LimitSet(
    synthesis_requests_per_minute=60,
    synthesis_audio_seconds_per_day=None,
    detection_requests_per_minute=300,
    enrollment_requests_per_minute=30,
)


class RateLimits(BaseModel):
    """`CLONEGATE_RATE_LIMITS`, a JSON object: budgets per tenant (`tenant`), per token subject
    (`subject`), and per-tenant overrides (`tenants`: {"acme": {...}}); see docs/operations.md."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant: LimitSet = LimitSet()
    subject: LimitSet = LimitSet()
    tenants: dict[Annotated[str, Field(min_length=1, max_length=200)], LimitSet] = {}

    def of_tenant(self, tenant: str) -> LimitSet:
        base = self.tenant.over(DEFAULT_TENANT_LIMITS)
        override = self.tenants.get(tenant)
        return base if override is None else override.over(base)

    def of_subject(self) -> LimitSet:
        return self.subject.over(DEFAULT_SUBJECT_LIMITS)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLONEGATE_", extra="ignore")

    mode: Literal["dev", "prod"] = "dev"
    data_dir: Path = Path("data")
    # Default: a SQLite file in the data folder. PostgreSQL: postgresql+psycopg://user@host/db
    database_url: str | None = None

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    max_body_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)
    # Replicas (docs/operations.md): each renews its heartbeat this often; a replica whose
    # heartbeat is older than the lease has its requests closed as abandoned by the others.
    replica_heartbeat_seconds: float = Field(default=5.0, gt=0, le=300)
    replica_lease_seconds: float = Field(default=30.0, gt=0, le=3600)
    # SIGTERM: stop accepting, let requests in flight finish for this long, then cancel the rest.
    drain_seconds: int = Field(default=30, ge=0, le=3600)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # JWT: HS256 with a shared secret in dev; RS256/ES256 keys from a JWKS file or URL in prod.
    # Lists read from the environment take the plain form (`ES256,RS256`) or a JSON list.
    jwt_algorithms: Annotated[list[Literal["HS256", "RS256", "ES256"]], NoDecode] = ["HS256"]
    # Used only when an HS algorithm is accepted (dev mode: prod refuses HS256).
    jwt_secret: SecretStr = SecretStr(DEV_JWT_SECRET)
    jwt_jwks_file: Path | None = None
    jwt_jwks_url: str | None = None
    # The key set is fetched again every refresh interval, and at once for a token whose `kid` is
    # not in it, but never more often than the minimum interval (a flood of made-up kids costs the
    # identity provider one request per minimum interval). A key missing from the latest fetched
    # set is refused. While the latest fetch failed, tokens answer 503 identity_provider_unavailable;
    # the grace keeps the last fetched keys in use for that long instead (0: fail closed at once).
    jwt_jwks_refresh_seconds: float = Field(default=300.0, ge=1, le=86_400)
    jwt_jwks_min_refresh_seconds: float = Field(default=10.0, ge=0.1, le=3600)
    jwt_jwks_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    jwt_jwks_outage_grace_seconds: float = Field(default=0.0, ge=0, le=86_400)
    jwt_issuer: str = DEV_JWT_ISSUER
    jwt_audience: str = "clonegate"
    jwt_leeway_seconds: int = Field(default=30, ge=0, le=300)
    jwt_role_claim: str = "role"
    jwt_tenant_claim: str = "tenant"
    jwt_name_claim: str = "name"
    # Identity assurance: the claim is exposed to policy as Principal.identity_verified; it is
    # true when the claim is boolean true or equals one of the accepted values (e.g. an `acr`).
    identity_assurance_claim: str = "identity_verified"
    identity_assurance_values: Annotated[list[str], NoDecode] = []
    # Audit log: Ed25519 checkpoint key (signed-note text format); dev mode generates one in data_dir.
    audit_signing_key_file: Path | None = None
    audit_checkpoint_interval_seconds: float = Field(default=1.0, gt=0, le=3600)
    # Cloning engine: the embedded offline CPU engine (Piper + WORLD adaptation) by default, or an
    # adapter for a real engine. gateway/engines.py builds it and names missing settings.
    engine: Literal["embedded", "gpt-sovits", "xtts", "zonos", "f5-tts", "chatterbox", "ray"] = "embedded"
    engine_device: Literal["auto", "cpu", "cuda"] = "auto"
    # HTTP engines (gpt-sovits, xtts, zonos): the engine server's base URL and a model label for audit.
    engine_url: str | None = None
    engine_model_id: str | None = None
    # GPT-SoVITS reads references from its own disk: a folder both hosts share, and its path there.
    engine_shared_dir: Path | None = None
    engine_shared_dir_on_engine: str | None = None
    # In-process engines: F5-TTS checkpoint file, vocabulary and vocos folder; Chatterbox folder.
    engine_checkpoint: Path | None = None
    engine_vocab_file: Path | None = None
    engine_vocoder_dir: Path | None = None
    # Engine workers on Ray Serve (CLONEGATE_ENGINE=ray): the Serve application of the engine to
    # call, the Ray cluster to join ("auto": the cluster of the Ray node on this host), and how
    # often a synthesis whose replica died runs again on another replica (0: it fails closed).
    engine_worker_app: str | None = None
    engine_worker_ray_address: str = "auto"
    engine_worker_retries: int = Field(default=1, ge=0, le=3)
    # Bounded executor: concurrent jobs, waiting jobs (beyond them: 429), per-request deadlines.
    engine_max_concurrency: int = Field(default=1, ge=1, le=64)
    engine_max_queue: int = Field(default=4, ge=0, le=1000)
    engine_timeout_seconds: float = Field(default=120.0, gt=0, le=3600)
    engine_prepare_timeout_seconds: float = Field(default=90.0, gt=0, le=3600)
    engine_max_text_chars: int = Field(default=2000, ge=1, le=20000)
    # Load and warm the engine before the app serves (set for `serve --workers`); otherwise in
    # the background while /readyz says so.
    engine_warm_before_serving: bool = False
    # Watermark: layers embedded in this order on every output and all checked on detection
    # (default keyed alone: docs/watermark.md), and layers only looked for on detection, never
    # embedded. The keyed layer's secret key file (raw bytes, at least 16; dev mode falls back to a
    # public built-in key, prod requires the file). AudioSeal checkpoints are local files pinned by sha256.
    watermark_schemes: Annotated[list[Literal["keyed", "perth", "audioseal"]], NoDecode] = ["keyed"]
    watermark_detect_only: Annotated[list[Literal["perth", "audioseal"]], NoDecode] = ["perth"]
    watermark_key_file: Path | None = None
    watermark_max_false_positive: float = Field(default=1e-4, gt=0, le=1e-2)
    watermark_audioseal_generator: Path | None = None
    watermark_audioseal_generator_sha256: str | None = None
    watermark_audioseal_detector: Path | None = None
    watermark_audioseal_detector_sha256: str | None = None
    # Speaker embeddings for consent matching and the protected-speaker list: resemblyzer (weights
    # ship in its package) or a local ONNX model pinned by sha256.
    speaker_embedder: Literal["resemblyzer", "onnx"] = "resemblyzer"
    speaker_onnx_model: Path | None = None
    speaker_onnx_sha256: str | None = None
    speaker_onnx_name: str = Field(default="onnx", pattern=r"^[A-Za-z0-9._-]{1,40}$")
    speaker_onnx_dimension: int | None = Field(default=None, ge=16, le=4096)  # read from the model if unset
    speaker_onnx_front_end: Literal["fbank80", "waveform"] = "fbank80"
    # Fuse each embedding with those of its 3 s windows (about 3x the embedding time; a model id of its own).
    speaker_window_fusion: bool = False
    # Speaker-score calibration (thresholds, normalisation) for the configured model, written by
    # `clonegate blocklist calibrate`; unset: the one shipped for that model (resemblyzer only).
    # The two thresholds, when set, override the calibration's (normalised scores).
    speaker_calibration_file: Path | None = None
    blocklist_deny_threshold: float | None = None
    blocklist_review_threshold: float | None = None
    blocklist_poll_seconds: float = Field(default=2.0, gt=0, le=5)
    # Voice storage: recordings and profiles are sealed under per-voice data keys, which are
    # wrapped with this key-encryption key (32 raw bytes; dev mode uses a public built-in key).
    voice_storage_key_file: Path | None = None
    # Owners must present the identity-assurance claim before they may consent to a clone.
    require_owner_identity_assurance: bool = False
    # Consent liveness: a challenge's four words are shown only when the owner starts recording
    # (POST /v1/consent/challenges/{id}/reveal); the recording must reach the gateway within this
    # many seconds of the reveal, by the gateway's clock (docs/consent.md says what this stops).
    consent_recording_window_seconds: float = Field(default=60.0, ge=10, le=600)
    # Anti-spoofing for consent recordings: a local ONNX export of an AASIST-style countermeasure
    # (16 kHz waveform in, [spoof, bona fide] logits out), its pinned sha256, and the bona fide
    # logit below which a recording is refused as synthetic (from the model's own calibration).
    consent_countermeasure_model: Path | None = None
    consent_countermeasure_sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    consent_countermeasure_threshold: float | None = None
    # Synthesis requests: text limit and deny patterns (regular expressions on normalised text).
    synthesis_max_text_chars: int = Field(default=5000, ge=1, le=100_000)
    synthesis_deny_patterns: Annotated[list[str], NoDecode] = []
    # The detector: anonymous callers (no token) only if allowed, and then rate limited per address.
    detect_allow_anonymous: bool = False
    detect_anonymous_per_minute: int = Field(default=10, ge=1, le=10_000)
    # The browser console signs in (prod) with OpenID Connect, authorization code + PKCE, at the
    # JWT issuer above, as this public client; the access token it gets must carry the audience.
    console_oidc_client_id: str | None = None
    console_oidc_scope: str = "openid profile"
    # Rate limits and quotas, shared by every replica through the database (gateway/rate_limits/).
    rate_limits: RateLimits = RateLimits()
    # How often each replica turns finished windows' refusals into `request.rate_limited` events.
    rate_limit_report_seconds: float = Field(default=10.0, gt=0, le=3600)
    # OpenAI-compatible speech API (docs/openai-api.md): the model names it accepts (each runs the
    # configured engine), a default purpose per tenant (OpenAI's API has none), and voice aliases
    # per tenant (alias -> voice id), e.g. {"acme": {"alloy": "<voice id>"}}. Both maps are JSON.
    openai_models: Annotated[list[str], NoDecode] = ["tts-1", "tts-1-hd", "gpt-4o-mini-tts"]
    openai_default_purposes: dict[str, str] = {}
    openai_voice_aliases: dict[str, dict[str, str]] = {}
    # Who provides the service, written into every output's AI label.
    provider_name: str = "clonegate (development)"
    # C2PA manifests on outputs (gateway/synthesis/provenance.py): a PEM chain (the ES256 leaf, then the CA
    # that issued it) and the leaf's EC P-256 key. Dev mode makes a throwaway CA and leaf at each
    # start; prod requires both files (docs/operations.md says how to issue them).
    c2pa_certificate_chain_file: Path | None = None
    c2pa_signing_key_file: Path | None = None

    _split_plain_lists = field_validator(
        "jwt_algorithms",
        "identity_assurance_values",
        "watermark_schemes",
        "watermark_detect_only",
        "openai_models",
        mode="before",
    )(_plain_or_json_list)
    _parse_pattern_list = field_validator("synthesis_deny_patterns", mode="before")(_json_list_only)

    @model_validator(mode="after")
    def _check_jwt_sources(self) -> Settings:
        if not self.jwt_algorithms:
            raise ValueError("CLONEGATE_JWT_ALGORITHMS names no algorithm")
        if self.jwt_jwks_file is not None and self.jwt_jwks_url is not None:
            raise ValueError("set one of CLONEGATE_JWT_JWKS_FILE and CLONEGATE_JWT_JWKS_URL, not both")
        if self.jwt_jwks_min_refresh_seconds > self.jwt_jwks_refresh_seconds:
            raise ValueError(
                "CLONEGATE_JWT_JWKS_MIN_REFRESH_SECONDS must not exceed CLONEGATE_JWT_JWKS_REFRESH_SECONDS"
            )
        return self

    @model_validator(mode="after")
    def _check_replica_lease(self) -> Settings:
        # Two missed beats are tolerated before another replica may close this one's requests.
        if self.replica_lease_seconds < 2 * self.replica_heartbeat_seconds:
            raise ValueError(
                "CLONEGATE_REPLICA_LEASE_SECONDS must be at least twice CLONEGATE_REPLICA_HEARTBEAT_SECONDS"
            )
        return self

    @model_validator(mode="after")
    def _refuse_dev_material_in_prod(self) -> Settings:
        if self.mode != "prod":
            return self
        # Key *files* are checked against the built-in dev keys when they are read
        # (gateway/keyfiles.py); here only what the settings themselves hold.
        problems = []
        if self.accepts_hs_tokens:
            problems.append("CLONEGATE_JWT_ALGORITHMS: HS256 is for dev only; use RS256/ES256 with a JWKS in prod")
            dev_secret = dev_material_in(self.jwt_secret.get_secret_value().encode())
            if dev_secret is not None:
                problems.append(f"CLONEGATE_JWT_SECRET: {dev_secret.what} is refused in prod")
        if self.jwt_jwks_file is None and self.jwt_jwks_url is None:
            problems.append("CLONEGATE_JWT_JWKS_FILE or CLONEGATE_JWT_JWKS_URL must be set in prod")
        if self.jwt_issuer == DEV_JWT_ISSUER:
            problems.append("CLONEGATE_JWT_ISSUER: the built-in dev issuer is refused in prod")
        # Every key file setting falls back to a built-in dev key when unset; prod has none.
        for name in type(self).model_fields:
            if name.endswith("_key_file") and getattr(self, name) is None:
                problems.append(f"CLONEGATE_{name.upper()} must name a key file in prod")
        if self.c2pa_certificate_chain_file is None:  # its dev fallback is a throwaway CA
            problems.append("CLONEGATE_C2PA_CERTIFICATE_CHAIN_FILE must name the signing certificate chain in prod")
        if problems:
            raise SettingsError("refusing to start in prod mode: " + "; ".join(problems))
        return self

    @cached_property
    def resolved_database_url(self) -> str:
        return _database_url(self.database_url, data_dir=self.data_dir)

    @property
    def is_dev(self) -> bool:
        return self.mode == "dev"

    @property
    def accepts_hs_tokens(self) -> bool:
        return any(algorithm in HS_JWT_ALGORITHMS for algorithm in self.jwt_algorithms)


def _database_url(database_url: str | None, *, data_dir: Path) -> str:
    # Default: a SQLite file in the data folder.
    return database_url or f"sqlite:///{(data_dir / 'clonegate.db').resolve()}"


class DatabaseLocation(BaseSettings):
    """Where the database is, read on its own: `clonegate db` needs nothing else, so a prod host
    migrates before its keys and identity provider are configured (docs/operations.md, step 2)."""

    model_config = SettingsConfigDict(env_prefix="CLONEGATE_", extra="ignore")

    data_dir: Path = Path("data")
    database_url: str | None = None

    @property
    def resolved_database_url(self) -> str:
        return _database_url(self.database_url, data_dir=self.data_dir)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment (and overrides), or a `SettingsError` naming what is wrong."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            message = error["msg"].removeprefix("Value error, ")
            # A list item's error has the item's index in its location; the setting is the first part.
            where = str(error["loc"][0]) if error["loc"] else ""
            problems.append(f"CLONEGATE_{where.upper()}: {message}" if where else message)
        raise SettingsError("; ".join(problems)) from None
    except EnvironmentParseError as exc:  # a value the settings source could not decode at all
        raise SettingsError(str(exc)) from None
