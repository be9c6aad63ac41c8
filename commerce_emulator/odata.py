"""OData URL pieces: the quoted string key of ``Customers('<key>')`` and the ``$top``/``$skip`` options."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, quote, unquote

from .api_errors import BAD_REQUEST, ApiError

_ENTITY = re.compile(r"^/Commerce/Customers\((.*)\)$", re.DOTALL)
_QUOTED = re.compile(r"^'((?:[^']|'')*)'$", re.DOTALL)


def key_literal(key: str) -> str:
    """``O'Brien`` -> ``'O''Brien'`` URL-encoded, as a client must write it. For tests and tools."""
    return quote("'" + key.replace("'", "''") + "'", safe="")


def customer_key(path: str) -> str | None:
    """The account number addressed by a ``/Commerce/Customers(...)`` path, or None for another path.

    ``path`` is the raw (still URL-encoded) path without its query. The key must be a single-quoted OData string
    literal with ``''`` for a quote inside; an unquoted or badly quoted key is a 400, as in OData.
    """
    decoded = unquote(path)
    match = _ENTITY.match(decoded)
    if match is None:
        return None
    literal = _QUOTED.match(match.group(1))
    if literal is None:
        raise ApiError(400, BAD_REQUEST, "The key must be a single-quoted OData string literal.", ["key"])
    return literal.group(1).replace("''", "'")


def query_options(query: str) -> dict[str, str]:
    """Query string -> {name: last value}; names decoded (``%24top`` is ``$top``)."""
    return {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}


def paging(options: dict[str, str], max_top: int, default_top: int = 50) -> tuple[int, int]:
    """(top, skip) from ``$top``/``$skip``: defaults 50 and 0, top capped at ``max_top``; junk is a 400."""

    def number(name: str, default: int) -> int:
        raw = options.get(name)
        if raw is None:
            return default
        if not raw.isdigit():
            raise ApiError(400, BAD_REQUEST, f"The query option '{name}' must be a non-negative integer.", [name])
        return int(raw)

    return min(number("$top", default_top), max_top), number("$skip", 0)
