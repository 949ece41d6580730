"""Every storing domain's MetaData: what migrations must create, and what tests compare."""

from __future__ import annotations

from sqlalchemy import MetaData

import policy.consent.models  # noqa: F401  (registers the consent tables on the policy metadata)
from audit.models import metadata as audit_metadata
from gateway.rate_limits.models import metadata as rate_limit_metadata
from gateway.replicas.models import metadata as replicas_metadata
from policy.blocklist.models import metadata as policy_metadata

# Add a domain's MetaData here when it gets tables.
target_metadata: list[MetaData] = [audit_metadata, policy_metadata, replicas_metadata, rate_limit_metadata]
