"""Calibrations that ship with the gateway, one JSON file per speaker model id.

Only models whose weights ship here can have one (resemblyzer, written by ``bench.blocklist.run``
from its benchmark corpus). Any other model needs ``clonegate blocklist calibrate``; the gateway
refuses to start without a calibration made for the configured model.
"""

from __future__ import annotations

import re
from pathlib import Path

from policy.blocklist.calibration import ScoreCalibration

_FOLDER = Path(__file__).resolve().parent


def calibration_path(model_id: str) -> Path:
    return _FOLDER / f"{re.sub(r'[^A-Za-z0-9._-]', '_', model_id)}.json"


def builtin_calibration(model_id: str) -> ScoreCalibration | None:
    path = calibration_path(model_id)
    if not path.exists():
        return None
    calibration = ScoreCalibration.read(path)
    calibration.require_model(model_id)
    return calibration
