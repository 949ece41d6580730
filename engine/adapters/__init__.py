"""Adapters for real cloning engines: HTTP servers (GPT-SoVITS, XTTS, Zonos) and in-process
packages (F5-TTS, Chatterbox), each behind the ``CloningEngine`` interface."""
