"""The watermark domain's errors. Every class carries a stable ``code`` for the gateway's error table."""

from __future__ import annotations


class WatermarkError(Exception):
    """Base of every watermark error."""

    code = "watermark_error"


class InvalidAudio(WatermarkError):
    """The audio cannot be marked or examined: empty, non-finite, wrong rate, wrong shape, too short or too long."""

    code = "invalid_audio"


class InvalidPayload(WatermarkError):
    """The payload does not have the length the scheme carries."""

    code = "invalid_watermark_payload"


class WatermarkKeyError(WatermarkError):
    """The secret key is missing, too short, or a built-in development key outside dev mode."""

    code = "watermark_key_invalid"


class WatermarkConfigError(WatermarkError):
    """The watermark configuration names an unknown scheme or is otherwise unusable."""

    code = "watermark_config_invalid"


class WatermarkModelError(WatermarkError):
    """A neural watermark model could not be loaded: missing file, checksum mismatch, wrong format."""

    code = "watermark_model_unavailable"


class WatermarkEmbedFailed(WatermarkError):
    """A scheme could not embed its mark into this audio."""

    code = "watermark_embed_failed"


class WatermarkSelfCheckFailed(WatermarkError):
    """After embedding, a layer's mark (or its payload) was not found again: the audio must not be released."""

    code = "watermark_self_check_failed"
