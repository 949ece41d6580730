"""Rate limits and quotas per tenant, per token subject and per anonymous address, shared by every
replica through the database, with refusals recorded as one audit event per limit and window."""
