"""The engine domain's errors.

Every concrete class sets ``code``; the gateway maps classes to HTTP statuses in one table.
Suggested statuses are noted per class for the gateway's table, not used here.
"""

from __future__ import annotations


class EngineError(Exception):
    """Base of every error raised by ``engine``."""

    code = "engine_error"


# --- bad input (422) -----------------------------------------------------------------------


class EngineInputInvalid(EngineError):
    code = "engine_input_invalid"


class TextEmpty(EngineInputInvalid):
    code = "engine_text_empty"


class TextTooLong(EngineInputInvalid):
    code = "engine_text_too_long"


class LanguageUnsupported(EngineInputInvalid):
    code = "engine_language_unsupported"


class ReferenceInvalid(EngineInputInvalid):
    """A reference clip cannot be used to prepare a voice (silent, too short, NaN, stereo…)."""

    code = "engine_reference_invalid"


class ControlOutOfRange(EngineInputInvalid):
    code = "engine_control_out_of_range"


class ControlUnsupported(EngineInputInvalid):
    """The configured engine cannot honour a requested control (e.g. pitch shift)."""

    code = "engine_control_unsupported"


class VoiceProfileInvalid(EngineInputInvalid):
    """A stored voice profile is malformed or belongs to a different engine."""

    code = "engine_voice_profile_invalid"


# --- engine state (503 / 429 / 504) ---------------------------------------------------------


class EngineUnavailable(EngineError):
    """The engine cannot run: package or weights missing, server unreachable, start-up failed."""

    code = "engine_unavailable"


class EngineNotReady(EngineError):
    """Warm-up has not finished yet."""

    code = "engine_not_ready"


class EngineBusy(EngineError):
    """The executor's queue is full; ``retry_after`` (seconds) goes into a Retry-After header."""

    code = "engine_busy"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class EngineTimeout(EngineError):
    code = "engine_timeout"


class EngineCancelled(EngineError):
    code = "engine_cancelled"


# --- bad engine behaviour (502) -------------------------------------------------------------


class EngineRequestFailed(EngineError):
    """A remote engine answered with an error, an unexpected content type, or dropped the line."""

    code = "engine_request_failed"


class EngineOutputInvalid(EngineError):
    """The engine returned audio that must not be released: NaN, silence, implausible length."""

    code = "engine_output_invalid"
