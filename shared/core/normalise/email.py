"""Email addresses: syntax per email-validator, NFC, IDNA (ASCII) domain, lower-cased match key.

The local part is kept as sent (case included): characters such as ' % / + are valid and must reach
Commerce unchanged. The match key lower-cases the whole address and does no plus- or dot-folding:
two spellings are the same customer only when they differ in case alone.

An email is a customer's identity here (its match key is hashed into the ledger's key), so an address
that merely *looks* like another one must never become a second customer, and an address that cannot
be real must not reach Commerce. These are refused rather than folded, so an address accepted before
keeps its match key and its hash (docs/event-contract.md, "Email", gives the reason for each rule):

- a top-level domain of one character, or with a digit or a hyphen (other than an ``xn--`` name):
  none exists in the DNS root zone;
- a local part longer than 64 octets of UTF-8 (RFC 5321, kept by RFC 6531), or with more than four
  combining marks in a row (no script's spelling stacks that many); a domain of more than 16 labels;
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

from shared.core.normalise.invalid import Invalid
from shared.core.normalise.text import FORBIDDEN

MAX_EMAIL_LENGTH = 254  # RFC 5321 path limit; below Commerce's 255-character locator column

_INVISIBLE = regex.compile(r"[\p{Default_Ignorable_Code_Point}\p{Bidi_Control}\p{Cf}]")
# Letters, marks and digits of any script, and RFC 5322 atext (ASCII) with the dot.
_LOCAL_CHARACTER = regex.compile(r"[\p{L}\p{M}\p{N}A-Za-z0-9!#$%&'*+/=?^_`{|}~.\-]+")
# More combining marks in a row than any script's spelling uses (Vietnamese stacks 2, Thai 3).
_STACKED_MARKS = regex.compile(r"\p{M}{5}")
MAX_LOCAL_OCTETS = 64  # RFC 5321 4.5.3.1.1; RFC 6531 keeps the limit in octets of UTF-8
# DNS allows 127 labels, mail domains in use have a handful, and each label costs email-validator an
# IDNA check of about 10 µs: the cap keeps a hostile batch of 1,000 addresses near 0.1 s of CPU.
MAX_DOMAIN_LABELS = 16
# UTS #39 "highly restrictive": one script, or one of these combinations (with Common/Inherited).
_COMBINATIONS = (("Latn", "Hani", "Hira", "Kana"), ("Latn", "Hani", "Bopo"), ("Latn", "Hani", "Hang"))


@lru_cache(maxsize=1)
def _single_script() -> regex.Pattern[str]:
    """One pattern that matches text written in a single script (or an allowed combination).

    One alternative per script, each a possessive run of that script's characters (by
    Script_Extensions) and Common/Inherited ones, anchored at the end: a failed alternative never
    backtracks into another, so a match costs at most (scripts x length) steps in C, and callers only
    pass a local part of 64 octets or a domain label of 63. Built on the first non-ASCII address
    (about 20 ms): ASCII addresses never pay for it. The script names come from the regex module's own
    Unicode tables, so they follow the Unicode version its property classes use."""
    from regex import _regex_core

    ids: dict[int, str] = {}
    for name, value in _regex_core.PROPERTIES["SCRIPT"][1].items():
        ids.setdefault(value, name)
    common = r"\p{scx=Zyyy}\p{scx=Zinh}"
    scripts = sorted(n for n in ids.values() if n not in ("ZYYY", "COMMON", "ZINH", "INHERITED", "ZZZZ", "UNKNOWN"))
    sets = [(s,) for s in scripts] + list(_COMBINATIONS)
    runs = ["[" + common + "".join(rf"\p{{scx={s}}}" for s in group) + "]++" for group in sets]
    return regex.compile(rf"(?:[{common}]*+|{'|'.join(runs)})\Z")


def _refuse(detail: str) -> Invalid:
    return Invalid("invalid_email", f"not a valid email address: {detail}")


def _check_as_sent(local: str, domain: str) -> None:
    """Rules on the address as sent, each one linear pass: email-validator's IDNA mapping drops a
    soft hyphen or a zero-width joiner from the domain without a word, and folds compatibility forms."""
    if _INVISIBLE.search(local) or _INVISIBLE.search(domain):
        raise _refuse("it contains invisible or formatting characters")
    if domain.count(".") >= MAX_DOMAIN_LABELS:
        raise _refuse(f"a domain has at most {MAX_DOMAIN_LABELS} labels")
    if local.isascii():
        return
    if unicodedata.normalize("NFKC", local) != local:
        raise _refuse(
            "the local part has compatibility characters (such as full-width letters); send it in their ordinary form"
        )
    if not _LOCAL_CHARACTER.fullmatch(local) or _STACKED_MARKS.search(local):
        raise _refuse(
            "the local part may hold letters, digits, marks and . ! # $ % & ' * + / = ? "
            "^ _ ` { | } ~ - only (no emoji or symbols)"
        )


def _check_validated(local: str, domain: str, ascii_domain: str) -> None:
    """Rules on email-validator's result: the Unicode domain, so an xn-- label is judged by what it
    displays as, and lengths already bounded, so the script check stays cheap."""
    if len(local.encode("utf-8")) > MAX_LOCAL_OCTETS:
        raise Invalid("invalid_email", "not a valid email address")
    tld = ascii_domain.rsplit(".", 1)[-1]
    if len(tld) < 2:
        raise _refuse("no top-level domain has a single character")
    if not (tld.isalpha() or tld.startswith("xn--")):
        raise _refuse("a top-level domain is letters only (or an xn-- name)")
    if local.isascii() and domain.isascii():
        return
    single = _single_script()
    if not local.isascii() and not single.match(local):
        raise _refuse("the local part mixes letters of different scripts")
    if not all(single.match(label) for label in domain.split(".") if not label.isascii()):
        raise _refuse("a domain label mixes letters of different scripts")


def normalise_email(value: object) -> tuple[str, str]:
    """Return ``(email, match_key)``. Raises ``Invalid`` with a message that never quotes the value."""
    if not isinstance(value, str):
        raise Invalid("type", "must be a string")
    value = value.strip()
    if not value:
        raise Invalid("required", "must not be empty")
    # The ASCII (punycode) form is never much shorter than the text sent: past twice the limit no
    # address can fit, and every check below stays bounded.
    if len(value) > 2 * MAX_EMAIL_LENGTH or FORBIDDEN.search(value):
        raise Invalid("invalid_email", "not a valid email address")
    value = unicodedata.normalize("NFC", value)
    local, _, domain = value.rpartition("@")
    _check_as_sent(local, domain)
    try:
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        raise Invalid("invalid_email", "not a valid email address") from None
    _check_validated(result.local_part, result.domain, result.ascii_domain)
    email = f"{result.local_part}@{result.ascii_domain}"
    if len(email) > MAX_EMAIL_LENGTH:
        raise Invalid("too_long", f"must be at most {MAX_EMAIL_LENGTH} characters")
    return email, email.lower()
