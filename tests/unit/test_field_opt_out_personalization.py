"""optOutPersonalization, added as one record of shared/core/fields.py: validated, published, created,
PATCHed (read then diff, and blind) and grouped like the table says, with nothing else written for it."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import hmac
import json
from pathlib import Path

from commerce_emulator.documents import apply_patch
from commerce_emulator.schema import CUSTOMER, check_entity
from shared.core.commerce_bodies.create import build_create_body
from shared.core.commerce_bodies.groups import group_hashes, restrict
from shared.core.commerce_bodies.patch import build_patch
from shared.core.fields import FIELD
from shared.core.ledger_rules import carried_groups
from shared.core.settings import InvalidFieldPolicy
from shared.core.validation import EventResult
from tests.support.builders import FULL, KEY, NOW, event, mapping, normalised
from tests.support.commerce_documents import FakeIds, assert_only_reference_properties, check, stored, stored_customer
from tests.support.patches import patch_for
from tests.support.validation import check as check_event
from tests.support.validation import event as event_with
from tests.support.validation import mapping as validation_mapping

OPENAPI = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def validate(policy: InvalidFieldPolicy = InvalidFieldPolicy.REJECT, **customer) -> EventResult:
    return check_event(event_with(**customer), settings=validation_mapping(policy))


def test_the_record():
    f = FIELD["optOutPersonalization"]
    assert (f.attr, f.commerce, f.group, f.type, f.null.value) == (
        "opt_out_personalization",
        "OptOutPersonalization",
        "consent",
        bool,
        "refused",
    )
    assert f.scalar and f.default is None


# --- validation ---------------------------------------------------------------------------------------


def test_true_and_false_are_kept_and_absent_is_unchanged():
    for value in (True, False):
        e = validate(optOutPersonalization=value).event
        assert e.opt_out_personalization is value and e.has("optOutPersonalization")
    e = validate().event
    assert e.opt_out_personalization is None and not e.has("optOutPersonalization")


def test_null_and_non_booleans_are_refused_with_the_usual_messages():
    refused = validate(optOutPersonalization=None)
    assert [p.model_dump() for p in refused.errors] == [
        {
            "pointer": "/customer/optOutPersonalization",
            "message": "cannot be cleared with null; leave it out to keep the current value",
            "code": "not_clearable",
        }
    ]
    for value in ("true", 1, "", [], {}):
        result = validate(optOutPersonalization=value)
        assert [(p.pointer, p.message, p.code) for p in result.errors] == [
            ("/customer/optOutPersonalization", "must be true or false", "type")
        ], value


def test_problems_are_listed_in_contract_order():
    result = validate(isOptedInMarketing="x", optOutPersonalization="x", language=None)
    assert [p.pointer for p in result.errors] == [
        "/customer/isOptedInMarketing",
        "/customer/optOutPersonalization",
        "/customer/language",
    ]


def test_the_drop_policy_leaves_an_invalid_value_out_with_a_warning():
    result = validate(InvalidFieldPolicy.DROP, optOutPersonalization="yes", firstName="Ada")
    assert result.errors == [] and not result.event.has("optOutPersonalization")
    assert [(w.pointer, w.message) for w in result.warnings] == [
        ("/customer/optOutPersonalization", "must be true or false; left out")
    ]


def test_the_queue_message_round_trips():
    e = validate(optOutPersonalization=True).event
    message = json.loads(e.to_json())
    assert message["optOutPersonalization"] is True
    assert type(e).model_validate_json(e.to_json()) == e


def test_a_message_of_an_event_without_it_does_not_name_it():
    """So a worker of the previous version, whose reader refuses unknown keys, still reads it (as
    after a rollback); fields the event did not carry are left out, and read back as None."""
    e = validate(firstName="Ada", middleName=None).event
    message = json.loads(e.to_json())
    assert "optOutPersonalization" not in message and "lastName" not in message
    assert message["firstName"] == "Ada" and message["middleName"] is None  # carried: kept, null included
    assert type(e).model_validate_json(e.to_json()) == e


# --- the published contract -----------------------------------------------------------------------------


def test_openapi_publishes_it_as_an_optional_non_nullable_boolean():
    customer = json.loads(OPENAPI.read_text(encoding="utf-8"))["components"]["schemas"]["CustomerIn"]
    assert customer["properties"]["optOutPersonalization"] == {
        "description": FIELD["optOutPersonalization"].description,
        "title": "Optoutpersonalization",
        "type": "boolean",
    }
    assert "optOutPersonalization" not in customer["required"]
    names = list(customer["properties"])
    assert names.index("optOutPersonalization") == names.index("isOptedInMarketing") + 1


# --- create -----------------------------------------------------------------------------------------------


def test_create_sends_the_value_false_included_and_nothing_when_absent():
    for value in (True, False):
        body = build_create_body(normalised(**FULL, optOutPersonalization=value), mapping())
        assert_only_reference_properties(body)
        assert body["OptOutPersonalization"] is value
    assert "OptOutPersonalization" not in build_create_body(normalised(**FULL), mapping())


def test_the_emulator_stores_it():
    body = build_create_body(normalised(optOutPersonalization=True), mapping())
    assert check_entity(body, CUSTOMER, "", strict=True) == []
    assert stored_customer(event(optOutPersonalization=True))["OptOutPersonalization"] is True
    assert stored_customer(event())["OptOutPersonalization"] is False  # Commerce's default


# --- PATCH: read, then diff ----------------------------------------------------------------------------


def test_patch_sends_only_a_changed_value():
    existing = stored(build_create_body(normalised(**FULL), mapping()))
    assert existing["OptOutPersonalization"] is False
    assert check(existing, optOutPersonalization=True) == {"AccountNumber": "004075", "OptOutPersonalization": True}
    assert check(existing, optOutPersonalization=False) is None  # false equals Commerce's unset default
    opted_out = stored(build_create_body(normalised(**FULL, optOutPersonalization=True), mapping()))
    assert check(opted_out, optOutPersonalization=True) is None
    assert check(opted_out, optOutPersonalization=False) == {"AccountNumber": "004075", "OptOutPersonalization": False}
    assert check(opted_out) is None  # absent: unchanged


def test_the_patch_is_what_the_emulator_accepts():
    customer = stored_customer(event())
    patch = build_patch(copy.deepcopy(customer), event("evt-1", optOutPersonalization=True), mapping())
    doc, problems = apply_patch(copy.deepcopy(customer), patch, FakeIds(9_000_000_000_000))
    assert problems == [] and check_entity(patch, CUSTOMER, "", strict=True) == []
    assert doc["OptOutPersonalization"] is True


# --- the consent group, hashes and the blind PATCH ----------------------------------------------------


def test_it_is_in_the_consent_group():
    assert carried_groups(event(optOutPersonalization=True)) == {"consent"}
    a = group_hashes(event(**FULL), KEY)
    b = group_hashes(event(**FULL, optOutPersonalization=True), KEY)
    assert {g for g in b if a.get(g) != b[g]} == {"consent"}


def test_hashes_of_events_without_it_are_those_the_ledger_already_holds():
    # the consent hash is over the fields an event carries, in the group's order: adding a field to
    # the group leaves every recorded hash valid
    text = json.dumps(["consent", [["isOptedInMarketing", True]]], sort_keys=True, separators=(",", ":"))
    expected = hmac.new(KEY, text.encode(), hashlib.sha256).hexdigest()[:32]
    assert group_hashes(event(isOptedInMarketing=True), KEY)["consent"] == expected


def test_the_blind_patch_sends_it_without_reading_the_customer():
    no_consent = {k: v for k, v in FULL.items() if k != "isOptedInMarketing"}
    patch, _, groups = patch_for(no_consent, {**no_consent, "optOutPersonalization": True})
    assert groups == ["consent"] and patch == {"OptOutPersonalization": True}
    # the group is written whole: the marketing consent the event carries goes with it
    patch, _, groups = patch_for(FULL, {**FULL, "optOutPersonalization": True})
    assert groups == ["consent"] and patch["OptOutPersonalization"] is True
    assert {c["IsOptedInMarketing"] for c in patch["Contacts"]} == {True}
    # alone it needs no contact record id (unlike isOptedInMarketing)
    patch, _, _ = patch_for(FULL, {"optOutPersonalization": True}, email_contact_record_id=None)
    assert patch == {"OptOutPersonalization": True}


def test_with_marketing_consent_one_patch_carries_both():
    patch, customer, groups = patch_for(FULL, {**FULL, "isOptedInMarketing": False, "optOutPersonalization": True})
    email_contact, phone_contact = customer["Contacts"]
    assert groups == ["consent"]
    assert patch == {
        "OptOutPersonalization": True,
        "Contacts": [
            {"RecordId": email_contact["RecordId"], "IsOptedInMarketing": False},
            {"RecordId": phone_contact["RecordId"], "IsOptedInMarketing": False},
        ],
    }


def test_an_event_narrowed_away_from_consent_drops_it():
    ev = event(**FULL, optOutPersonalization=True)
    narrowed = restrict(ev, frozenset({"name"}))
    assert narrowed.opt_out_personalization is None and not narrowed.has("optOutPersonalization")
    assert restrict(ev, frozenset({"consent"})).opt_out_personalization is True


def test_backfill_files_and_webhook_mapping_files_can_map_it(tmp_path):
    """Their targets come from the table: the new field is mappable with no change to either reader."""
    from shared.core.bulkfile import file_digest, mapping_from_pairs, read_records
    from shared.core.sources import declarative

    path = tmp_path / "crm.csv"
    path.write_text("E-mail,No personalisation\nz@example.com,yes\n", encoding="utf-8")
    pairs = mapping_from_pairs(["customer.email=E-mail", "customer.optOutPersonalization=No personalisation"])
    rows = list(read_records(path, as_of=NOW, digest=file_digest(path), mapping=pairs))
    assert rows[0].event["customer"] == {"email": "z@example.com", "optOutPersonalization": True}
    assert "customer.optOutPersonalization" in declarative.TARGETS


def test_a_source_create_default_is_normalised_by_its_field_record(monkeypatch):
    """createDefaults are read through the table: a field given a create default is accepted and
    normalised there, with no list of default fields kept anywhere else."""
    from shared.core import fields
    from shared.core.sources import config

    record = fields.FIELD["customerGroup"]
    normalised = config._create_defaults({"customerGroup": "  WEB  ", "currencyCode": "eur", "language": "de-DE"})
    assert (normalised.customer_group, normalised.currency_code, normalised.language) == ("WEB", "EUR", "de-de")
    lowered = dataclasses.replace(record, normalise=lambda value, limit, now: value.lower())
    monkeypatch.setitem(fields.FIELD, "customerGroup", lowered)  # the record decides
    assert config._create_defaults({"customerGroup": "WEB"}).customer_group == "web"
