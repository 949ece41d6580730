"""The watermark stack the gateway runs, from settings.

``build_watermark_stack(settings)`` is what the app calls at start-up: it reads the key file
(the watermark package only ever sees bytes) and builds every configured layer, so a layer that
cannot load stops start-up with its reason.
"""

from __future__ import annotations

from pathlib import Path

from gateway.settings import Settings, SettingsError
from watermark import AudioSealFiles, WatermarkConfig, WatermarkError, WatermarkStack, build_stack


def watermark_config(settings: Settings) -> WatermarkConfig:
    """The watermark package's configuration from settings; the key file is read here."""
    key = None
    if settings.watermark_key_file is not None:
        try:
            key = Path(settings.watermark_key_file).read_bytes()
        except OSError as exc:
            raise SettingsError(
                f"CLONEGATE_WATERMARK_KEY_FILE: cannot read {settings.watermark_key_file}: {exc}"
            ) from exc
    audioseal = None
    if "audioseal" in settings.watermark_schemes:
        missing = [
            name
            for name in (
                "watermark_audioseal_generator",
                "watermark_audioseal_generator_sha256",
                "watermark_audioseal_detector",
                "watermark_audioseal_detector_sha256",
            )
            if not getattr(settings, name)
        ]
        if missing:
            raise SettingsError("the audioseal watermark needs " + ", ".join(f"CLONEGATE_{m.upper()}" for m in missing))
        audioseal = AudioSealFiles(
            generator_path=settings.watermark_audioseal_generator,
            generator_sha256=settings.watermark_audioseal_generator_sha256,
            detector_path=settings.watermark_audioseal_detector,
            detector_sha256=settings.watermark_audioseal_detector_sha256,
        )
    return WatermarkConfig(
        schemes=tuple(settings.watermark_schemes),
        key=key,
        dev_mode=settings.is_dev,
        audioseal=audioseal,
        max_false_positive=settings.watermark_max_false_positive,
    )


def build_watermark_stack(settings: Settings) -> WatermarkStack:
    """The configured stack, or a SettingsError naming the layer that failed and why."""
    try:
        return build_stack(watermark_config(settings))
    except WatermarkError as exc:
        raise SettingsError(f"CLONEGATE_WATERMARK_SCHEMES: {exc}") from exc
