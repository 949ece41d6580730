"""Every storing domain's MetaData: what migrations must create, and what tests compare."""

from __future__ import annotations

from sqlalchemy import MetaData

# Add a domain's MetaData here when it gets tables.
target_metadata: list[MetaData] = []
