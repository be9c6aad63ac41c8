"""A request body read as JSON, within the limits every route shares, and the events it holds.

Pure, and about JSON only: the canonical route (``shared.usecases.ingest.read_batch``, which adds what
HTTP decides: the media type, the size limits and the status to answer) and the webhook adapters
(``shared.core.sources``) read their bodies with it.
"""

from __future__ import annotations

import json
from typing import NoReturn

MAX_DEPTH = 32


class BodyError(ValueError):
    """A body that is not JSON, or not one event, an array of events or ``{"events": [...]}``:
    ``code`` names it for a webhook's dead letter, ``detail`` for the canonical route's 400."""

    def __init__(self, code: str, detail: str):
        super().__init__(detail)
        self.code = code
        self.detail = detail


def too_deep(data: dict[str, object] | list[object], limit: int) -> bool:
    """Nesting depth of parsed JSON, walked with an explicit stack: linear in the number of values.

    Measured on the parsed value rather than scanned in the text: a scan must tell strings from
    brackets, and a regular expression doing that backtracks quadratically on a body of escaped
    quotes. The parser itself is linear and bounds depth by the interpreter's recursion limit."""
    stack: list[tuple[dict[str, object] | list[object], int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        for child in value.values() if isinstance(value, dict) else value:
            if isinstance(child, (dict, list)):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def parse_json_body(body: bytes) -> object:
    """A request body as JSON: UTF-8 (a BOM tolerated), no NaN or Infinity. Linear in the body: the
    parser's recursion limit bounds the depth it will follow."""
    try:
        text = body.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        raise BodyError("not_utf8", "the body is not valid UTF-8") from None
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise BodyError("too_deep", f"JSON nesting deeper than {MAX_DEPTH} levels") from None
    except ValueError:  # also integers of more than sys.get_int_max_str_digits() digits
        raise BodyError("not_json", "the body is not valid JSON") from None


def batch_events(data: object) -> list[object]:
    """The events of a parsed body: one event object, an array, or exactly ``{"events": [...]}``
    (the canonical route's body, and a Standard Webhooks sender's)."""
    if isinstance(data, dict) and "events" in data:
        if set(data) != {"events"} or not isinstance(data["events"], list):
            raise BodyError("wrong_batch_shape", 'a batch object must be exactly {"events": [...]}')
        events: list[object] = data["events"]
    elif isinstance(data, list):
        events = data
    elif isinstance(data, dict):
        events = [data]
    else:
        raise BodyError("not_an_event", 'send an event object, an array of events or {"events": [...]}')
    if not events:
        raise BodyError("empty_batch", "the batch is empty")
    return events
