"""How the embedded engine stores a voice's adaptation and conversion in a profile, and reads it back.

``parameters["adaptation_version"]``:

- "2": the adaptation (with ``mapping_strength``), the frame pool and ``conversion`` (the learned
  spectral mapping, or null when the search kept none). F0 is estimated with Harvest.
- "1": profiles stored before parallel conversion existed: the same fields without
  ``mapping_strength`` and ``conversion``. Their F0 statistics were fitted to DIO's estimate of
  the Piper voice, so they keep DIO and synthesise as they always did; re-preparing the voice
  from its references gives it a conversion.

Everything read back is checked (finite, in range, consistent), since a stored profile is data
that may have been altered: anything else raises ``VoiceProfileInvalid``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from engine import world_adapt as wa
from engine.conversion import SpectralMapping
from engine.errors import VoiceProfileInvalid

ADAPTATION_VERSION = "2"
SUPPORTED_ADAPTATION_VERSIONS = ("1", "2")
MAX_MAPPING_STRENGTH = 1.5


@dataclass(frozen=True)
class StoredAdaptation:
    adaptation: wa.Adaptation
    pool: wa.FramePool
    mapping: SpectralMapping | None
    f0_estimator: str


def encode_parameters(adaptation: wa.Adaptation, pool: wa.FramePool, mapping: SpectralMapping | None) -> dict[str, Any]:
    return {
        "adaptation_version": ADAPTATION_VERSION,
        "adaptation": {**asdict(adaptation), "envelope_cepstrum": list(adaptation.envelope_cepstrum)},
        "frame_pool": {"coded": pool.to_text(), "voiced": pool.voiced_text(), "width": int(pool.coded.shape[1])},
        "conversion": mapping.to_json() if mapping is not None else None,
    }


def decode_parameters(params: dict[str, Any]) -> StoredAdaptation:
    try:
        version = params["adaptation_version"]
        if version not in SUPPORTED_ADAPTATION_VERSIONS:
            raise VoiceProfileInvalid(f"adaptation version {version!r} is not supported")
        adaptation = _adaptation(dict(params["adaptation"]), version=version)
        pool_data = params["frame_pool"]
        pool = wa.FramePool.from_text(pool_data["coded"], pool_data["voiced"], width=int(pool_data["width"]))
        conversion = params.get("conversion") if version == "2" else None
        if conversion is not None and not isinstance(conversion, dict):
            raise VoiceProfileInvalid("voice profile conversion must be an object")
        if conversion is None and adaptation.mapping_strength > 0:
            raise VoiceProfileInvalid("adaptation uses a conversion the profile does not hold")
        mapping = SpectralMapping.from_json(conversion) if conversion is not None else None
    except VoiceProfileInvalid:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise VoiceProfileInvalid(f"voice profile parameters are malformed: {exc}") from exc
    return StoredAdaptation(
        adaptation=adaptation, pool=pool, mapping=mapping, f0_estimator="dio" if version == "1" else "harvest"
    )


def _adaptation(raw: dict[str, Any], *, version: str) -> wa.Adaptation:
    raw["envelope_cepstrum"] = tuple(float(c) for c in raw["envelope_cepstrum"])
    # Version 1 has no mapping strength: the dataclass default (0, no conversion) applies.
    fields = [key for key in wa.Adaptation.__dataclass_fields__ if version != "1" or key != "mapping_strength"]
    adaptation = wa.Adaptation(**{key: raw[key] for key in fields})
    numbers = [v for k, v in asdict(adaptation).items() if k != "envelope_cepstrum"]
    if not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)
        for v in numbers + list(adaptation.envelope_cepstrum)
    ):
        raise VoiceProfileInvalid("adaptation parameters must be finite numbers")
    if (
        not 0.7 <= adaptation.warp <= 1.4
        or not 0.0 <= adaptation.frame_mix <= 1.0
        or not 0.0 <= adaptation.mapping_strength <= MAX_MAPPING_STRENGTH
        or adaptation.source_lf0_std <= 0
        or adaptation.target_lf0_std <= 0
    ):
        raise VoiceProfileInvalid("adaptation parameters are out of range")
    return adaptation
