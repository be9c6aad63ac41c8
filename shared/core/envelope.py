"""The queue message: one normalised event plus what the pipeline needs to know about its journey.

Messages are JSON text; the storage SDK (ingest) and the queue trigger both base64 it on the wire.
A message must stay well under the queue's 64 KB limit after base64 (+33%): ``MAX_MESSAGE_BYTES``.
"""

from __future__ import annotations

import json
import re
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.core.contract import NormalisedEvent
from shared.core.failures import MessageFormatError

ENVELOPE_VERSION = 1
# Base64 turns 3 bytes into 4; 48,000 UTF-8 bytes become 64,000 characters, under the 65,536 limit.
MAX_MESSAGE_BYTES = 48_000


class Envelope(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    v: int = ENVELOPE_VERSION
    event: NormalisedEvent
    ingested_at: datetime = Field(alias="ingestedAt")
    correlation_id: str = Field(alias="correlationId")
    replayed: bool = False
    # Set when the processor sends the event again itself (a retry or a deferral): the attempt that
    # comes next, and why the previous one did not finish. Older messages lack them: defaults.
    attempt: int = Field(default=1, ge=1)
    last_reason: str | None = Field(default=None, alias="lastReason")
    # A replay with --force: apply even if the ledger says duplicate or stale.
    force: bool = False

    @classmethod
    def wrap(
        cls,
        event: NormalisedEvent,
        *,
        ingested_at: datetime,
        correlation_id: str,
        replayed: bool = False,
        force: bool = False,
    ) -> Envelope:
        return cls(event=event, ingestedAt=ingested_at, correlationId=correlation_id, replayed=replayed, force=force)

    def next_attempt(self, reason: str, *, counts: bool = True) -> Envelope:
        """The same event, to be tried again. A deferral (``counts=False``) keeps the attempt number."""
        return self.model_copy(update={"attempt": self.attempt + (1 if counts else 0), "last_reason": reason})

    def to_json(self) -> str:
        # The event's own serialiser keeps "absent" and "null" apart (its ``present`` list).
        event_json = self.event.to_message()
        return json.dumps(
            {
                "v": self.v,
                "ingestedAt": self.ingested_at.isoformat(),
                "correlationId": self.correlation_id,
                "replayed": self.replayed,
                "attempt": self.attempt,
                "lastReason": self.last_reason,
                "force": self.force,
                "event": event_json,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Envelope:
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("v") != ENVELOPE_VERSION:
                raise MessageFormatError(f"not a version {ENVELOPE_VERSION} event envelope")
            return cls.model_validate(data)
        except MessageFormatError:
            raise
        except (ValueError, ValidationError) as error:
            # pydantic messages can quote input values: keep only the locations
            where = ""
            if isinstance(error, ValidationError):
                where = ", ".join(".".join(str(p) for p in e["loc"]) for e in error.errors()[:5])
            raise MessageFormatError(f"unreadable event envelope ({type(error).__name__} {where})") from None


_HASH = re.compile(r"^[0-9a-f]{64}$")
_MAX_EVENT_ID = 128  # as validation accepts (shared.core.validation.MAX_EVENT_ID)


def peek_identity(text: str | bytes) -> tuple[str | None, str | None]:
    """Best-effort (event id, email hash) of a message that may not parse, for dead-letter keys.
    Only values of the shape ingest writes are trusted: anything else could be an unusable table key,
    and the message would then be stranded."""
    try:
        data = json.loads(text)
        event = data.get("event", {}) if isinstance(data, dict) else {}
        event_id = event.get("eventId") if isinstance(event, dict) else None
        email_hash = event.get("emailHash") if isinstance(event, dict) else None
    except (ValueError, AttributeError, RecursionError):
        return None, None
    # Printable, as validation requires of an id: a lone surrogate (\ud800 escaped in the JSON) or a
    # format character would pass a control-character check, and a lone surrogate cannot be encoded.
    usable = isinstance(event_id, str) and 1 <= len(event_id) <= _MAX_EVENT_ID and event_id.isprintable()
    return (
        event_id if usable else None,
        email_hash if isinstance(email_hash, str) and _HASH.match(email_hash) else None,
    )
