"""Request events as a sender writes them, validated the way the ingest validates them: ``check`` runs
the validator at the tests' clock and hash key, ``codes`` is what it refused, by JSON pointer."""

from __future__ import annotations

import dataclasses

from shared.core.settings import InvalidFieldPolicy, MappingSettings
from shared.core.validation import EventResult, validate_event
from tests.support import builders
from tests.support.builders import KEY, NOW


def mapping(
    policy: InvalidFieldPolicy = InvalidFieldPolicy.REJECT, default_country: str = "US", overrides=None
) -> MappingSettings:
    """The tests' mapping settings with another invalid-field policy, default country or state ids."""
    return dataclasses.replace(
        builders.mapping(),
        invalid_field_policy=policy,
        default_country=default_country,
        state_id_overrides=overrides or {},
    )


def event(**customer) -> dict:
    body = {"email": "ada@example.com", **customer}
    return {
        "specVersion": "1.0",
        "eventId": "evt-1",
        "eventType": "customer.updated",
        "occurredAt": "2026-11-26T11:00:00Z",
        "customer": body,
    }


def check(raw, **kw) -> EventResult:
    return validate_event(raw, now=NOW, settings=kw.pop("settings", mapping()), hash_key=KEY, **kw)


def codes(result: EventResult) -> dict[str, str]:
    return {p.pointer: p.code for p in result.errors}
