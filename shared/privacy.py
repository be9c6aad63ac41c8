"""Pseudonymous references to personal data, for logs, telemetry and stored failure records.

An email is referred to by a keyed HMAC-SHA256 of its match key (the lower-cased, normalised address):
stable across events so operators can search for one customer, useless to anyone without the key.
Phones are masked to their last two digits.
"""

from __future__ import annotations

import hashlib
import hmac


def email_hash(match_key: str, key: bytes) -> str:
    """Hex HMAC-SHA256 of an email's match key. Callers pass the already-normalised match key."""
    return hmac.new(key, match_key.encode("utf-8"), hashlib.sha256).hexdigest()


def mask_phone(phone: str | None) -> str | None:
    if not phone:
        return phone
    digits = [c for c in phone if c.isdigit()]
    return "*" * max(len(digits) - 2, 0) + "".join(digits[-2:])
