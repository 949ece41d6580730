"""clonegate gateway: HTTP API, auth, settings, database sessions, CLI."""

from importlib.metadata import version

__version__ = version("clonegate")
