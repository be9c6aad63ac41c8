"""Free-text fields (names, address lines): trimmed, dangerous characters refused or stripped,
length-checked.

Text is otherwise kept as sent: no case change and no Unicode normalisation, so characters outside
the Basic Multilingual Plane (𠮷, emoji) and combining sequences round-trip byte for byte. The rules
(docs/event-contract.md, "Free text", gives the reason for each):

- refused: C0 and C1 controls and DEL; lone surrogates (a JSON ``"\\ud800"`` escape decodes to one and
  cannot be encoded as UTF-8 later); the line and paragraph separators U+2028/U+2029 (a line break in
  a one-line field, like ``\\n``); Unicode noncharacters (U+FFFE, U+FFFF, U+FDD0..U+FDEF, ...), which
  are never meant for interchange;
- stripped: the bidirectional embedding, override and isolate controls (U+202A..U+202E,
  U+2066..U+2069). They only reorder how text is displayed, and an override can make a name read as
  something else in a back-office grid; the letters themselves are kept. The plain direction marks
  (LRM, RLM, ALM) stay: they are how right-to-left names are typed;
- trimmed: white space and default-ignorable (invisible) characters at both ends, such as the Hangul
  filler U+3164 or a zero-width space, except a variation selector at the end (the ``U+FE0F`` of an
  emoji). A value with nothing visible left is empty, exactly like one made of spaces.

Format characters inside the text (the zero-width joiner of an emoji sequence, the zero-width
non-joiner of a Persian name) are allowed.
"""

from __future__ import annotations

import regex

from shared.core.normalise.invalid import Invalid

# Every pattern below is a character class or a run of one: matching is linear in the text.
FORBIDDEN = regex.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029\p{Noncharacter_Code_Point}]")
BIDI_CONTROLS = regex.compile(r"[\u202a-\u202e\u2066-\u2069]")
# Runs that trimming removes, matched in C from each end: a variation selector is kept at the end.
_LEADING = regex.compile(r"[\p{White_Space}\p{Default_Ignorable_Code_Point}]++")
_TRAILING = regex.compile(
    r"(?r)[[\p{White_Space}\p{Default_Ignorable_Code_Point}]--\p{Variation_Selector}]++", regex.V1
)


def utf16_length(value: str) -> int:
    """Length as SQL Server's nvarchar counts it: characters outside the BMP take two units."""
    return len(value) + sum(1 for c in value if ord(c) > 0xFFFF)


def trim(value: str) -> str:
    """Without leading and trailing white space and invisible characters."""
    leading, trailing = _LEADING.match(value), _TRAILING.match(value)
    start = leading.end() if leading else 0
    end = trailing.start() if trailing else len(value)
    return value[start:end] if start < end else ""


def clean_text(value: object, max_length: int) -> str | None:
    """Trimmed text, or None when nothing visible is left (callers treat "" like null)."""
    if not isinstance(value, str):
        raise Invalid("type", "must be a string")
    if FORBIDDEN.search(value):
        raise Invalid(
            "control_characters",
            "must not contain control characters, line separators, lone surrogates or noncharacters",
        )
    value = trim(BIDI_CONTROLS.sub("", value))
    if not value:
        return None
    if len(value) > max_length or utf16_length(value) > max_length:
        raise Invalid("too_long", f"must be at most {max_length} characters")
    return value


def printable(value: object, max_length: int) -> str:
    """An identifier: 1..max_length printable characters, no trimming."""
    if not isinstance(value, str):
        raise Invalid("type", "must be a string")
    if not 1 <= len(value) <= max_length:
        raise Invalid("length", f"must be 1 to {max_length} characters")
    if not value.isprintable():
        raise Invalid("not_printable", "must contain printable characters only")
    return value
