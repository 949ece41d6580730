"""Stand-in for Chatterbox (resemble-ai/chatterbox 0.1.7, ``src/chatterbox``): see ``tests/engine/packages/README.md``."""
