"""Currency (ISO 4217) and language (BCP 47) codes."""

from __future__ import annotations

from functools import lru_cache

import langcodes
import pycountry

from shared.core.normalise.invalid import Invalid

CURRENCIES: frozenset[str] = frozenset(c.alpha_3 for c in pycountry.currencies)
MAX_LANGUAGE = 7  # LanguageId in headquarters (e.g. "en-us", "zh-hans")


def normalise_currency(value: object) -> str:
    if not isinstance(value, str):
        raise Invalid("type", "must be a string")
    code = value.strip().upper()
    if code not in CURRENCIES:
        raise Invalid("invalid_currency", "not an ISO 4217 currency code")
    return code


@lru_cache(maxsize=4096)
def _language(tag: str) -> str | None:
    try:
        standard = langcodes.standardize_tag(tag)
    except (ValueError, LookupError):
        return None
    if not langcodes.tag_is_valid(standard):
        return None
    return standard.lower()


def normalise_language(value: object) -> str:
    """A valid BCP 47 tag in the lower-case form Commerce uses: "en-US" -> "en-us"."""
    if not isinstance(value, str):
        raise Invalid("type", "must be a string")
    tag = value.strip().replace("_", "-")
    if not tag or len(tag) > 35 or not all(c.isascii() and (c.isalnum() or c == "-") for c in tag):
        raise Invalid("invalid_language", "not a BCP 47 language tag")
    result = _language(tag.lower())
    if result is None:
        raise Invalid("invalid_language", "not a BCP 47 language tag")
    if len(result) > MAX_LANGUAGE:
        raise Invalid("too_long", f"must be at most {MAX_LANGUAGE} characters once normalised")
    return result
