"""Stand-in for F5-TTS (SWivid/F5-TTS 1.1.20, ``src/f5_tts``): see ``tests/engine/packages/README.md``."""
