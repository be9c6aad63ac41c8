"""Free-text fields (names, address lines): trimmed, control characters refused, length-checked.

Text is otherwise kept exactly as sent: no case change and no Unicode normalisation, so characters
outside the Basic Multilingual Plane (𠮷, emoji) and combining sequences round-trip byte for byte.
"""

from __future__ import annotations

import re

from shared.normalise.errors import Invalid

# C0 and C1 controls, DEL, and lone surrogates (a JSON "\ud800" escape decodes to one; it cannot be
# encoded as UTF-8 later). Format characters (Cf, e.g. the zero-width joiner inside emoji) are allowed.
_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def utf16_length(value: str) -> int:
    """Length as SQL Server's nvarchar counts it: characters outside the BMP take two units."""
    return len(value) + sum(1 for c in value if ord(c) > 0xFFFF)


def clean_text(value: object, max_length: int) -> str | None:
    """Trimmed text, or None when empty after trimming (callers treat "" like null)."""
    if not isinstance(value, str):
        raise Invalid("type", "must be a string")
    if _FORBIDDEN.search(value):
        raise Invalid("control_characters", "must not contain control characters")
    value = value.strip()
    if not value:
        return None
    if len(value) > max_length or utf16_length(value) > max_length:
        raise Invalid("too_long", f"must be at most {max_length} characters")
    return value


def printable(value: object, max_length: int) -> str:
    """An identifier: 1..max_length printable characters, no trimming."""
    if not isinstance(value, str):
        raise Invalid("type", "must be a string")
    if not 1 <= len(value) <= max_length:
        raise Invalid("length", f"must be 1 to {max_length} characters")
    if not value.isprintable():
        raise Invalid("not_printable", "must contain printable characters only")
    return value
