"""The audit log over HTTP (auditor or admin) and its start-up: signing key, integrity check, integrator."""
