"""Every good sample is accepted; every sample under samples/invalid is refused for its reason."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.core.commerce_bodies.create import build_create_body
from shared.core.validation import validate_batch
from shared.usecases.ingest import BatchRejected, read_batch
from tests.support.builders import mapping

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
SETTINGS = mapping()
KEY = b"test-hash-key-0123456789"

# file -> (pointer, code) of the refusal, or an HTTP status for a request-level refusal.
EXPECTED: dict[str, tuple[str, str] | int] = {
    "address-without-country.json": ("/customer/address/country", "required"),
    "control-characters.json": ("/customer/lastName", "control_characters"),
    "duplicate-event-ids.json": ("/eventId", "duplicate_event_id"),
    "empty-batch.json": 400,
    "invalid-country.json": ("/customer/address/country", "invalid_country"),
    "invalid-currency.json": ("/customer/currencyCode", "invalid_currency"),
    "invalid-email.json": ("/customer/email", "invalid_email"),
    "invalid-language.json": ("/customer/language", "invalid_language"),
    "invalid-phone.json": ("/customer/phone", "invalid_phone"),
    "invalid-postal-code.json": ("/customer/address/postalCode", "invalid_postal_code"),
    "invalid-state.json": ("/customer/address/state", "invalid_state"),
    "missing-email.json": ("/customer/email", "required"),
    "missing-event-id.json": ("/eventId", "required"),
    "missing-offset.json": ("/occurredAt", "missing_offset"),
    "name-too-long.json": ("/customer/firstName", "too_long"),
    "not-json.json": 400,
    "null-not-clearable.json": ("/customer/firstName", "not_clearable"),
    "occurred-in-future.json": ("/occurredAt", "in_future"),
    "phone-not-valid-in-address-country.json": ("/customer/phone", "invalid_phone"),
    "too-deep.json": 400,
    "unknown-property.json": ("/customer/nickname", "unknown_property"),
    "unsupported-spec-version.json": ("/specVersion", "unsupported_version"),
    "wrong-batch-shape.json": 400,
    "wrong-type.json": ("/customer/isOptedInMarketing", "type"),
}


def _validate(path: Path):
    items = read_batch(path.read_bytes(), "application/json", max_events=500, max_bytes=1 << 20)
    return validate_batch(items, now=datetime.now(UTC), settings=SETTINGS, hash_key=KEY)


@pytest.mark.parametrize("name", ["event.json", "batch.json", "shopify-style-mapped.json"])
def test_good_samples_are_accepted_and_map(name):
    results = _validate(SAMPLES / name)
    assert results and all(r.errors == [] and r.warnings == [] for r in results)
    for r in results:
        assert build_create_body(r.event, SETTINGS)["Email"].endswith("@example.com")


def test_batch_sample_has_several_events():
    assert len(_validate(SAMPLES / "batch.json")) >= 3


def test_every_invalid_sample_has_an_expectation():
    assert sorted(p.name for p in (SAMPLES / "invalid").glob("*.json")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_invalid_samples_are_refused(name):
    expected = EXPECTED[name]
    path = SAMPLES / "invalid" / name
    if isinstance(expected, int):
        with pytest.raises(BatchRejected) as info:
            _validate(path)
        assert info.value.status == expected
        return
    results = _validate(path)
    problems = {(p.pointer, p.code) for r in results for p in r.errors}
    assert expected in problems
    assert any(r.event is None for r in results)


def test_samples_use_reserved_example_data_only():
    checked = 0
    for path in SAMPLES.rglob("*.json"):
        text = path.read_text(encoding="utf-8", errors="replace")
        for token in text.replace('"', " ").split():
            if "@" in token and "." in token.split("@")[-1]:
                assert token.rstrip(",").endswith(("example.com", "example.com}")), (path.name, token)
                checked += 1
    assert checked >= 30  # the email addresses across the samples


# Refusals the published JSON Schema expresses too (the rest need code: formats, lists, clocks).
SCHEMA_EXPRESSES = {"required", "not_clearable", "unknown_property", "unsupported_version", "type", "too_long"}


def _event_validator():
    import json

    from jsonschema import Draft202012Validator

    document = json.loads((SAMPLES.parent / "docs" / "openapi.json").read_text())
    schema = {"$ref": "#/components/schemas/CustomerEvent", "components": document["components"]}
    return Draft202012Validator(schema)


def _events(path: Path) -> list:
    body = read_batch(path.read_bytes(), "application/json", max_events=500, max_bytes=1 << 20)
    return body


@pytest.mark.parametrize("name", ["event.json", "batch.json", "shopify-style-mapped.json"])
def test_good_samples_match_the_published_schema(name):
    validator = _event_validator()
    items = _events(SAMPLES / name)
    assert len(items) >= (3 if name == "batch.json" else 1)
    for item in items:
        assert list(validator.iter_errors(item)) == []


@pytest.mark.parametrize(
    "name", sorted(n for n, e in EXPECTED.items() if not isinstance(e, int) and e[1] in SCHEMA_EXPRESSES)
)
def test_the_published_schema_refuses_what_validation_refuses(name):
    """A client generated from docs/openapi.json must not send what the API answers with 422."""
    validator = _event_validator()
    assert any(list(validator.iter_errors(item)) for item in _events(SAMPLES / "invalid" / name))
