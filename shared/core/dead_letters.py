"""A dead letter: an event that could not be applied, with its reason, as operators see it.

The record and its masked views are pure; ``shared.adapters.dead_letter_table`` stores them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.core.privacy import mask_free_text, sensitive_values_from_envelope

UNKNOWN_PARTITION = "unknown"  # messages too broken to tell whose they are


@dataclass(frozen=True)
class DeadLetter:
    email_hash: str
    event_id: str
    reason: str
    message: str
    error_resource_id: str | None
    status: int | None
    attempts: int
    first_seen_at: datetime | None
    dead_lettered_at: datetime | None  # None only when read from a row without the column
    envelope: str  # the queue message body (JSON text), as received
    etag: str | None = field(default=None, compare=False)  # as read; guards delete against a newer write

    @property
    def key(self) -> tuple[str, str]:
        return self.email_hash, self.event_id


def safe_message(letter: DeadLetter) -> str:
    """The dead letter's message masked of personal data: the generic patterns and every value its own
    event carries (the message may quote what Commerce was sent). Applied when the letter is stored and
    again when it is shown, so letters stored by older versions are masked too."""
    return mask_free_text(letter.message or "", sensitive_values_from_envelope(letter.envelope))


def describe(letter: DeadLetter) -> dict[str, Any]:
    """A JSON-friendly view for the replay command's listing (no envelope: it holds personal data)."""
    return {
        "emailHash": letter.email_hash,
        "eventId": letter.event_id,
        "reason": letter.reason,
        "errorResourceId": letter.error_resource_id,
        "status": letter.status,
        "message": safe_message(letter),
        "attempts": letter.attempts,
        "deadLetteredAt": letter.dead_lettered_at.isoformat() if letter.dead_lettered_at else None,
    }
