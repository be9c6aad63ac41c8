"""What every source adapter works with: the request as received, and what it translates it into.

An adapter (``shared.core.sources.shopify`` and its siblings, or a declarative mapping file) does three
things, in this order, and nothing else:

1. ``verify``: check the signature over the raw bytes (``shared.core.sources.signatures``), before parsing.
2. ``delivery_key``: the sender's idempotency key for the delivery, stable across its retries.
3. ``translate``: the parsed body as canonical events (the contract of docs/event-contract.md, as
   ``dict``s not yet validated), each with the sender's own customer id when it has one; or the reason
   the delivery is acknowledged and ignored; or erasure requests.

Validation, the identity map, queueing and the answer are the same for every source
(``shared.usecases.webhooks``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from shared.core.json_body import BodyError, parse_json_body
from shared.core.sources.config import SourceOptions
from shared.core.sources.signatures import Headers, Verified

MAX_EVENT_ID = 128


@dataclass(frozen=True)
class WebhookRequest:
    source: str
    method: str
    url: str  # the URL the worker saw (scheme, host, path and query)
    headers: Headers
    body: bytes


@dataclass
class CanonicalEvent:
    """One customer event in the contract's shape, before validation."""

    # A JSON object, except from a sender whose body is the contract itself (Standard Webhooks): any
    # JSON value it sent, which validation then refuses unless it is an object.
    raw: object
    sender_id: str | None = None  # the sender's own id of the customer, when it has one
    topic: str | None = None


@dataclass(frozen=True)
class Erasure:
    """A sender's request to erase a customer's data (Shopify ``customers/redact``)."""

    sender_id: str | None
    email: str | None
    topic: str


@dataclass
class Translation:
    events: list[CanonicalEvent] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # topics acknowledged and not applied
    erasures: list[Erasure] = field(default_factory=list)
    topic: str | None = None


class Unreadable(Exception):
    """An authentic body that is not what the sender documents (not JSON, wrong shape): acknowledged,
    and kept as a dead letter for operators (never a 4xx to a webhook sender)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Adapter(Protocol):
    name: str
    scheme: str  # the signature scheme, for docs and the OpenAPI description

    def verify(
        self,
        request: WebhookRequest,
        secrets: Sequence[str],
        now: datetime,
        options: SourceOptions,
        public_base_url: str,
    ) -> Verified: ...

    def delivery_key(self, request: WebhookRequest, verified: Verified, body: Any) -> str: ...

    def translate(self, request: WebhookRequest, verified: Verified, body: Any) -> Translation: ...


# --- helpers the adapters share ------------------------------------------------------------------


def parse_json(body: bytes) -> Any:
    """The body as JSON (the canonical route's own reading), or ``Unreadable``."""
    try:
        return parse_json_body(body)
    except BodyError as wrong:
        raise Unreadable(wrong.code) from None


def digest(*parts: str | bytes) -> str:
    """A short stable id from the given parts (for senders whose deliveries carry no id)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else part.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:40]


def event_id(source: str, value: object) -> str | None:
    """``<source>:<the sender's id>``: unique across sources, the same for every delivery of one event."""
    if value is None or isinstance(value, (dict, list, bool)):
        return None
    text = str(value).strip()
    if not text:
        return None
    candidate = f"{source}:{text}"
    if len(candidate) > MAX_EVENT_ID or not candidate.isprintable():
        return f"{source}:{digest(text)}"
    return candidate


def dig(value: Any, *path: str | int) -> Any:
    """``value[path[0]][path[1]]...``, or None when any step is missing."""
    for step in path:
        if isinstance(value, dict) and isinstance(step, str):
            value = value.get(step)
        elif isinstance(value, list) and isinstance(step, int) and -len(value) <= step < len(value):
            value = value[step]
        else:
            return None
    return value


def as_object(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty one (a part the sender left out or mistyped)."""
    return value if isinstance(value, dict) else {}


def text_or_none(value: Any) -> str | None:
    """A non-empty string, or None (senders use "", null and absent alike for "no value")."""
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def epoch_to_iso(value: Any) -> str | None:
    """An ISO 8601 UTC time from epoch seconds or milliseconds (number or digits), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, (int, float)):
        return None
    seconds = value / 1000 if value > 10_000_000_000 else value
    try:
        return datetime.fromtimestamp(seconds, tz=UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return None


def put(target: dict[str, Any], key: str, value: Any) -> None:
    """Set ``key`` only when there is a value (absent means unchanged in the contract)."""
    if value is not None:
        target[key] = value
