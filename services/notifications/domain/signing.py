"""Webhook signatures: HMAC-SHA256 over `f"{timestamp}.{body}"`, hex encoded. Pure.

Headers: `X-APL-Timestamp: <unix seconds>`, `X-APL-Signature: sha256=<hex>`. A receiver recomputes
the signature over the raw body, compares in constant time, and refuses timestamps outside a
tolerance window (replay protection). See docs/notifications.md.
"""

from __future__ import annotations

import hashlib
import hmac

TIMESTAMP_HEADER = "X-APL-Timestamp"
SIGNATURE_HEADER = "X-APL-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
DEFAULT_TOLERANCE_SECONDS = 300


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The `X-APL-Signature` header value."""
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify(
    secret: bytes,
    timestamp_header: str,
    signature_header: str,
    body: bytes,
    *,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """True when the signature matches and the timestamp is within `tolerance` of `now`."""
    try:
        timestamp = int(timestamp_header)
    except ValueError:
        return False
    if abs(now - timestamp) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature_header)
