"""ISO 8601 timestamps that carry an offset, returned in UTC."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.core.normalise.invalid import Invalid


def parse_aware(value: object) -> datetime:
    if not isinstance(value, str):
        raise Invalid("type", "must be an ISO 8601 date-time string")
    if len(value) > 64:
        raise Invalid("invalid_datetime", "not an ISO 8601 date-time")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise Invalid("invalid_datetime", "not an ISO 8601 date-time") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise Invalid("missing_offset", "must include a UTC offset (e.g. Z or +02:00)")
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        raise Invalid("invalid_datetime", "not an ISO 8601 date-time") from None
