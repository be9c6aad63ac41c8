"""Phone numbers to E.164 with phonenumbers, and their extension apart.

Accepted: any format phonenumbers reads ("(202) 555-0142", "+44 20 7946 0123", "0049 30 901820" with
a region whose international prefix is 00, "011 44 …" from North America), RFC 3966 ``tel:`` URIs
("tel:+1-202-555-0142;ext=12", "tel:555-0142;phone-context=+1-202"), and an extension written
``ext. 12``, ``ext 12``, ``extension 12``, ``x12``, ``#12`` or ``;ext=12``. The extension is returned
apart: Commerce keeps it in ``Customer.PhoneExt`` and the phone contact's ``ValueExtension``.

A number starting with + (or an international prefix, read by its region) is international whatever
the region hint: the hint only reads national numbers. Nothing is guessed: an invalid number, letters
(vanity numbers such as 1-800-FLOWERS), or a national number without any region are errors.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import phonenumbers

from shared.core.normalise.invalid import Invalid

_MAX_INPUT = 64
MAX_EXTENSION = 10  # ValueExtension / PhoneExt: assumed the size of headquarters' extension EDT
_E164 = phonenumbers.PhoneNumberFormat.E164
# An extension at the end of the value: ";ext=12" (RFC 3966), "ext. 12", "extn 12", "extension: 12",
# "x12", "#12". A character class and fixed alternatives: linear in the input.
_EXTENSION = re.compile(r"(?:;\s*ext\s*=\s*|[\s,;]*(?:ext(?:ension|n)?\.?|x|#)\s*[:.]?\s*)([0-9]+)\s*$", re.IGNORECASE)
_TEL = re.compile(r"tel:", re.IGNORECASE)
_VISUAL = re.compile(r"[\s().\-]")


class Phone(NamedTuple):
    number: str  # E.164
    extension: str | None = None  # digits

    @property
    def text(self) -> str:
        """One string for the pair: E.164, with ";ext=" and the extension when there is one."""
        return f"{self.number};ext={self.extension}" if self.extension else self.number


def _invalid(detail: str = "") -> Invalid:
    return Invalid("invalid_phone", "not a valid phone number" + (f": {detail}" if detail else ""))


def normalise_extension(value: object) -> str:
    """An extension on its own: digits, optionally after a marker ("ext. 12", "x12" -> "12")."""
    if not isinstance(value, str):
        raise Invalid("type", "must be a string")
    text = value.strip()
    match = _EXTENSION.fullmatch(text) or re.fullmatch(r"([0-9]+)", text)
    if match is None:
        raise Invalid("invalid_phone_extension", "must be the extension's digits (e.g. 12 or ext. 12)")
    digits = match.group(1)
    if len(digits) > MAX_EXTENSION:
        raise Invalid("too_long", f"an extension has at most {MAX_EXTENSION} digits")
    return digits


def _from_tel_uri(uri: str) -> tuple[str, str | None, bool]:
    """(number to parse, extension, whether the number is global) of an RFC 3966 tel URI."""
    number, *params = uri.split(";")
    extension = context = None
    for param in params:
        name, _, value = param.partition("=")
        name = name.strip().lower()
        if name == "ext":
            extension = value.strip()
        elif name == "phone-context":
            context = value.strip()
        # isub and extension parameters carry nothing Commerce stores: ignored, as RFC 3966 allows.
    number = number.strip()
    if number.startswith("+"):
        return number, extension, True
    if context and context.startswith("+"):
        # A local number with a global prefix: "tel:555-0142;phone-context=+1-202".
        return "+" + _VISUAL.sub("", context)[1:] + _VISUAL.sub("", number), extension, True
    return number, extension, False  # a local number in a domain context: read it with the hint


def normalise_phone(value: object, region: str | None) -> Phone:
    """``Phone(E.164, extension)``. ``region`` is an ISO 3166-1 alpha-2 hint for national numbers."""
    if not isinstance(value, str):
        raise Invalid("type", "must be a string")
    text = value.strip()
    if len(text) > _MAX_INPUT:
        raise _invalid()
    extension: str | None = None
    if _TEL.match(text):
        text, extension, _ = _from_tel_uri(text[4:])
    match = _EXTENSION.search(text)
    if match is not None and match.start() > 0:
        if extension is not None:
            raise _invalid("two extensions")
        extension, text = match.group(1), text[: match.start()].rstrip()
    if extension is not None and not (extension.isdigit() and extension.isascii()):
        raise Invalid("invalid_phone_extension", "an extension must be digits")
    if extension is not None and len(extension) > MAX_EXTENSION:
        raise Invalid("too_long", f"an extension has at most {MAX_EXTENSION} digits")
    if any(c.isalpha() for c in text):
        raise _invalid("letters are not allowed")
    international = text.startswith("+")
    if not international and not region:
        raise Invalid(
            "phone_region_unknown",
            "a national phone number needs an address country "
            "(or the DEFAULT_COUNTRY setting); send it in international format (+...)",
        )
    try:
        parsed = phonenumbers.parse(text, region.upper() if region and not international else None)
    except phonenumbers.NumberParseException:
        raise _invalid() from None
    if parsed.extension:
        # Another marker phonenumbers knows (a comma, say): still an extension, never two.
        if extension is not None or not parsed.extension.isdigit() or len(parsed.extension) > MAX_EXTENSION:
            raise _invalid()
        extension = parsed.extension
    if not phonenumbers.is_valid_number(parsed):
        raise _invalid()
    return Phone(phonenumbers.format_number(parsed, _E164), extension or None)
