"""clonegate's keyed watermark scheme."""

from .keys import DEV_KEY, PAYLOAD_BYTES
from .scheme import KeyedScheme

__all__ = ["DEV_KEY", "PAYLOAD_BYTES", "KeyedScheme"]
