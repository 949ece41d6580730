"""Tamper-evident audit log: events, RFC 6962 Merkle log, signed checkpoints, proofs, export.

Imports nothing of ours. The gateway hands in SQLAlchemy sessions and decides when to commit.
"""
