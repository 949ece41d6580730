"""Voices and their consents after enrollment: listing, reading, revocation, usage, erasure."""
