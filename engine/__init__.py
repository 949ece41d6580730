"""Cloning engines behind one interface, and the bounded executor that runs them.

Imports nothing of clonegate's other packages: engines see text, language, reference audio and
a stored voice profile, never tokens, consent or the database.
"""

from engine.errors import (
    ControlOutOfRange,
    ControlUnsupported,
    EngineBusy,
    EngineCancelled,
    EngineError,
    EngineInputInvalid,
    EngineNotReady,
    EngineOutputInvalid,
    EngineRequestFailed,
    EngineTimeout,
    EngineUnavailable,
    LanguageUnsupported,
    ReferenceInvalid,
    TextEmpty,
    TextTooLong,
    VoiceProfileInvalid,
)
from engine.executor import BoundedExecutor, EngineSlot
from engine.interface import (
    CancelToken,
    CloningEngine,
    EngineAudio,
    EngineDescription,
    ReferenceClip,
    SpeakerSimilarity,
    SynthesisControls,
    VoiceProfile,
)

__all__ = [
    "BoundedExecutor",
    "CancelToken",
    "CloningEngine",
    "ControlOutOfRange",
    "ControlUnsupported",
    "EngineAudio",
    "EngineBusy",
    "EngineCancelled",
    "EngineDescription",
    "EngineError",
    "EngineInputInvalid",
    "EngineNotReady",
    "EngineOutputInvalid",
    "EngineRequestFailed",
    "EngineSlot",
    "EngineTimeout",
    "EngineUnavailable",
    "LanguageUnsupported",
    "ReferenceClip",
    "ReferenceInvalid",
    "SpeakerSimilarity",
    "SynthesisControls",
    "TextEmpty",
    "TextTooLong",
    "VoiceProfile",
    "VoiceProfileInvalid",
]
