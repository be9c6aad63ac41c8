"""Email addresses: syntax per email-validator, NFC, IDNA (ASCII) domain, lower-cased match key.

The local part is kept as sent (case included): characters such as ' % / + are valid and must reach
Commerce unchanged. The match key lower-cases the whole address and does no plus- or dot-folding:
two spellings are the same customer only when they differ in case alone.

An email is a customer's identity here (its match key is hashed into the ledger's key), so an address
that merely *looks* like another one must never become a second customer, and an address that cannot
be real must not reach Commerce. These are refused rather than folded, so an address accepted before
keeps its match key and its hash (docs/event-contract.md, "Email", gives the reason for each rule):

- a top-level domain of one character: none exists in the DNS root zone;
- a local part that Unicode compatibility normalisation (NFKC) would change: full-width forms
  (``ａｄａ``, ``＠``), ligatures, circled or superscript letters, the Hangul filler U+3164;
- invisible characters anywhere (default-ignorable code points, bidirectional controls, other format
  characters), since they make two different addresses look the same;
- in a non-ASCII local part, anything but letters, combining marks, digits and the ASCII characters
  RFC 5322 allows (so no emoji, no symbols, no non-ASCII punctuation);
- letters of more than one script in the local part or in a label of the domain (``аda`` with a
  Cyrillic ``а``), except the combinations Unicode's "highly restrictive" profile (UTS #39) allows:
  Latin with Han, Hiragana and Katakana; Latin with Han and Bopomofo; Latin with Han and Hangul.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

import regex
from email_validator import EmailNotValidError, validate_email

from shared.normalise.errors import Invalid
from shared.normalise.text import FORBIDDEN

MAX_EMAIL_LENGTH = 254  # RFC 5321 path limit; below Commerce's 255-character locator column

_INVISIBLE = regex.compile(r"[\p{Default_Ignorable_Code_Point}\p{Bidi_Control}\p{Cf}]")
# Letters, marks and digits of any script, and RFC 5322 atext (ASCII) with the dot.
_LOCAL_CHARACTER = regex.compile(r"[\p{L}\p{M}\p{N}A-Za-z0-9!#$%&'*+/=?^_`{|}~.\-]+")
_COMMON = r"\p{scx=Zyyy}\p{scx=Zinh}"
_COMMON_CHARACTER = regex.compile(rf"[{_COMMON}]")
# UTS #39 "highly restrictive": one script, or one of these combinations (with Common/Inherited).
_JAPANESE = ("Latn", "Hani", "Hira", "Kana")
_CHINESE = ("Latn", "Hani", "Bopo")
_KOREAN = ("Latn", "Hani", "Hang")


class _Scripts:
    """Whether text is written in one script, by Unicode's Script_Extensions property."""

    def __init__(self) -> None:
        # The script names come from the regex module's own Unicode tables, so they follow the
        # Unicode version it ships, like the property tests in the patterns.
        from regex import _regex_core

        ids: dict[int, str] = {}
        for name, value in _regex_core.PROPERTIES["SCRIPT"][1].items():
            ids.setdefault(value, name)
        names = [n for n in ids.values() if n not in ("ZYYY", "COMMON", "ZINH", "INHERITED", "ZZZZ",
                                                       "UNKNOWN", "QAAI", "QAAC")]
        self._letter = {n: regex.compile(rf"\p{{scx={n}}}") for n in names}
        self._only: dict[tuple[str, ...], regex.Pattern[str]] = {}

    def _only_in(self, scripts: tuple[str, ...]) -> regex.Pattern[str]:
        if scripts not in self._only:
            allowed = "".join(rf"\p{{scx={s}}}" for s in scripts)
            self._only[scripts] = regex.compile(rf"[{allowed}{_COMMON}]*")
        return self._only[scripts]

    def single(self, text: str) -> bool:
        """True when every character is Common, Inherited, or of one script (or an allowed mix)."""
        first = next((c for c in text if not _COMMON_CHARACTER.match(c)), None)
        if first is None:
            return True
        for name, pattern in self._letter.items():
            if not pattern.match(first):
                continue
            candidates = [(name,)] + [combo for combo in (_JAPANESE, _CHINESE, _KOREAN)
                                      if any(regex.match(rf"\p{{scx={s}}}", first) for s in combo)]
            if any(self._only_in(c).fullmatch(text) for c in candidates):
                return True
        return False


@lru_cache(maxsize=1)
def _scripts() -> _Scripts:
    return _Scripts()  # built on the first non-ASCII address: ASCII addresses never pay for it


def _refuse(detail: str) -> Invalid:
    return Invalid("invalid_email", f"not a valid email address: {detail}")


def _check_unicode(local: str, domain: str) -> None:
    if _INVISIBLE.search(local) or _INVISIBLE.search(domain):
        raise _refuse("it contains invisible or formatting characters")
    if local.isascii() and domain.isascii():
        return
    if unicodedata.normalize("NFKC", local) != local:
        raise _refuse("the local part has compatibility characters (such as full-width letters); "
                      "send it in their ordinary form")
    if not _LOCAL_CHARACTER.fullmatch(local):
        raise _refuse("the local part may hold letters, digits, marks and . ! # $ % & ' * + / = ? "
                      "^ _ ` { | } ~ - only (no emoji or symbols)")
    scripts = _scripts()
    if not local.isascii() and not scripts.single(local):
        raise _refuse("the local part mixes letters of different scripts")
    if not all(scripts.single(label) for label in domain.split(".") if not label.isascii()):
        raise _refuse("a domain label mixes letters of different scripts")


def normalise_email(value: object) -> tuple[str, str]:
    """Return ``(email, match_key)``. Raises ``Invalid`` with a message that never quotes the value."""
    if not isinstance(value, str):
        raise Invalid("type", "must be a string")
    value = value.strip()
    if not value:
        raise Invalid("required", "must not be empty")
    if len(value) > 4 * MAX_EMAIL_LENGTH or FORBIDDEN.search(value):
        raise Invalid("invalid_email", "not a valid email address")
    value = unicodedata.normalize("NFC", value)
    local, _, domain = value.rpartition("@")
    # Checked on the address as sent: email-validator's IDNA mapping drops a soft hyphen or a
    # zero-width joiner from the domain without a word.
    _check_unicode(local, domain)
    try:
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        raise Invalid("invalid_email", "not a valid email address") from None
    if len(result.local_part) > 64:  # RFC 5321 limit; email-validator does not always apply it
        raise Invalid("invalid_email", "not a valid email address")
    if len(result.ascii_domain.rsplit(".", 1)[-1]) < 2:
        raise _refuse("no top-level domain has a single character")
    email = f"{result.local_part}@{result.ascii_domain}"
    if len(email) > MAX_EMAIL_LENGTH:
        raise Invalid("too_long", f"must be at most {MAX_EMAIL_LENGTH} characters")
    return email, email.lower()
