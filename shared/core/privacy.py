"""Pseudonymous references to personal data, and the one masker of free text, for logs, telemetry and
stored failure records.

An email is referred to by a keyed HMAC-SHA256 of its match key (the lower-cased, normalised address):
stable across events so operators can search for one customer, useless to anyone without the key.
Phones are masked to their last two digits.

Free text that may quote personal data (Commerce's error messages echo what they were sent) goes
through ``mask_free_text`` before it is logged or stored. It masks:
- generic patterns: email addresses, digit runs of seven or more (phones), JWTs and long opaque tokens;
- the values we know we sent (``sensitive_values`` of the event: emails, names, phone, address lines,
  city, postal code), case-insensitively, as whole words; a prefix of one where the text was cut at
  its end (three characters or more), and a quoted prefix anywhere (``Truncated value: 'Christop'.``,
  as SQL Server's error 2628 writes it; four characters or more, between a pair of quotes);
- given secrets, exactly.
Matching runs on a decoded view of the text: percent-encoding (also double: ``%2540``), JSON / JS
escapes (``\\u0040``, ``\\\\u0040``, ``\\x40``), HTML entities (``&#64;``, ``&commat;``) are decoded,
up to four layers deep, and the view is lower-cased; each match is mapped back to the span of the
original text it came from, and that span is replaced. A character outside the BMP escaped one UTF-16
unit at a time (``\\ud842\\udfb7``, as .NET's System.Text.Json writes every non-ASCII character;
``%uD842%uDFB7``; ``&#55362;&#57271;``; CESU-8 bytes) is one character, its span both escapes. Every
step is linear in the text's length (no regex here can backtrack over more than a bounded window).

Decisions on the forms a value can take (what is masked, what is knowingly not):
- Each value is also matched in NFC and NFD (a decomposed ``Zoe`` + U+0308 is still one word), fully
  case-folded (``Straße`` quoted as ``STRASSE``) and with its quotes doubled (SQL / OData literals,
  ``'O''Brien'``). The view folds the Turkish ``İ`` and ``ı`` to ``i``, as the value is, so ``IŞIK``
  matches ``Işık`` whichever casing rules wrote it.
- Two-letter words of a multi-word name (``Jo`` of ``Jo Ann``, ``Le`` of ``Le Roux``) are not masked on
  their own: they are ordinary words (``do``, ``in``, ``le``) and would mask every message; the whole
  value, its words of three letters or more and a two-letter name given alone are masked.
- The generic email pattern takes every RFC 5322 atext character into the local part (``a/b@``,
  ``{ab}@``, ``a=b@``) and a quoted local part (``"john smith"@``). A key or path glued to an address
  without a space (``?email=ada@``, ``/customers/ada@``) cannot be told from it and is masked with it:
  over-masking, not a leak; only a leading quote or separator, and an OData key (``Email='``), are kept.
- Not decoded: quoted-printable (``=C3=AB`` is also how ``key=AB`` reads, and Commerce speaks JSON,
  not MIME), base64 (no marker tells it from an identifier; runs of 40 or more with digits are masked
  as opaque tokens), human obfuscation (``ada(at)example.com``, ``[at]``, a full-width ``＠``: written by
  people, not by the systems that echo us; the local part of an email we sent is still masked as a
  value), ES6 ``\\u{...}``, CSS and octal escapes, zero-padded entities, more than four layers, and
  accents or spaces a server would have to change (``Zoe`` for ``Zoë``, a no-break space).
"""

from __future__ import annotations

import bisect
import hashlib
import hmac
import html
import json
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any


def email_hash(match_key: str, key: bytes) -> str:
    """Hex HMAC-SHA256 of an email's match key. Callers pass the already-normalised match key."""
    return hmac.new(key, match_key.encode("utf-8"), hashlib.sha256).hexdigest()


def mask_phone(phone: str | None) -> str | None:
    if not phone:
        return phone
    digits = [c for c in phone if c.isdigit()]
    return "*" * max(len(digits) - 2, 0) + "".join(digits[-2:])


# --- what we know we sent --------------------------------------------------------------------------
EMAIL, NAME, PHONE, ADDRESS, DIGITS, REDACTED = "<email>", "<name>", "<phone>", "<address>", "<digits>", "<redacted>"

# (attribute of NormalisedEvent, its name in the queue message's JSON, label)
_EVENT_FIELDS = (
    ("email", "email", EMAIL),
    ("email_match_key", "emailMatchKey", EMAIL),
    ("previous_email", "previousEmail", EMAIL),
    ("previous_email_match_key", "previousEmailMatchKey", EMAIL),
    ("first_name", "firstName", NAME),
    ("middle_name", "middleName", NAME),
    ("last_name", "lastName", NAME),
    ("phone", "phone", PHONE),
)
_ADDRESS_FIELDS = (
    ("name", "name", NAME),
    ("street", "street", ADDRESS),
    ("street_number", "streetNumber", ADDRESS),
    ("city", "city", ADDRESS),
    ("county", "county", ADDRESS),
    ("postal_code", "postalCode", ADDRESS),
)
_WORD_SPLIT = re.compile(r"[\s\-]+")
_NON_DIGIT = re.compile(r"\D")


def _variants(value: str) -> Iterator[str]:
    """The lower-cased forms a value can be quoted back in, besides its encodings: composed and decomposed
    (NFC, NFD), fully case-folded (``Straße`` written ``STRASSE``), SQL / OData quotes doubled
    (``O''Brien``) and form-encoded spaces (``Mary+Ann``, once decoded)."""
    forms = dict.fromkeys(
        _lower(f) for f in (value, unicodedata.normalize("NFC", value), unicodedata.normalize("NFD", value))
    )
    forms.update(dict.fromkeys(_lower(f.casefold()) for f in list(forms)))
    for form in forms:
        yield form
        if "'" in form:
            yield form.replace("'", "''")
        if " " in form:
            yield form.replace(" ", "+")


@dataclass(frozen=True)
class Sensitive:
    """Values to mask wherever they appear: ``texts`` (lower-cased value, label) and ``phones`` (the
    digits of each phone number, without leading zeros)."""

    texts: tuple[tuple[str, str], ...] = ()
    phones: tuple[str, ...] = ()

    def __add__(self, other: Sensitive) -> Sensitive:
        return Sensitive(
            tuple(dict.fromkeys(self.texts + other.texts)), tuple(dict.fromkeys(self.phones + other.phones))
        )

    def __bool__(self) -> bool:
        return bool(self.texts or self.phones)


NOTHING = Sensitive()


def sensitive(values: Iterable[tuple[str, str | None]]) -> Sensitive:
    """``Sensitive`` from (label, value) pairs; the label is one of EMAIL, NAME, PHONE, ADDRESS."""
    texts: dict[tuple[str, str], None] = {}
    phones: dict[str, None] = {}

    def add(value: str, label: str) -> None:
        value = value.strip()
        if len(value) < 2 or (value.isdigit() and len(value) < 4):
            return  # too short to tell from ordinary text
        for form in _variants(value):
            texts[(form, label)] = None

    for label, value in values:
        if not isinstance(value, str) or not value.strip():
            continue
        for line in value.splitlines() or [value]:
            add(line, label)
        if label == EMAIL and "@" in value:
            local, _, domain = value.rpartition("@")
            if len(local) >= 3:
                add(local, label)
            try:
                ascii_domain = domain.encode("idna").decode("ascii") if not domain.isascii() else None
            except UnicodeError:
                ascii_domain = None
            if ascii_domain:
                add(f"{local}@{ascii_domain}", label)
        elif label == NAME:
            for word in _WORD_SPLIT.split(value):
                if len(word) >= 3:
                    add(word, label)
        elif label == PHONE:
            digits = _NON_DIGIT.sub("", value).lstrip("0")
            if len(digits) >= 6:
                phones[digits] = None
    return Sensitive(tuple(texts), tuple(phones))


def _field(source: Any, snake: str, camel: str) -> Any:
    if isinstance(source, Mapping):
        return source.get(camel, source.get(snake))
    return getattr(source, snake, None)


def sensitive_values(event: Any) -> Sensitive:
    """The personal data an event carries (a NormalisedEvent, or its JSON object from a queue message),
    as sent to Commerce: what Commerce could quote back in an error."""
    if event is None:
        return NOTHING
    pairs = [(label, _field(event, snake, camel)) for snake, camel, label in _EVENT_FIELDS]
    address = _field(event, "address", "address")
    if address is not None:
        pairs += [(label, _field(address, snake, camel)) for snake, camel, label in _ADDRESS_FIELDS]
    return sensitive(pairs)


def sensitive_values_from_envelope(text: str | bytes | None) -> Sensitive:
    """``sensitive_values`` of the event in a queue message as stored (best effort: junk gives none)."""
    if not text:
        return NOTHING
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return NOTHING
    event = data.get("event") if isinstance(data, dict) else None
    return sensitive_values(event) if isinstance(event, dict) else NOTHING


# --- the decoded view ------------------------------------------------------------------------------
_ESCAPE = re.compile(
    r"(?P<pct>(?:%[0-9A-Fa-f]{2})+)"  # percent-encoded UTF-8 bytes
    r"|%[uU](?P<pu>[0-9A-Fa-f]{4})"  # JavaScript escape()
    r"|\\{1,8}(?:u(?P<ju>[0-9A-Fa-f]{4})|x(?P<jx>[0-9A-Fa-f]{2})|(?P<jc>[\"'/]))"  # JSON / JS, once or more
    r"|(?P<ent>&(?:#[0-9]{1,7};?|#[xX][0-9A-Fa-f]{1,6};?|[A-Za-z][A-Za-z0-9]{1,31};))"  # HTML entities
)
_LAYERS = 4  # %252540 is three layers deep; more than four is not an accident


def _utf8(data: bytes) -> Iterator[tuple[int, int, str]]:
    """(first byte, byte count, character) of percent-decoded bytes: UTF-8 (a surrogate encoded on its
    own, as CESU-8 / Java write it, gives that surrogate), else one Latin-1 byte."""
    i, n = 0, len(data)
    while i < n:
        b = data[i]
        size = 2 if 0xC2 <= b <= 0xDF else 3 if 0xE0 <= b <= 0xEF else 4 if 0xF0 <= b <= 0xF4 else 1
        if size > 1 and i + size <= n:
            try:
                yield i, size, data[i : i + size].decode("utf-8", "surrogatepass" if b == 0xED else "strict")
                i += size
                continue
            except UnicodeDecodeError:
                pass
        yield i, 1, chr(b)
        i += 1


def _decoded(match: re.Match[str]) -> list[tuple[int, int, str]] | None:
    """(start, end) within the match and the text it stands for, or None to leave it as it is."""
    group = match.lastgroup
    if group is None:  # never: every alternative of _ESCAPE is a named group
        return None
    value = match.group(group)
    if group == "pct":
        return [(3 * i, 3 * (i + size), ch) for i, size, ch in _utf8(bytes.fromhex(value.replace("%", "")))]
    whole = len(match.group(0))
    if group in ("pu", "ju", "jx"):
        return [(0, whole, chr(int(value, 16)))]
    if group == "jc":
        return [(0, whole, value)]
    if value.startswith("&#"):  # html.unescape turns a surrogate into U+FFFD: keep it, to pair it up
        digits = value[2:].rstrip(";")
        code = int(digits[1:], 16) if digits[:1] in "xX" else int(digits)
        if 0xD800 <= code <= 0xDFFF:
            return [(0, whole, chr(code))]
    text = html.unescape(value)
    return None if text == value else [(0, whole, text)]


def _high(c: str) -> bool:
    return len(c) == 1 and 0xD800 <= ord(c) <= 0xDBFF


def _low(c: str) -> bool:
    return len(c) == 1 and 0xDC00 <= ord(c) <= 0xDFFF


class _Layer:
    """One decoding pass: pieces of the decoded text, each a literal run of the text below or one decoded
    escape, with where it came from."""

    def __init__(self) -> None:
        self.starts: list[int] = []  # offset of each piece in the decoded text, increasing
        self.lows: list[int] = []
        self.highs: list[int] = []
        self.literal: list[bool] = []

    def add(self, start: int, low: int, high: int, literal: bool) -> None:
        self.starts.append(start)
        self.lows.append(low)
        self.highs.append(high)
        self.literal.append(literal)

    def below(self, a: int, b: int) -> tuple[int, int]:
        """The span of the text below that ``[a, b)`` of the decoded text came from."""
        i = bisect.bisect_right(self.starts, a) - 1
        j = bisect.bisect_right(self.starts, b - 1) - 1
        low = self.lows[i] + (a - self.starts[i]) if self.literal[i] else self.lows[i]
        high = self.lows[j] + (b - self.starts[j]) if self.literal[j] else self.highs[j]
        return low, high


def _decode_once(text: str) -> tuple[str, _Layer] | None:
    layer, out = _Layer(), []
    pos = size = 0
    for match in _ESCAPE.finditer(text):
        parts = _decoded(match)
        if not parts:
            continue
        if match.start() > pos:
            layer.add(size, pos, match.start(), True)
            out.append(text[pos : match.start()])
            size += match.start() - pos
        for low, high, chars in parts:
            low, high = match.start() + low, match.start() + high
            if _low(chars) and out and not layer.literal[-1] and layer.highs[-1] == low and _high(out[-1]):
                # UTF-16 escaped one unit at a time (\\ud842\\udfb7, %uD842%uDFB7, &#55362;&#57271;):
                # the two escapes are one character, and its span covers both
                out[-1] = chr(0x10000 + ((ord(out[-1]) - 0xD800) << 10) + ord(chars) - 0xDC00)
                layer.highs[-1] = high
                continue
            layer.add(size, low, high, False)
            out.append(chars)
            size += len(chars)
        pos = match.end()
    if not layer.starts:
        return None
    if pos < len(text):
        layer.add(size, pos, len(text), True)
        out.append(text[pos:])
    return "".join(out), layer


_TURKISH_I = str.maketrans({"\u0130": "i", "\u0131": "i"})  # İ and dotless ı: i, as a non-Turkish lower() would


def _lower(text: str) -> str:
    """Lower case, one character for one (offsets stay valid); the Turkish İ and ı are folded to i."""
    text = text.translate(_TURKISH_I)
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    return "".join(low if len(low := c.lower()) == 1 else c for c in text)


class _View:
    def __init__(self, text: str):
        self.layers: list[_Layer] = []
        decoded = text
        if "%" in text or "\\" in text or "&" in text:
            for _ in range(_LAYERS):
                result = _decode_once(decoded)
                if result is None:
                    break
                decoded, layer = result
                self.layers.append(layer)
        self.text = decoded
        self.lower = _lower(decoded)

    def original(self, a: int, b: int) -> tuple[int, int]:
        for layer in reversed(self.layers):
            a, b = layer.below(a, b)
        return a, b


# --- detectors (on the decoded view) ---------------------------------------------------------------
# An address: '@' with up to 64 characters before it and 253 after, of the kinds addresses are written
# with: the local part takes every RFC 5322 atext character (``a/b``, ``a=b``, ``{ab}``), and a quoted
# string (``"john smith"``). Matched outwards from each '@' (the local part on the reversed text), so a
# long run with no '@' costs nothing.
_LOCAL = re.compile(r"[^\s@\"<>(),;:\[\]\\]{1,64}")
_DOMAIN = re.compile(r"[^\s@\"'<>(),;:\[\]{}=&?/\\|]{1,253}")
# Seven or more digits, possibly split by the separators phone numbers are written with.
_DIGIT_RUN = re.compile(r"\+?(?:\(\d{1,4}\)[ .\-]{0,2})?\d(?:[ ().\-/]{0,2}\d){6,}")  # "(206) 555-0142" whole
# Digits with up to three separators between them: compared with the phones we sent.
_PHONE_RUN = re.compile(r"\d(?:[\s().\-/]{0,3}\d)*")
# JWTs (from the start of a run only), and long opaque strings mixing letters and digits (tokens,
# secrets); identifiers such as ErrorResourceIds have no digits and survive.
_JWT = re.compile(r"(?<![A-Za-z0-9_\-])eyJ[A-Za-z0-9_\-]*\.[A-Za-z0-9_\-.]*")
_OPAQUE = re.compile(r"[A-Za-z0-9+/_=\-.~]{40,}")
_HAS_DIGIT, _HAS_ALPHA = re.compile(r"[0-9]"), re.compile(r"[A-Za-z]")
# An escape cut short at the end of a truncated text.
_CUT_ESCAPE = re.compile(r"(?:%[0-9a-f]?|%u[0-9a-f]{0,3}|\\{1,8}(?:u[0-9a-f]{0,3}|x[0-9a-f]?)?|&#?[0-9a-z]{0,31})\Z")

Span = tuple[int, int, str]


def _quoted_local(low: str, at: int) -> int | None:
    """Where a quoted local part ending just before ``at`` starts (its opening quote), if there is one:
    up to 64 characters, starting and ending with a letter or digit (so the quotes around JSON keys,
    ``"x","@odata.type"``, are not one)."""
    if at < 3 or low[at - 1] != '"' or not low[at - 2].isalnum():
        return None
    opening = low.rfind('"', max(0, at - 66), at - 1)
    if opening < 0 or not low[opening + 1].isalnum() or "\n" in low[opening:at]:
        return None
    return opening


def _emails(low: str) -> Iterator[Span]:
    at = low.find("@")
    if at < 0:
        return
    n, reverse = len(low), low[::-1]
    while at >= 0:
        right = _DOMAIN.match(low, at + 1)
        start = None
        if right:
            start = _quoted_local(low, at)
            if start is None and (left := _LOCAL.match(reverse, n - at)):
                start = at - (left.end() - (n - at))
                # an OData / SQL key before a quoted address (``Customers(Email='ada@``) is not part of
                # it, nor is a quote or separator the run starts with (``/ada@``)
                key = low.rfind("='", start, at)
                start = key + 2 if key >= 0 else start
                while start < at and low[start] in "'`.=/?&|":
                    start += 1
        if right and start is not None:  # (a start is only looked for when a domain follows the "@")
            end = right.end()
            while end > at + 1 and low[end - 1] in ".-":
                end -= 1
            if start < at < end - 1:
                yield start, end, EMAIL
        at = low.find("@", at + 1)


def _tokens(text: str) -> Iterator[Span]:
    for match in _JWT.finditer(text):
        yield match.start(), match.end(), REDACTED
    for match in _OPAQUE.finditer(text):
        run = match.group(0)
        if _HAS_DIGIT.search(run) and _HAS_ALPHA.search(run):
            yield match.start(), match.end(), REDACTED


def _word(c: str) -> bool:
    """Part of a word: a letter or digit, or a combining mark (``e`` + U+0308 is one letter, ``ë``)."""
    return c.isalnum() or unicodedata.category(c).startswith("M")


def _exact(text: str, value: str, label: str, whole_word: bool) -> Iterator[Span]:
    n, size = len(text), len(value)
    check_start = whole_word and _word(value[0])
    check_end = whole_word and _word(value[-1])
    i = text.find(value)
    while i >= 0:
        j = i + size
        if (not check_start or i == 0 or not _word(text[i - 1])) and (not check_end or j == n or not _word(text[j])):
            yield i, j, label
            i = text.find(value, j)
        else:
            i = text.find(value, i + 1)


def _cut_value(low: str, values: Sensitive) -> Span | None:
    """A text cut inside a value (truncated to a length limit): its last characters start a value."""
    cut = _CUT_ESCAPE.search(low, max(0, len(low) - 48))
    end = cut.start() if cut else len(low)
    for value, label in values.texts:
        for k in range(min(len(value), end), 2, -1):
            start = end - k
            if low.startswith(value[:k], start) and (start == 0 or not low[start - 1].isalnum()):
                return start, len(low), label
    return None


# A value cut to a column's length, quoted in the middle of a message (SQL Server's error 2628: "...
# Truncated value: 'Christop'."): a quoted text of four characters or more that starts a value we sent.
_QUOTE_PAIRS = {"'": "'", '"': '"', "`": "`", "\u2018": "\u2019", "\u201c": "\u201d"}
_OPENING_QUOTE = re.compile("[" + "".join(_QUOTE_PAIRS) + "]")
_MIN_QUOTED_PREFIX = 4
_INNER_QUOTES = 4  # quotes a value itself holds (O'Brien, O''Brien) that a quoted prefix may span


def _quoted_prefixes(low: str, values: Sensitive) -> Iterator[Span]:
    by_start: dict[str, list[tuple[str, str]]] = {}
    for value, label in values.texts:
        if len(value) >= _MIN_QUOTED_PREFIX:
            by_start.setdefault(value[:_MIN_QUOTED_PREFIX], []).append((value, label))
    if not by_start:
        return
    longest = max(len(value) for value, _ in values.texts)
    for opening in _OPENING_QUOTE.finditer(low):
        start = opening.end()
        candidates = by_start.get(low[start : start + _MIN_QUOTED_PREFIX])
        if not candidates:
            continue
        closing, limit = _QUOTE_PAIRS[opening.group()], start + longest + 1
        found, end = None, low.find(closing, start + _MIN_QUOTED_PREFIX, limit)
        for _ in range(_INNER_QUOTES + 1):  # each closing quote within reach, while the text goes on a value
            if end < 0:
                break
            quoted = low[start:end]
            started = [(len(value), label) for value, label in candidates if value.startswith(quoted)]
            if not started:
                break
            found = (start, end, min(started)[1])  # labelled as the shortest value it starts
            end = low.find(closing, end + 1, limit)
        if found:
            yield found


def _phones(low: str, phones: tuple[str, ...]) -> Iterator[Span]:
    for match in _PHONE_RUN.finditer(low):
        digits = _NON_DIGIT.sub("", match.group(0)).lstrip("0")
        if len(digits) >= 6 and any(digits in phone for phone in phones):
            start = match.start() - (match.start() > 0 and low[match.start() - 1] == "+")
            yield start, match.end(), PHONE


_PRECEDENCE = {REDACTED: 0, EMAIL: 1, PHONE: 2, DIGITS: 3, NAME: 4, ADDRESS: 5}


def mask_free_text(text: str, sensitive: Sensitive | None = None, *, secrets: Iterable[str] = ()) -> str:
    """``text`` safe to log or store: generic patterns (emails, phones and other long digit runs, tokens),
    the ``sensitive`` values we sent and the ``secrets`` replaced by a label (``<email>``, ``<name>``,
    ``<phone>``, ``<address>``, ``<digits>``, ``<redacted>``), in any encoding and case. Identifiers
    (ErrorResourceIds, property names such as ``Email``) are left readable."""
    if not text:
        return text
    view = _View(text)
    decoded, low = view.text, view.lower
    found: list[Span] = []
    found += _emails(low)
    found += ((m.start(), m.end(), DIGITS) for m in _DIGIT_RUN.finditer(low))
    found += _tokens(decoded)
    if sensitive:
        for value, label in sensitive.texts:
            found += _exact(low, value, label, whole_word=True)
        if sensitive.phones:
            found += _phones(low, sensitive.phones)
        cut = _cut_value(low, sensitive)
        if cut:
            found.append(cut)
        found += _quoted_prefixes(low, sensitive)
    spans = [(*view.original(a, b), label) for a, b, label in found]
    for secret in secrets:
        if secret:
            spans += _exact(text, secret, REDACTED, whole_word=False)
            spans += ((*view.original(a, b), label) for a, b, label in _exact(decoded, secret, REDACTED, False))
    return _replace(text, spans)


def mask_pointer(pointer: str, sensitive: Sensitive | None = None) -> str:
    """A JSON pointer (RFC 6901) masked token by token: a key that is an email, a phone or a token is
    replaced, the path to it stays readable (``/customer/address/<redacted>``). A ``/`` inside a key is
    written ``~1``, so no value spans two tokens."""
    return "/".join(mask_free_text(token, sensitive) for token in pointer.split("/"))


def _replace(text: str, spans: list[Span]) -> str:
    if not spans:
        return text
    spans.sort()
    out: list[str] = []
    pos = 0
    start, end, label = spans[0]
    for a, b, other in spans[1:]:
        if a < end:  # overlapping: one replacement, the most telling label
            end = max(end, b)
            label = min(label, other, key=_PRECEDENCE.__getitem__)
            continue
        out += (text[pos:start], label)
        pos, (start, end, label) = end, (a, b, other)
    out += (text[pos:start], label, text[end:])
    return "".join(out)
