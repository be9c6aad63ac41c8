"""Validating each event of a request into a ``NormalisedEvent``.

Pure: the caller passes the clock (``now``), the mapping settings and the email hash key. Nothing
here raises for bad input: problems are returned as ``FieldProblem``s with a JSON pointer relative to
the event and a message that never quotes the submitted value (pydantic's own messages do, so they are
not used). Reading the request body into events is the ingest's (``shared.usecases.ingest.read_batch``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from shared.core.contract import (
    EARLIEST_OCCURRED_AT,
    EVENT_TYPES,
    MAX_LISTED_PROBLEMS,
    SPEC_VERSION,
    NormalisedAddress,
    NormalisedEvent,
)
from shared.core.fields import ADDRESS, ADDRESS_FIELD, CUSTOMER, FIELD, NullMeans
from shared.core.fields import dated as _dated
from shared.core.normalise.country import Country, find_country, resolve_state
from shared.core.normalise.email import normalise_email
from shared.core.normalise.invalid import Invalid
from shared.core.normalise.phone import normalise_extension, normalise_phone
from shared.core.normalise.postal import normalise_postal_code
from shared.core.normalise.text import clean_text, printable
from shared.core.privacy import email_hash
from shared.core.settings import InvalidFieldPolicy, MappingSettings

# The customer's and the address's field length limits are in shared.core.fields (Commerce's column
# sizes; docs/event-contract.md gives sources).
MAX_SOURCE = 64
MAX_EVENT_ID = 128

EVENT_FIELDS = ("specVersion", "eventId", "eventType", "occurredAt", "source", "customer")
CUSTOMER_FIELDS = tuple(f.name for f in CUSTOMER)
ADDRESS_FIELDS = tuple(f.name for f in ADDRESS)
# The fields the table validates (those with a normaliser), in contract order, with their pointers;
# the others (email, previousEmail, phone, phoneExtension, address; country, state, postalCode,
# isPrimary) are validated by hand below.
_CUSTOMER_PLAIN = tuple((f, f"/customer/{f.name}", f.normalise) for f in CUSTOMER if f.normalise is not None)
_ADDRESS_PLAIN = tuple((f, f"/customer/address/{f.name}", f.normalise) for f in ADDRESS if f.normalise is not None)
_CLEAR, _ABSENT_IF_NULL = NullMeans.CLEAR, NullMeans.ABSENT


class FieldProblem(BaseModel):
    model_config = ConfigDict(frozen=True)

    pointer: str
    message: str
    code: str


class EventResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    index: int
    event_id: str | None = None
    event: NormalisedEvent | None = None
    errors: list[FieldProblem] = []
    warnings: list[FieldProblem] = []
    omitted: int = 0  # problems of this event not listed (past MAX_LISTED_PROBLEMS)

    @property
    def ok(self) -> bool:
        return self.event is not None


# --- one event --------------------------------------------------------------------------------


_UNENCODABLE = re.compile("[\ud800-\udfff]")


def _escape(key: str) -> str:
    """A property name as a JSON pointer token (RFC 6901), truncated: it is input. A lone surrogate
    (from a ``"\\ud800"`` escape) becomes U+FFFD, so the answer can always be encoded as UTF-8."""
    return _UNENCODABLE.sub("\ufffd", key[:64]).replace("~", "~0").replace("/", "~1")


class _Problems:
    """Collects problems; optional-field problems become warnings under the drop policy."""

    def __init__(self, policy: InvalidFieldPolicy):
        self.drop = policy is InvalidFieldPolicy.DROP
        self.errors: list[FieldProblem] = []
        self.warnings: list[FieldProblem] = []
        # Problems past MAX_LISTED_PROBLEMS are counted, not kept: 60,000 unknown properties cost
        # two counters, not 60,000 objects and a 10 MB answer.
        self.omitted_errors = 0
        self.omitted_warnings = 0

    def _full(self) -> bool:
        return len(self.errors) + len(self.warnings) >= MAX_LISTED_PROBLEMS

    @property
    def refused(self) -> bool:
        return bool(self.errors) or self.omitted_errors > 0

    def result(self, index: int, event_id: str | None, event: NormalisedEvent | None = None) -> EventResult:
        return EventResult(
            index=index,
            event_id=event_id,
            event=event,
            errors=self.errors,
            warnings=self.warnings,
            omitted=self.omitted_errors + self.omitted_warnings,
        )

    def error(self, pointer: str, message: str, code: str) -> None:
        if self._full():
            self.omitted_errors += 1
        else:
            self.errors.append(FieldProblem(pointer=pointer, message=message, code=code))

    def optional(self, pointer: str, message: str, code: str) -> None:
        if not self.drop:
            self.error(pointer, message, code)
        elif self._full():
            self.omitted_warnings += 1
        else:
            self.warnings.append(FieldProblem(pointer=pointer, message=f"{message}; left out", code=code))

    def unknown(self, obj: dict[str, Any], allowed: tuple[str, ...], prefix: str) -> None:
        for key in obj:
            if key not in allowed:
                self.error(
                    f"{prefix}/{_escape(str(key))}",
                    "unknown property: the contract (specVersion 1.0) does not define it",
                    "unknown_property",
                )


_ABSENT = object()


def _optional(
    problems: _Problems,
    obj: dict[str, Any],
    key: str,
    pointer: str,
    null: NullMeans,
    normalise: Callable[..., Any],
    out: dict[str, Any],
    present: set[str],
    out_key: str,
    *args: Any,
) -> None:
    """Validate one optional field (``normalise(value, *args)``) into ``out``; record it in ``present``
    unless dropped. ``null``: what null means for it (shared.core.fields.NullMeans); empty text means
    the same where null clears, and is refused everywhere else."""
    value = obj.get(key, _ABSENT)
    if value is _ABSENT:
        return
    if value is None:
        if null is _ABSENT_IF_NULL:
            return
        if null is _CLEAR:
            out[out_key] = None
            present.add(key)
        else:
            problems.optional(
                pointer, "cannot be cleared with null; leave it out to keep the current value", "not_clearable"
            )
        return
    try:
        normalised = normalise(value, *args)
    except Invalid as problem:
        problems.optional(pointer, problem.message, problem.code)
        return
    if normalised is None:  # empty text
        if null is _CLEAR:
            out[out_key] = None
            present.add(key)
        else:
            problems.optional(pointer, "must not be empty", "empty")
        return
    out[out_key] = normalised
    present.add(key)


# An eventId is logged, sent to telemetry and keys dead letters: one holding an email would carry it
# everywhere masking never looks. One character class each side of the @: linear.
_EMAIL_LIKE = re.compile(r"[^\s@]@[^\s@]*\.")


def _event_id_value(value: object) -> str:
    identifier = printable(value, MAX_EVENT_ID)
    if _EMAIL_LIKE.search(identifier):
        raise Invalid("personal_data", "must not contain an email address: event ids are logged")
    return identifier


def _event_id(raw: object) -> str | None:
    """The event's id when it is usable in answers and logs, else None."""
    if isinstance(raw, dict):
        try:
            return _event_id_value(raw.get("eventId"))
        except Invalid:
            return None
    return None


def _address(
    problems: _Problems, raw: object, settings: MappingSettings
) -> tuple[NormalisedAddress | None, Country | None]:
    base = "/customer/address"
    if not isinstance(raw, dict):
        problems.optional(base, "must be an object", "type")
        return None, None
    problems.unknown(raw, ADDRESS_FIELDS, base)
    out: dict[str, Any] = {}
    present: set[str] = set()
    for f, pointer, normalise in _ADDRESS_PLAIN:
        if f.name in raw:
            _optional(problems, raw, f.name, pointer, f.null, normalise, out, present, f.attr, f.limit, None)

    is_primary = raw.get("isPrimary")
    not_primary = is_primary is not None and is_primary is not True
    if not_primary:
        problems.optional(
            f"{base}/isPrimary",
            "only the primary address is synchronised: isPrimary must be true or left out",
            "unsupported",
        )

    country: Country | None = None
    raw_country = raw.get("country")
    if raw_country is None:
        problems.optional(f"{base}/country", "is required whenever address is present", "required")
    else:
        try:
            country = find_country(raw_country)
        except Invalid as problem:
            problems.optional(f"{base}/country", problem.message, problem.code)
    if country is None:
        # Without a country neither state nor postal code can be checked, nor the address sent.
        return None, None

    if "state" in raw:
        _state(problems, raw["state"], country, settings, out, present)

    _optional(
        problems,
        raw,
        "postalCode",
        f"{base}/postalCode",
        ADDRESS_FIELD["postalCode"].null,
        lambda v: normalise_postal_code(country.alpha2, v) if not (isinstance(v, str) and not v.strip()) else None,
        out,
        present,
        "postal_code",
    )
    if not_primary:
        # Dropping only the flag would still overwrite the primary address: drop the address.
        return None, None
    present.add("country")
    address = NormalisedAddress(country=country.alpha3, country_alpha2=country.alpha2, present=tuple(present), **out)
    return address, country


def _state(
    problems: _Problems,
    value: object,
    country: Country,
    settings: MappingSettings,
    out: dict[str, Any],
    present: set[str],
) -> None:
    """The state id, name and ISO code go together: all set, all cleared, or (invalid) all absent."""
    pointer = "/customer/address/state"
    try:
        text = None if value is None else clean_text(value, 100)
        if text is None:
            out.update(state=None, state_name=None, state_code=None)
        else:
            state_id, name, code = resolve_state(country, text, settings.state_id_overrides)
            out.update(state=state_id, state_name=name, state_code=code)
        present.add("state")
    except Invalid as problem:
        problems.optional(pointer, problem.message, problem.code)


def _phone(
    problems: _Problems, customer: dict[str, Any], region: str | None, fields: dict[str, Any], present: set[str]
) -> None:
    """``phone`` and its extension, which go together: a phone replaces the number and its
    extension (written in it, or sent as ``phoneExtension``); clearing the phone clears both;
    ``phoneExtension`` alone changes only the extension."""
    phone: dict[str, Any] = {}
    _optional(
        problems,
        customer,
        "phone",
        "/customer/phone",
        FIELD["phone"].null,
        lambda v: normalise_phone(v, region) if not (isinstance(v, str) and not v.strip()) else None,
        phone,
        present,
        "phone",
    )
    extension: dict[str, Any] = {}
    _optional(
        problems,
        customer,
        "phoneExtension",
        "/customer/phoneExtension",
        FIELD["phoneExtension"].null,
        lambda v: normalise_extension(v) if not (isinstance(v, str) and not v.strip()) else None,
        extension,
        present,
        "phone_extension",
    )
    pointer = "/customer/phoneExtension"
    if "phone" not in customer:
        fields.update(extension)
        return
    if "phone" not in phone:  # the phone was dropped: its extension goes with it
        if "phone_extension" in extension:
            present.discard("phoneExtension")
            problems.optional(pointer, "belongs to the phone, which was left out", "phone_dropped")
        return
    number = phone["phone"]
    written = number.extension if number is not None else None
    sent = extension.get("phone_extension")
    if number is None and sent is not None:
        problems.optional(pointer, "cannot be set while phone is cleared", "conflict")
        sent = None
    elif written is not None and "phone_extension" in extension and sent != written:
        problems.optional(pointer, "differs from the extension written in phone", "conflict")
        problems.optional("/customer/phone", "its extension differs from phoneExtension", "conflict")
        present.discard("phoneExtension")
        present.discard("phone")
        return
    fields.update(phone=number.number if number is not None else None, phone_extension=written or sent)
    present.add("phoneExtension")  # a phone without an extension clears the old one


def _validate(raw: object, index: int, now: datetime, settings: MappingSettings, hash_key: bytes) -> EventResult:
    problems = _Problems(settings.invalid_field_policy)
    event_id = _event_id(raw)
    if not isinstance(raw, dict):
        problems.error("", "an event must be a JSON object", "type")
        return problems.result(index, None)
    problems.unknown(raw, EVENT_FIELDS, "")

    meta: dict[str, Any] = {}
    spec = raw.get("specVersion", SPEC_VERSION)
    if spec != SPEC_VERSION:
        problems.error(
            "/specVersion", f'unsupported specVersion: this API accepts "{SPEC_VERSION}"', "unsupported_version"
        )

    if "eventId" not in raw or raw["eventId"] is None:
        problems.error("/eventId", "is required", "required")
    else:
        try:
            meta["event_id"] = _event_id_value(raw["eventId"])
        except Invalid as problem:
            problems.error("/eventId", problem.message, problem.code)

    event_type = raw.get("eventType")
    if event_type is not None:
        if event_type in EVENT_TYPES:
            meta["event_type"] = event_type
        else:
            problems.optional("/eventType", "must be customer.created or customer.updated", "invalid_event_type")

    if "occurredAt" not in raw or raw["occurredAt"] is None:
        problems.error("/occurredAt", "is required", "required")
    else:
        try:
            meta["occurred_at"] = _dated(raw["occurredAt"], EARLIEST_OCCURRED_AT, now)
        except Invalid as problem:
            problems.error("/occurredAt", problem.message, problem.code)

    unused: set[str] = set()
    _optional(
        problems,
        raw,
        "source",
        "/source",
        _ABSENT_IF_NULL,
        lambda v: printable(v.strip() if isinstance(v, str) else v, MAX_SOURCE),
        meta,
        unused,
        "source",
    )

    customer = raw.get("customer")
    if customer is None:
        problems.error("/customer", "is required", "required")
        return problems.result(index, event_id)
    if not isinstance(customer, dict):
        problems.error("/customer", "must be an object", "type")
        return problems.result(index, event_id)
    problems.unknown(customer, CUSTOMER_FIELDS, "/customer")

    fields: dict[str, Any] = {}
    present: set[str] = set()
    if customer.get("email") is None:
        problems.error("/customer/email", "is required", "required")
    else:
        try:
            email, key = normalise_email(customer["email"])
            fields.update(email=email, email_match_key=key, email_hash=email_hash(key, hash_key))
        except Invalid as problem:
            problems.error("/customer/email", problem.message, problem.code)

    previous: dict[str, Any] = {}
    _optional(
        problems,
        customer,
        "previousEmail",
        "/customer/previousEmail",
        FIELD["previousEmail"].null,
        normalise_email,
        previous,
        present,
        "previous",
    )
    if "previous" in previous:
        prev_email, prev_key = previous["previous"]
        fields.update(
            previous_email=prev_email,
            previous_email_match_key=prev_key,
            previous_email_hash=email_hash(prev_key, hash_key),
        )

    for f, pointer, normalise in _CUSTOMER_PLAIN:
        if f.name in customer:  # most events carry few fields: skip the call for the others
            _optional(problems, customer, f.name, pointer, f.null, normalise, fields, present, f.attr, f.limit, now)

    country: Country | None = None
    if "address" in customer:
        if customer["address"] is None:
            problems.optional(
                "/customer/address",
                "cannot be cleared with null: addresses are never deleted; leave it out to keep the current one",
                "not_clearable",
            )
        else:
            address, country = _address(problems, customer["address"], settings)
            if address is not None:
                fields["address"] = address
                present.add("address")

    region = country.alpha2 if country else (settings.default_country or None)
    _phone(problems, customer, region, fields, present)

    if problems.errors:
        return problems.result(index, event_id)
    event = NormalisedEvent(spec_version=SPEC_VERSION, present=tuple(present), **meta, **fields)
    return problems.result(index, event_id, event)


def validate_event(
    raw: object, *, now: datetime, settings: MappingSettings, hash_key: bytes, index: int = 0
) -> EventResult:
    """Validate and normalise one event. Bad input is an ``EventResult`` with errors; an exception
    from here is a defect, left to the outermost handler (a logged 500), never blamed on the sender."""
    return _validate(raw, index, now, settings, hash_key)


def validate_batch(
    items: list[object], *, now: datetime, settings: MappingSettings, hash_key: bytes
) -> list[EventResult]:
    """Validate every event, in index order. An eventId already used by an earlier event of the same
    batch refuses the later event; the first occurrence keeps it."""
    results: list[EventResult] = []
    seen: set[str] = set()
    for index, raw in enumerate(items):
        result = validate_event(raw, now=now, settings=settings, hash_key=hash_key, index=index)
        event_id = result.event_id
        if event_id is not None:
            if event_id in seen:
                result = EventResult(
                    index=index,
                    event_id=event_id,
                    warnings=result.warnings,
                    omitted=result.omitted,
                    errors=[
                        *result.errors,
                        FieldProblem(
                            pointer="/eventId",
                            code="duplicate_event_id",
                            message="an earlier event in this batch has the same eventId",
                        ),
                    ],
                )
            seen.add(event_id)
        results.append(result)
    return results
