"""SearchByFields: the request body and the matching rule of the CSU's full-text email search."""

from __future__ import annotations

from typing import Any

from .errors import BAD_REQUEST, MISSING_ARGUMENT, CommerceError

EMAIL_FIELD = 3  # CustomerSearchFieldType.Email; other values are unknown, so refused
MIN_PREFIX_LENGTH = 7  # shorter email terms are not wildcarded by the stored procedure


def _bad(message: str, member: str) -> CommerceError:
    return CommerceError(400, BAD_REQUEST, message, [member])


def search_terms(body: Any) -> list[str]:
    """The lower-cased email terms of a SearchByFields body; anything malformed is a 400."""
    if not isinstance(body, dict) or not isinstance(body.get("CustomerSearchByFieldCriteria"), dict):
        raise CommerceError(400, MISSING_ARGUMENT, "The parameter 'CustomerSearchByFieldCriteria' is required.",
                            ["CustomerSearchByFieldCriteria"])
    criteria = body["CustomerSearchByFieldCriteria"]
    unknown = set(criteria) - {"Criteria", "DataLevelValue"}
    if unknown:
        raise _bad(f"The property '{sorted(unknown)[0]}' does not exist on CustomerSearchByFieldCriteria.",
                   sorted(unknown)[0])
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
        if not isinstance(field, dict) or field.get("Value") != EMAIL_FIELD \
                or field.get("Name", "Email") != "Email" or isinstance(field.get("Value"), bool):
            raise _bad("Only the Email search field (3) is supported.", f"Criteria[{i}].SearchField")
        if not isinstance(term, str) or not term.strip():
            raise _bad("'SearchTerm' must be a non-empty string.", f"Criteria[{i}].SearchTerm")
        terms.append(term.strip().lower())
    return terms


def is_prefix_term(term: str) -> bool:
    """Whether the term is matched as a prefix (long enough) or exactly (short)."""
    return len(term) >= MIN_PREFIX_LENGTH


def matches(term: str, email_lower: str) -> bool:
    return email_lower.startswith(term) if is_prefix_term(term) else email_lower == term
