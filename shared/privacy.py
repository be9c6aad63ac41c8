"""Pseudonymous references to personal data, and the one masker of free text, for logs, telemetry and
stored failure records.

An email is referred to by a keyed HMAC-SHA256 of its match key (the lower-cased, normalised address):
stable across events so operators can search for one customer, useless to anyone without the key.
Phones are masked to their last two digits.

Free text that may quote personal data (Commerce's error messages echo what they were sent) goes
through ``mask_free_text`` before it is logged or stored. It masks:
- generic patterns: email addresses, digit runs of seven or more (phones), JWTs and long opaque tokens;
- the values we know we sent (``sensitive_values`` of the event: emails, names, phone, address lines,
  city, postal code), case-insensitively, as whole words, and a prefix of one where the text was cut;
- given secrets, exactly.
Matching runs on a decoded view of the text: percent-encoding (also double: ``%2540``), JSON / JS
escapes (``\\u0040``, ``\\\\u0040``, ``\\x40``), HTML entities (``&#64;``, ``&commat;``) are decoded,
up to four layers deep, and the view is lower-cased; each match is mapped back to the span of the
original text it came from, and that span is replaced. Every step is linear in the text's length
(no regex here can backtrack over more than a bounded window).
"""

from __future__ import annotations

import bisect
import hashlib
import hmac
import html
import json
import re
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping


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
    ("email", "email", EMAIL), ("email_match_key", "emailMatchKey", EMAIL),
    ("previous_email", "previousEmail", EMAIL), ("previous_email_match_key", "previousEmailMatchKey", EMAIL),
    ("first_name", "firstName", NAME), ("middle_name", "middleName", NAME), ("last_name", "lastName", NAME),
    ("phone", "phone", PHONE),
)
_ADDRESS_FIELDS = (
    ("name", "name", NAME), ("street", "street", ADDRESS), ("street_number", "streetNumber", ADDRESS),
    ("city", "city", ADDRESS), ("county", "county", ADDRESS), ("postal_code", "postalCode", ADDRESS),
)
_WORD_SPLIT = re.compile(r"[\s\-]+")
_NON_DIGIT = re.compile(r"\D")


@dataclass(frozen=True)
class Sensitive:
    """Values to mask wherever they appear: ``texts`` (lower-cased value, label) and ``phones`` (the
    digits of each phone number, without leading zeros)."""

    texts: tuple[tuple[str, str], ...] = ()
    phones: tuple[str, ...] = ()

    def __add__(self, other: "Sensitive") -> "Sensitive":
        return Sensitive(tuple(dict.fromkeys(self.texts + other.texts)),
                         tuple(dict.fromkeys(self.phones + other.phones)))

    def __bool__(self) -> bool:
        return bool(self.texts or self.phones)


NOTHING = Sensitive()


def sensitive(values: Iterable[tuple[str, str | None]]) -> Sensitive:
    """``Sensitive`` from (label, value) pairs; the label is one of EMAIL, NAME, PHONE, ADDRESS."""
    texts: dict[tuple[str, str], None] = {}
    phones: dict[str, None] = {}

    def add(value: str, label: str) -> None:
        value = _lower(value.strip())
        if len(value) < 2 or (value.isdigit() and len(value) < 4):
            return  # too short to tell from ordinary text
        texts[(value, label)] = None
        if " " in value:
            texts[(value.replace(" ", "+"), label)] = None  # form-encoded (quote_plus), once decoded

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
    r"(?P<pct>(?:%[0-9A-Fa-f]{2})+)"                       # percent-encoded UTF-8 bytes
    r"|%[uU](?P<pu>[0-9A-Fa-f]{4})"                        # JavaScript escape()
    r"|\\{1,8}(?:u(?P<ju>[0-9A-Fa-f]{4})|x(?P<jx>[0-9A-Fa-f]{2})|(?P<jc>[\"'/]))"  # JSON / JS, once or more
    r"|(?P<ent>&(?:#[0-9]{1,7};?|#[xX][0-9A-Fa-f]{1,6};?|[A-Za-z][A-Za-z0-9]{1,31};))"  # HTML entities
)
_LAYERS = 4  # %252540 is three layers deep; more than four is not an accident


def _utf8(data: bytes) -> Iterator[tuple[int, int, str]]:
    """(first byte, byte count, character) of percent-decoded bytes: UTF-8, else one Latin-1 byte."""
    i, n = 0, len(data)
    while i < n:
        b = data[i]
        size = 2 if 0xC2 <= b <= 0xDF else 3 if 0xE0 <= b <= 0xEF else 4 if 0xF0 <= b <= 0xF4 else 1
        if size > 1 and i + size <= n:
            try:
                yield i, size, data[i:i + size].decode("utf-8")
                i += size
                continue
            except UnicodeDecodeError:
                pass
        yield i, 1, chr(b)
        i += 1


def _decoded(match: re.Match[str]) -> list[tuple[int, int, str]] | None:
    """(start, end) within the match and the text it stands for, or None to leave it as it is."""
    group = match.lastgroup
    value = match.group(group)
    if group == "pct":
        return [(3 * i, 3 * (i + size), ch) for i, size, ch in _utf8(bytes.fromhex(value.replace("%", "")))]
    whole = len(match.group(0))
    if group in ("pu", "ju", "jx"):
        return [(0, whole, chr(int(value, 16)))]
    if group == "jc":
        return [(0, whole, value)]
    text = html.unescape(value)
    return None if text == value else [(0, whole, text)]


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
            out.append(text[pos:match.start()])
            size += match.start() - pos
        for low, high, chars in parts:
            layer.add(size, match.start() + low, match.start() + high, False)
            out.append(chars)
            size += len(chars)
        pos = match.end()
    if not layer.starts:
        return None
    if pos < len(text):
        layer.add(size, pos, len(text), True)
        out.append(text[pos:])
    return "".join(out), layer


def _lower(text: str) -> str:
    """Lower case, one character for one (offsets stay valid)."""
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
# with. Matched outwards from each '@' (the local part on the reversed text), so a long run with no '@'
# costs nothing.
_LOCAL = re.compile(r"[^\s@\"<>(),;:\[\]{}=&?/\\|]{1,64}")
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


def _emails(low: str) -> Iterator[Span]:
    at = low.find("@")
    if at < 0:
        return
    n, reverse = len(low), low[::-1]
    while at >= 0:
        left, right = _LOCAL.match(reverse, n - at), _DOMAIN.match(low, at + 1)
        if left and right:
            start, end = at - (left.end() - (n - at)), right.end()
            while start < at and low[start] in "'`.":
                start += 1
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


def _exact(text: str, value: str, label: str, whole_word: bool) -> Iterator[Span]:
    n, size = len(text), len(value)
    check_start = whole_word and value[0].isalnum()
    check_end = whole_word and value[-1].isalnum()
    i = text.find(value)
    while i >= 0:
        j = i + size
        if (not check_start or i == 0 or not text[i - 1].isalnum()) and \
                (not check_end or j == n or not text[j].isalnum()):
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
    spans = [(*view.original(a, b), label) for a, b, label in found]
    for secret in secrets:
        if secret:
            spans += _exact(text, secret, REDACTED, whole_word=False)
            spans += ((*view.original(a, b), label) for a, b, label in _exact(decoded, secret, REDACTED, False))
    return _replace(text, spans)


def _replace(text: str, spans: list[Span]) -> str:
    if not spans:
        return text
    spans.sort()
    out, pos = [], 0
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
