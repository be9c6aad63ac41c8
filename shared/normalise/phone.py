"""Phone numbers to E.164 with phonenumbers.

A number starting with + (or 00 read by its region) is international whatever the region hint: the
hint only reads national numbers. Nothing is guessed: an invalid number, letters (vanity numbers),
an extension, or a national number without any region are errors.
"""

from __future__ import annotations

import phonenumbers

from shared.normalise.errors import Invalid

_MAX_INPUT = 40
_E164 = phonenumbers.PhoneNumberFormat.E164


def normalise_phone(value: object, region: str | None) -> str:
    """E.164 string. ``region`` is an ISO 3166-1 alpha-2 hint for national numbers, or None."""
    if not isinstance(value, str):
        raise Invalid("type", "must be a string")
    value = value.strip()
    if len(value) > _MAX_INPUT:
        raise Invalid("invalid_phone", "not a valid phone number")
    if any(c.isalpha() for c in value):
        raise Invalid("invalid_phone", "not a valid phone number: letters are not allowed")
    international = value.startswith("+")
    if not international and not region:
        raise Invalid("phone_region_unknown", "a national phone number needs an address country "
                      "(or the DEFAULT_COUNTRY setting); send it in international format (+...)")
    try:
        parsed = phonenumbers.parse(value, None if international else region.upper())
    except phonenumbers.NumberParseException:
        raise Invalid("invalid_phone", "not a valid phone number") from None
    if parsed.extension:
        raise Invalid("invalid_phone", "phone extensions are not supported")
    if not phonenumbers.is_valid_number(parsed):
        raise Invalid("invalid_phone", "not a valid phone number")
    return phonenumbers.format_number(parsed, _E164)
