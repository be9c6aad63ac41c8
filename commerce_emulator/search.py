"""SearchByFields: the request body and the matching rule of the CSU's full-text email search.

The CSU's stored procedure runs a SQL Server full-text ``CONTAINS`` with the email term wildcarded (when it has
seven or more characters). Full-text search breaks the term and the stored email into words (``@``, ``.``, ``-``
and other punctuation separate them) and, for a wildcarded phrase, treats *each* word as a prefix of a
consecutive word of the email. So ``ann@x.com`` (``ann* x* com*``) finds ``ann@x.com.au``, ``ann@x.community``
and also ``anna@x.com`` (docs/commerce-api.md, "Search: SearchByFields"), which a string-prefix rule misses. That is the
default (``search_match: "word_prefix"``); ``"email_prefix"`` (the whole address as one string prefix) is a
config switch, because how the real word breaker splits an address is not documented.
"""

from __future__ import annotations

import re
from typing import Any

from .api_errors import BAD_REQUEST, MISSING_ARGUMENT, ApiError

EMAIL_FIELD = 3  # CustomerSearchFieldType.Email; other values are unknown, so refused
MIN_PREFIX_LENGTH = 7  # shorter email terms are not wildcarded by the stored procedure
MATCH_MODES = ("word_prefix", "email_prefix")

_WORD_SEPARATORS = re.compile(r"\W+")


def _bad(message: str, member: str) -> ApiError:
    return ApiError(400, BAD_REQUEST, message, [member])


def search_terms(body: Any) -> list[str]:
    """The lower-cased email terms of a SearchByFields body; anything malformed is a 400."""
    if not isinstance(body, dict) or not isinstance(body.get("CustomerSearchByFieldCriteria"), dict):
        raise ApiError(
            400,
            MISSING_ARGUMENT,
            "The parameter 'CustomerSearchByFieldCriteria' is required.",
            ["CustomerSearchByFieldCriteria"],
        )
    criteria = body["CustomerSearchByFieldCriteria"]
    unknown = set(criteria) - {"Criteria", "DataLevelValue"}
    if unknown:
        raise _bad(
            f"The property '{sorted(unknown)[0]}' does not exist on CustomerSearchByFieldCriteria.", sorted(unknown)[0]
        )
    level = criteria.get("DataLevelValue", 1)
    if not isinstance(level, int) or isinstance(level, bool) or not 0 <= level <= 4:
        raise _bad("'DataLevelValue' must be a CommerceEntityDataLevel (0..4).", "DataLevelValue")
    items = criteria.get("Criteria")
    if not isinstance(items, list) or not items:
        raise _bad("'Criteria' must be a non-empty list.", "Criteria")
    terms = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or set(item) - {"SearchTerm", "SearchField"}:
            raise _bad("A criterion is {\"SearchTerm\": ..., \"SearchField\": ...}.", f"Criteria[{i}]")
        field, term = item.get("SearchField"), item.get("SearchTerm")
        if (
            not isinstance(field, dict)
            or field.get("Value") != EMAIL_FIELD
            or field.get("Name", "Email") != "Email"
            or isinstance(field.get("Value"), bool)
        ):
            raise _bad("Only the Email search field (3) is supported.", f"Criteria[{i}].SearchField")
        if not isinstance(term, str) or not term.strip():
            raise _bad("'SearchTerm' must be a non-empty string.", f"Criteria[{i}].SearchTerm")
        terms.append(term.strip().lower())
    return terms


def is_prefix_term(term: str) -> bool:
    """Whether the term is matched as a prefix (long enough) or exactly (short)."""
    return len(term) >= MIN_PREFIX_LENGTH


def words(text: str) -> tuple[str, ...]:
    """The full-text words of a lower-cased text: runs of letters, digits and ``_``."""
    return tuple(w for w in _WORD_SEPARATORS.split(text) if w)


def word_matches(term_words: tuple[str, ...], prefix: bool, email_words: tuple[str, ...], start: int) -> bool:
    """Whether the term's words match the email's words from ``start`` on (each a prefix, or exactly)."""
    if start < 0 or start + len(term_words) > len(email_words):
        return False
    if prefix:
        return all(email_words[start + i].startswith(w) for i, w in enumerate(term_words))
    return all(email_words[start + i] == w for i, w in enumerate(term_words))


def matches(term: str, email_lower: str, mode: str = "word_prefix") -> bool:
    """The matching rule for one lower-cased term and one lower-cased stored email."""
    prefix = is_prefix_term(term)
    if mode == "email_prefix":
        return email_lower.startswith(term) if prefix else email_lower == term
    term_words, email_words = words(term), words(email_lower)
    return bool(term_words) and any(
        word_matches(term_words, prefix, email_words, start) for start in range(len(email_words) - len(term_words) + 1)
    )
