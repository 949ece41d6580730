"""The OpenAI-compatible speech API (`/v1/audio/speech`, `/v1/audio/voices`, `/v1/models`), over
the same synthesis service as `POST /v1/synthesize`."""
