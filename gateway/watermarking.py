"""The watermark stack the gateway runs, from settings.

``build_watermark_stack(settings)`` is what the app calls at start-up: it reads the key file
(the watermark package only ever sees bytes) and builds every configured layer, so a layer that
cannot load stops start-up with its reason.
"""

from __future__ import annotations

from gateway.keyfiles import WATERMARK_KEY_SETTING, watermark_key
from gateway.settings import Settings, SettingsError
from watermark import AudioSealFiles, WatermarkConfig, WatermarkError, WatermarkKeyError, WatermarkStack, build_stack


def watermark_config(settings: Settings) -> WatermarkConfig:
    """The watermark package's configuration from settings; the key file is read here."""
    key = watermark_key(settings)
    audioseal = None
    if "audioseal" in settings.watermark_schemes or "audioseal" in settings.watermark_detect_only:
        generator, generator_sha256 = (
            settings.watermark_audioseal_generator,
            settings.watermark_audioseal_generator_sha256,
        )
        detector, detector_sha256 = settings.watermark_audioseal_detector, settings.watermark_audioseal_detector_sha256
        if not (generator and generator_sha256 and detector and detector_sha256):
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
            raise SettingsError("the audioseal watermark needs " + ", ".join(f"CLONEGATE_{m.upper()}" for m in missing))
        audioseal = AudioSealFiles(
            generator_path=generator,
            generator_sha256=generator_sha256,
            detector_path=detector,
            detector_sha256=detector_sha256,
        )
    return WatermarkConfig(
        schemes=tuple(settings.watermark_schemes),
        key=key,
        dev_mode=settings.is_dev,
        audioseal=audioseal,
        max_false_positive=settings.watermark_max_false_positive,
        detect_only=tuple(settings.watermark_detect_only),
    )


def build_watermark_stack(settings: Settings) -> WatermarkStack:
    """The configured stack, or a SettingsError naming the layer that failed and why."""
    try:
        return build_stack(watermark_config(settings))
    except WatermarkKeyError as exc:  # the key, not the choice of layers, is what to fix
        raise SettingsError(f"{WATERMARK_KEY_SETTING}: {exc}") from exc
    except WatermarkError as exc:
        raise SettingsError(f"CLONEGATE_WATERMARK_SCHEMES: {exc}") from exc
