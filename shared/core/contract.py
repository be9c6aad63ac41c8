"""The customer event contract, version 1.0, and the HTTP response shapes of the ingest API.

These pydantic models are the *published* contract: ``tools/openapi.py`` turns them into the JSON
Schema of ``docs/openapi.json`` and ``docs/event-contract.md`` explains their semantics. They describe
what a sender may send. Validation itself (``shared/core/validation.py``) walks the raw JSON field by field
instead of calling ``CustomerEvent.model_validate``, because it must list EVERY problem with its own
value-free message, honour the invalid-optional-field policy and keep "absent" apart from "null";
``tests/unit/test_contract.py`` keeps the field lists of both in step.

``NormalisedEvent`` is the other side: what validation produces and what goes on the queue.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel
from pydantic.json_schema import SkipJsonSchema

SPEC_VERSION = "1.0"
EVENT_TYPES = ("customer.created", "customer.updated")
MAX_FUTURE_SKEW_SECONDS = 300  # occurredAt or createdDateTime later than now + this is refused
# Earlier dates are refused: before 2000 an occurredAt is a placeholder (0001-01-01 of an unset .NET
# DateTime, 1970-01-01 of a zero Unix time, 1900-01-01 of SQL Server), never a customer's action.
EARLIEST_OCCURRED_AT = datetime(2000, 1, 1, tzinfo=UTC)
# Headquarters' utcdatetime columns start at 1900-01-01.
EARLIEST_CREATED_AT = datetime(1900, 1, 1, tzinfo=UTC)
# A response lists at most this many problems (errors and warnings); omittedProblems counts the rest.
MAX_LISTED_PROBLEMS = 50

# Fields an explicit JSON null may clear (see docs/event-contract.md). Every other field refuses null,
# except the metadata fields in NULL_MEANS_ABSENT, for which null is the same as leaving them out.
CLEARABLE_CUSTOMER_FIELDS = frozenset({"middleName", "phone", "phoneExtension"})
CLEARABLE_ADDRESS_FIELDS = frozenset({"name", "streetNumber", "county", "state", "postalCode"})
NULL_MEANS_ABSENT = frozenset({"source", "customerAccount", "createdDateTime", "previousEmail", "isPrimary"})


def _drop_default(schema: dict) -> None:
    schema.pop("default", None)  # "default: null" would contradict a type that refuses null


def _not_nullable(**kwargs):
    """An optional field that may be absent but not null: the schema shows no null and no default."""
    return Field(None, json_schema_extra=_drop_default, **kwargs)


class _Strict(BaseModel):
    """Unknown properties are refused: a typo must not silently become "unchanged"."""

    model_config = ConfigDict(extra="forbid")


class AddressIn(_Strict):
    """The customer's primary address. Present fields update the primary address in place."""

    name: str | None = Field(None, description="Addressee or address label (Commerce Address.Name).")
    street: str | SkipJsonSchema[None] = _not_nullable(description="Street line(s). Not clearable.")
    streetNumber: str | None = None
    city: str | SkipJsonSchema[None] = _not_nullable(description="Not clearable.")
    county: str | None = Field(None, description="County id of headquarters' address data.")
    state: str | None = Field(
        None,
        description="ISO 3166-2 code (\"WA\" or \"US-WA\") or local or "
        "English name (\"Bayern\", \"Bavaria\"), case- and "
        "diacritic-insensitive.",
    )
    postalCode: str | None = Field(
        None,
        description="Checked against the country's format and stored in its canonical form (spacing, case, prefix).",
    )
    country: str = Field(
        description="ISO 3166-1 alpha-2 or alpha-3 code, or the country's name in "
        "any CLDR language (Deutschland, Espagne, UK, Holland), case- and "
        "diacritic-insensitive. Required whenever address is present."
    )
    isPrimary: Literal[True] | None = Field(
        None, description="Only the primary address is synchronised: true or absent; false is refused."
    )


class CustomerIn(_Strict):
    email: str = Field(
        description="The match key (case-insensitive). Required, never clearable. "
        "docs/event-contract.md#email lists the addresses refused.",
        max_length=254,
        json_schema_extra={"format": "email"},
    )
    previousEmail: str | None = Field(
        None,
        description="An email change: the address the customer "
        "had before. The customer found under it gets the new email "
        "instead of a second customer being created. Validated like email.",
        json_schema_extra={"format": "email"},
    )
    firstName: str | SkipJsonSchema[None] = _not_nullable(max_length=25)
    middleName: str | None = Field(None, max_length=25, description="null clears it.")
    lastName: str | SkipJsonSchema[None] = _not_nullable(max_length=25)
    phone: str | None = Field(
        None,
        description="Any format phonenumbers can read, a tel: URI, "
        "with or without an extension (ext. 12, x12, ;ext=12); sent as E.164, "
        "the extension apart. null clears it (and its extension).",
    )
    phoneExtension: str | None = Field(
        None,
        description="The phone's extension, digits (at most "
        "10). Sent with phone, it must match an extension written in "
        "phone; a phone without one clears it. null clears it.",
    )
    isOptedInMarketing: bool | SkipJsonSchema[None] = _not_nullable(
        description="Marketing consent, set on the email and phone contacts."
    )
    language: str | SkipJsonSchema[None] = _not_nullable(description="BCP 47 tag, e.g. en-US; sent lower-case.")
    currencyCode: str | SkipJsonSchema[None] = _not_nullable(description="ISO 4217 code.")
    customerGroup: str | SkipJsonSchema[None] = _not_nullable(max_length=10)
    customerAccount: str | None = Field(
        None, max_length=20, description="Commerce account number when the sender knows it. Never sent to Commerce."
    )
    createdDateTime: AwareDatetime | None = Field(None, description="Kept for audit; never sent.")
    address: AddressIn | SkipJsonSchema[None] = _not_nullable(
        description="Present: updates the primary address; null is refused."
    )


class CustomerEvent(_Strict):
    """One customer event. created and updated are informational: both are upserts by email."""

    specVersion: Literal["1.0"] = SPEC_VERSION
    eventId: str = Field(min_length=1, max_length=128, description="Idempotency key: printable characters.")
    eventType: Literal["customer.created", "customer.updated"] | SkipJsonSchema[None] = _not_nullable()
    occurredAt: AwareDatetime = Field(
        description="ISO 8601 with an offset; from 2000-01-01T00:00:00Z to 5 minutes in the future."
    )
    source: str | None = Field(None, max_length=64, description="Name of the sending system.")
    customer: CustomerIn


class EventBatch(_Strict):
    events: list[CustomerEvent] = Field(min_length=1)


# --- the normalised event (what goes on the queue) ---------------------------------------------


class _Frozen(BaseModel):
    # camelCase on the wire like the input contract; snake_case accepted too so that any dump
    # (by_alias or not) reads back to an equal object.
    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)

    present: tuple[str, ...] = ()
    """Contract names of the fields the event carried (null included). Absent = unchanged."""

    @field_validator("present")
    @classmethod
    def _sorted(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(sorted(set(v)))

    def has(self, name: str) -> bool:
        """True when the event carried ``name`` (contract name, e.g. "middleName"), null or not."""
        return name in self.present


class NormalisedAddress(_Frozen):
    name: str | None = None
    street: str | None = None
    street_number: str | None = None
    city: str | None = None
    county: str | None = None
    state: str | None = None
    """The state id Commerce uses (ISO 3166-2 code without prefix, or the configured override)."""
    state_name: str | None = None
    state_code: str | None = None
    """Full ISO 3166-2 code, e.g. US-WA, when the country has subdivisions."""
    postal_code: str | None = None
    country: str
    """ISO 3166-1 alpha-3."""
    country_alpha2: str


class CreateDefaults(BaseModel):
    """Defaults for creating a customer that a webhook source sets instead of the global ones
    (``CUSTOMER_DEFAULT_*``); like those, they apply on create only, never on update."""

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)

    customer_group: str | None = None
    currency_code: str | None = None
    language: str | None = None


class NormalisedEvent(_Frozen):
    spec_version: str = SPEC_VERSION
    event_id: str
    event_type: str | None = None
    occurred_at: datetime
    """UTC."""
    source: str | None = None
    email: str
    email_match_key: str
    email_hash: str
    previous_email: str | None = None
    previous_email_match_key: str | None = None
    previous_email_hash: str | None = None
    first_name: str | None = None
    middle_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    """E.164."""
    phone_extension: str | None = None
    """Digits: Customer.PhoneExt and the phone contact's ValueExtension."""
    is_opted_in_marketing: bool | None = None
    language: str | None = None
    currency_code: str | None = None
    customer_group: str | None = None
    customer_account: str | None = None
    created_date_time: datetime | None = None
    address: NormalisedAddress | None = None
    create_defaults: CreateDefaults | None = None
    """Set by a webhook source with its own create defaults (``shared.core.sources``); None: the global ones."""

    @property
    def changes_email(self) -> bool:
        """The event moves the customer from ``previous_email`` to ``email``."""
        return bool(self.previous_email_hash) and self.previous_email_hash != self.email_hash

    def to_json(self) -> str:
        """The queue message body."""
        return self.model_dump_json(by_alias=True)


# --- HTTP responses of POST /api/customers/events and GET /api/health ---------------------------


class EventError(BaseModel):
    index: int = Field(description="Position of the event in the batch (0 for a single event).")
    eventId: str | None = None
    pointer: str = Field(
        description="JSON pointer relative to the event, e.g. /customer/address/postalCode; empty for the whole event."
    )
    message: str = Field(description="Never contains the submitted value.")
    code: str


class Accepted(BaseModel):
    """202: every event was valid and queued."""

    accepted: list[str]
    correlationId: str
    warnings: list[EventError] = Field(default_factory=list, description="Fields dropped under the drop policy.")
    omittedProblems: int = Field(
        0,
        description="Problems not listed: an answer lists at most "
        f"{MAX_LISTED_PROBLEMS} errors and warnings in all. Absent when 0.",
    )


class EventOutcome(BaseModel):
    index: int
    eventId: str | None = None
    status: Literal["accepted", "rejected"]
    errors: list[EventError] = Field(default_factory=list)
    warnings: list[EventError] = Field(
        default_factory=list, description="Accepted events: fields dropped under the drop policy."
    )


class MultiStatus(BaseModel):
    """207: some events were accepted and queued, others rejected."""

    results: list[EventOutcome]
    correlationId: str
    omittedProblems: int = Field(
        0,
        description="Problems not listed: an answer lists at most "
        f"{MAX_LISTED_PROBLEMS} errors and warnings in all. Absent when 0.",
    )


class Problem(BaseModel):
    """RFC 9457 problem details (application/problem+json)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    correlationId: str
    errors: list[EventError] = Field(default_factory=list)
    omittedProblems: int = Field(
        0,
        description="Problems not listed: an answer lists at most "
        f"{MAX_LISTED_PROBLEMS} errors and warnings in all. Absent when 0.",
    )
    queuedEventIds: list[str] | None = Field(
        None, description="503 only: events that were queued before the failure; do not resend them."
    )


class Health(BaseModel):
    status: str = Field(description='"ok" when settings are complete, else "degraded".')
    version: str
    settingsComplete: bool
    problems: list[str] = Field(
        default_factory=list, description="Names of missing or malformed settings only, never values."
    )
