"""The customer event contract, version 1.0, and the HTTP response shapes of the ingest API.

These pydantic models are the *published* contract: ``tools/openapi.py`` turns them into the JSON
Schema of ``docs/openapi.json`` and ``docs/event-contract.md`` explains their semantics. They describe
what a sender may send. Validation itself (``shared/core/validation.py``) walks the raw JSON field by field
instead of calling ``CustomerEvent.model_validate``, because it must list EVERY problem with its own
value-free message, honour the invalid-optional-field policy and keep "absent" apart from "null".

The customer and address models (``CustomerIn``, ``AddressIn``, ``NormalisedEvent``'s customer fields,
``NormalisedAddress``, ``CreateDefaults``) are built from the field table of ``shared/core/fields.py``,
as validation's per-field loop is: both read the one list of fields.

``NormalisedEvent`` is the other side: what validation produces and what goes on the queue.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, create_model, field_validator
from pydantic.alias_generators import to_camel
from pydantic.json_schema import SkipJsonSchema

from shared.core import fields
from shared.core.fields import ADDRESS, CUSTOMER, NESTED, NullMeans
from shared.core.fields import EARLIEST_CREATED_AT as EARLIEST_CREATED_AT
from shared.core.fields import MAX_FUTURE_SKEW_SECONDS as MAX_FUTURE_SKEW_SECONDS

SPEC_VERSION: Literal["1.0"] = "1.0"
EVENT_TYPES = ("customer.created", "customer.updated")
# Earlier dates are refused: before 2000 an occurredAt is a placeholder (0001-01-01 of an unset .NET
# DateTime, 1970-01-01 of a zero Unix time, 1900-01-01 of SQL Server), never a customer's action.
# (createdDateTime's window, EARLIEST_CREATED_AT and MAX_FUTURE_SKEW_SECONDS, is in shared.core.fields.)
EARLIEST_OCCURRED_AT = datetime(2000, 1, 1, tzinfo=UTC)
# A response lists at most this many problems (errors and warnings); omittedProblems counts the rest.
MAX_LISTED_PROBLEMS = 50

# Fields an explicit JSON null may clear (see docs/event-contract.md). Every other field refuses null,
# except the metadata fields in NULL_MEANS_ABSENT, for which null is the same as leaving them out.
CLEARABLE_CUSTOMER_FIELDS = frozenset(f.name for f in CUSTOMER if f.null is NullMeans.CLEAR)
CLEARABLE_ADDRESS_FIELDS = frozenset(f.name for f in ADDRESS if f.null is NullMeans.CLEAR)
NULL_MEANS_ABSENT = frozenset({"source"} | {f.name for f in CUSTOMER + ADDRESS if f.null is NullMeans.ABSENT})


# The type a field that refuses null adds to its own: the schema shows no null.
_REFUSED_NULL: Any = SkipJsonSchema[None]  # type: ignore[misc]  # a runtime type application of an alias


def _drop_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)  # "default: null" would contradict a type that refuses null


def _not_nullable(**kwargs: Any) -> Any:
    """An optional field that may be absent but not null: the schema shows no null and no default."""
    return Field(None, json_schema_extra=_drop_default, **kwargs)


def _published_field(f: fields.Field, nested: Mapping[str, type[BaseModel]]) -> tuple[Any, Any]:
    """A table field as a field of a published model: required; nullable (null clears, or means
    absent); or optional but not nullable, the schema showing no null and no default."""
    kind = nested[f.name] if f.type is NESTED else f.type
    options: dict[str, Any] = {}
    if f.description is not None:
        options["description"] = f.description
    if f.limit is not None:
        options["max_length"] = f.limit
    extra = dict(f.schema) if f.schema else None
    if f.null is NullMeans.REQUIRED:
        return kind, Field(json_schema_extra=extra, **options)
    if f.null is NullMeans.REFUSED:

        def not_nullable(schema: dict[str, Any]) -> None:
            _drop_default(schema)
            schema.update(extra or {})

        return kind | _REFUSED_NULL, Field(None, json_schema_extra=not_nullable, **options)
    return kind | None, Field(None, json_schema_extra=extra, **options)


def _queued_field(f: fields.Field, nested: Mapping[str, type[BaseModel]]) -> tuple[Any, Any]:
    """A table field as a field of a normalised (queue) model: required, or None when unset."""
    kind = nested[f.name] if f.type is NESTED else datetime if f.type is AwareDatetime else f.type
    return (kind, ...) if f.null is NullMeans.REQUIRED else (kind | None, None)


class _Strict(BaseModel):
    """Unknown properties are refused: a typo must not silently become "unchanged"."""

    model_config = ConfigDict(extra="forbid")


class _PublishedFields(_Strict):
    """A published model whose fields are built from a table of shared.core.fields."""

    if TYPE_CHECKING:  # the built fields, to a type checker

        def __init__(self, **data: Any) -> None: ...

        def __getattr__(self, name: str) -> Any: ...


def _published(
    name: str,
    table: tuple[fields.Field, ...],
    doc: str | None = None,
    nested: Mapping[str, type[BaseModel]] | None = None,
) -> type[_PublishedFields]:
    definitions: dict[str, Any] = {f.name: _published_field(f, nested or {}) for f in table}
    return create_model(name, __base__=_PublishedFields, __module__=__name__, __doc__=doc, **definitions)


if TYPE_CHECKING:
    AddressIn = _PublishedFields
    CustomerIn = _PublishedFields
else:
    AddressIn = _published(
        "AddressIn", ADDRESS, "The customer's primary address. Present fields update the primary address in place."
    )
    CustomerIn = _published("CustomerIn", CUSTOMER, nested={"address": AddressIn})


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

    if TYPE_CHECKING:  # the fields built from a table of shared.core.fields, to a type checker

        def __init__(self, **data: Any) -> None: ...

        def __getattr__(self, name: str) -> Any: ...


def _queued(
    name: str,
    base: type[_Frozen],
    table: tuple[fields.Field, ...],
    nested: Mapping[str, type[BaseModel]] | None = None,
    doc: str | None = None,
    **more: Any,
) -> Any:
    """A normalised model: ``base``'s fields, then every attribute of the table's fields, then ``more``."""
    built: dict[str, Any] = {attr: _queued_field(f, nested or {}) for f in table if f.queued for attr in f.attrs}
    return create_model(name, __base__=base, __module__=__name__, __doc__=doc, **built, **more)


class _Defaults(BaseModel):
    """Defaults for creating a customer that a webhook source sets instead of the global ones
    (``CUSTOMER_DEFAULT_*``); like those, they apply on create only, never on update. Its fields (in
    ``CreateDefaults``) are the table fields with a ``default``, by their attribute names."""

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)

    if TYPE_CHECKING:  # the fields built from shared.core.fields, to a type checker

        def __init__(self, **values: str | None) -> None: ...

        def __getattr__(self, name: str) -> str | None: ...


if TYPE_CHECKING:
    CreateDefaults = _Defaults
else:
    CreateDefaults = create_model(
        "CreateDefaults",
        __base__=_Defaults,
        __module__=__name__,
        __doc__=_Defaults.__doc__,
        **{f.attr: (str | None, None) for f in CUSTOMER if f.default},
    )


class _EventBase(_Frozen):
    """The event's own fields; the customer's come from shared.core.fields (``NormalisedEvent``)."""

    spec_version: str = SPEC_VERSION
    event_id: str
    event_type: str | None = None
    occurred_at: datetime
    """UTC."""
    source: str | None = None

    @property
    def changes_email(self) -> bool:
        """The event moves the customer from ``previous_email`` to ``email``."""
        return bool(self.previous_email_hash) and self.previous_email_hash != self.email_hash

    def to_message(self) -> dict[str, Any]:
        """The event as the queue message holds it (JSON values). A customer field the event did not
        carry is left out rather than written as null (reading it back gives the same None): a worker
        of the previous version, whose reader refuses unknown keys, then still reads every message that
        does not carry a field it does not know, as after a rollback."""
        data = self.model_dump(by_alias=True, mode="json")
        for name in _OMITTED_WHEN_ABSENT:
            if data.get(name, 0) is None and name not in self.present:
                del data[name]
        return data

    def to_json(self) -> str:
        """The event's part of the queue message body, as text."""
        return json.dumps(self.to_message(), ensure_ascii=False, separators=(",", ":"))


# The customer's own fields of the queue message (not the event's, the address object or what
# validation derives), each left out when the event did not carry it.
_OMITTED_WHEN_ABSENT = tuple(f.name for f in CUSTOMER if f.queued and f.type is not fields.NESTED)


if TYPE_CHECKING:
    NormalisedAddress = _Frozen
    NormalisedEvent = _EventBase
else:
    # country: ISO 3166-1 alpha-3; state: the id Commerce uses, state_code the full ISO 3166-2 code.
    NormalisedAddress = _queued("NormalisedAddress", _Frozen, ADDRESS)
    # The event's fields, the customer's (phone in E.164), then a webhook source's own create defaults
    # (``shared.core.sources``; None: the global ones).
    NormalisedEvent = _queued(
        "NormalisedEvent",
        _EventBase,
        CUSTOMER,
        nested={"address": NormalisedAddress},
        create_defaults=(CreateDefaults | None, None),
    )


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

    correlationId: str
    results: list[EventOutcome]
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
