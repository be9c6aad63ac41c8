"""A phone's extension through the pipeline (contract → create body, PATCH, blind PATCH), and what
PHONE_CLEAR_CONTACT makes a cleared phone do to the phone contact."""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime

import pytest

from shared.core.commerce_bodies.create import build_create_body
from shared.core.commerce_bodies.groups import blind_patch, changed_groups, group_hashes
from shared.core.commerce_bodies.patch import build_patch
from shared.core.settings import InvalidFieldPolicy, PhoneClear, load_settings
from shared.core.validation import validate_event
from tests.support.builders import FULL, KEY, event, known_entry, mapping, normalised
from tests.support.commerce_documents import assert_only_reference_properties, check, stored, stored_customer

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)


def clearing(mode: PhoneClear):
    return dataclasses.replace(mapping(), phone_clear=mode)


def result(policy=InvalidFieldPolicy.REJECT, **customer):
    raw = {
        "eventId": "evt-1",
        "occurredAt": "2026-11-26T11:00:00Z",
        "customer": {"email": "ada@example.com", **customer},
    }
    settings = dataclasses.replace(mapping(), invalid_field_policy=policy)
    return validate_event(raw, now=NOW, settings=settings, hash_key=KEY)


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "phone, extension",
    [
        ("(202) 555-0142 ext. 12", None),
        ("tel:+1-202-555-0142;ext=12", None),
        ("(202) 555-0142", "12"),
        ("(202) 555-0142", "x12"),
        ("(202) 555-0142 x12", "12"),
    ],
)
def test_an_extension_written_in_phone_or_sent_apart(phone, extension):
    customer = {"phone": phone} if extension is None else {"phone": phone, "phoneExtension": extension}
    e = result(**customer).event
    assert (e.phone, e.phone_extension) == ("+12025550142", "12")
    assert e.has("phone") and e.has("phoneExtension")


def test_a_phone_without_an_extension_clears_the_old_one():
    e = result(phone="(202) 555-0142").event
    assert e.phone_extension is None and e.has("phoneExtension")


def test_clearing_the_phone_clears_its_extension():
    e = result(phone=None).event
    assert (e.phone, e.phone_extension) == (None, None) and e.has("phoneExtension")


def test_an_extension_alone_changes_only_the_extension():
    e = result(phoneExtension="7").event
    assert e.phone_extension == "7" and not e.has("phone")
    e = result(phoneExtension=None).event
    assert e.phone_extension is None and e.has("phoneExtension") and not e.has("phone")


@pytest.mark.parametrize(
    "customer, pointer, code",
    [
        ({"phone": "(202) 555-0142 x12", "phoneExtension": "13"}, "/customer/phoneExtension", "conflict"),
        ({"phone": None, "phoneExtension": "13"}, "/customer/phoneExtension", "conflict"),
        ({"phoneExtension": "twelve"}, "/customer/phoneExtension", "invalid_phone_extension"),
        ({"phoneExtension": "12345678901"}, "/customer/phoneExtension", "too_long"),
        ({"phone": "1-800-FLOWERS"}, "/customer/phone", "invalid_phone"),
    ],
)
def test_bad_extensions_are_refused(customer, pointer, code):
    r = result(**customer)
    assert r.event is None and {p.pointer: p.code for p in r.errors}[pointer] == code


def test_under_the_drop_policy_every_dropped_field_is_a_warning():
    r = result(
        InvalidFieldPolicy.DROP,
        phone="(202) 555-0142 x12",
        phoneExtension="13",
        firstName="Ada",
        address={"country": "Narnia"},
    )
    assert r.event is not None and r.event.first_name == "Ada"
    assert not r.event.has("phone") and not r.event.has("phoneExtension") and r.event.address is None
    assert {(w.pointer, w.code) for w in r.warnings} == {
        ("/customer/phone", "conflict"),
        ("/customer/phoneExtension", "conflict"),
        ("/customer/address/country", "invalid_country"),
    }
    r = result(InvalidFieldPolicy.DROP, phone="1-800-FLOWERS", phoneExtension="13")
    assert not r.event.has("phone") and not r.event.has("phoneExtension")
    assert {(w.pointer, w.code) for w in r.warnings} == {
        ("/customer/phone", "invalid_phone"),
        ("/customer/phoneExtension", "phone_dropped"),
    }


def test_a_dropped_field_is_a_warning_in_the_answer_and_in_the_log(caplog):
    """The log record is the telemetry: every log line is a trace in Application Insights."""
    import json

    from shared.adapters.telemetry import Telemetry
    from shared.usecases.ingest import IngestDeps, handle_ingest
    from tests.support.ingest import SETTINGS, RecordingQueue

    settings = dataclasses.replace(
        SETTINGS, mapping=dataclasses.replace(SETTINGS.mapping, invalid_field_policy=InvalidFieldPolicy.DROP)
    )
    queue = RecordingQueue()
    deps = IngestDeps(settings=settings, queue=queue, telemetry=Telemetry(), clock=lambda: NOW)
    body = {
        "eventId": "evt-1",
        "occurredAt": "2026-11-26T11:00:00Z",
        "customer": {"email": "ada@example.com", "phone": "1-800-FLOWERS", "phoneExtension": "13"},
    }
    caplog.set_level(logging.WARNING)
    answer = handle_ingest(json.dumps(body).encode(), "application/json", "corr-1", deps)
    assert answer.status == 202 and len(queue.messages) == 1
    warned = {(w["pointer"], w["code"]) for w in answer.body["warnings"]}
    assert warned == {("/customer/phone", "invalid_phone"), ("/customer/phoneExtension", "phone_dropped")}
    logged = [r.getMessage() for r in caplog.records if "field dropped" in r.getMessage()]
    assert len(logged) == 2 and all("FLOWERS" not in line for line in logged)


# --- create, PATCH, blind PATCH ---------------------------------------------------------------


def test_the_create_body_carries_the_extension_on_the_customer_and_the_contact():
    body = build_create_body(normalised(**{**FULL, "phone": "(202) 555-0142 ext. 12"}), mapping())
    assert_only_reference_properties(body)
    assert body["Phone"] == "+12025550142" and body["PhoneExt"] == "12"
    phone_contact = [c for c in body["Contacts"] if c["AddressTypeValue"] == 1][0]
    assert phone_contact["Value"] == "+12025550142" and phone_contact["ValueExtension"] == "12"


def test_no_extension_no_extension_properties():
    body = build_create_body(normalised(**FULL), mapping())
    assert "PhoneExt" not in body and all("ValueExtension" not in c for c in body["Contacts"])


def test_a_changed_extension_patches_both_in_place():
    existing = stored(build_create_body(normalised(**{**FULL, "phone": "(202) 555-0142 x12"}), mapping()))
    phone_id = existing["Contacts"][1]["RecordId"]
    assert check(existing, **{**FULL, "phone": "(202) 555-0142 x12"}) is None
    patch = check(existing, **{**FULL, "phone": "(202) 555-0142 x13"})
    assert patch == {
        "AccountNumber": "004075",
        "PhoneExt": "13",
        "Contacts": [{"RecordId": phone_id, "ValueExtension": "13"}],
    }
    patch = check(existing, **{**FULL, "phone": "(202) 555-0142"})
    assert patch == {
        "AccountNumber": "004075",
        "PhoneExt": "",
        "Contacts": [{"RecordId": phone_id, "ValueExtension": ""}],
    }
    patch = check(existing, phoneExtension="99")
    assert patch == {
        "AccountNumber": "004075",
        "PhoneExt": "99",
        "Contacts": [{"RecordId": phone_id, "ValueExtension": "99"}],
    }


def test_the_blind_patch_sends_the_extension_when_set_or_when_one_may_be_stored():
    ev0 = event("evt-0", **{**FULL, "phone": "+1 202 555 0142"})
    customer = stored_customer(ev0)
    entry = known_entry(customer, ev0)
    assert "PhoneExt" in entry.empty_fields
    phone_id = customer["Contacts"][1]["RecordId"]
    ev1 = event("evt-1", **{**FULL, "phone": "+1 202 555 0199 ext. 4"})
    patch = blind_patch(ev1, entry, changed_groups(entry.hashes, group_hashes(ev1, KEY)), mapping())
    assert patch == {
        "Phone": "+12025550199",
        "PhoneExt": "4",
        "Contacts": [{"RecordId": phone_id, "Value": "+12025550199", "ValueExtension": "4"}],
    }
    # an extension may be stored: a phone without one clears it
    stored_ext = dataclasses.replace(entry, empty_fields=entry.empty_fields - {"PhoneExt"})
    ev2 = event("evt-2", **{**FULL, "phone": "+1 202 555 0177"})
    patch = blind_patch(ev2, stored_ext, ["phone"], mapping())
    assert patch["PhoneExt"] == "" and patch["Contacts"][0]["ValueExtension"] == ""
    # an extension alone: no Phone in the PATCH
    ev3 = event("evt-3", phoneExtension="5")
    patch = blind_patch(ev3, entry, ["phone"], mapping())
    assert patch == {"PhoneExt": "5", "Contacts": [{"RecordId": phone_id, "ValueExtension": "5"}]}


# --- PHONE_CLEAR_CONTACT ----------------------------------------------------------------------


def test_the_setting_defaults_to_keep_and_reads_every_mode():
    from tests.support.repo import SAMPLE

    env = {k: v for k, v in SAMPLE.items() if k != "PHONE_CLEAR_CONTACT"}
    assert load_settings(env).mapping.phone_clear is PhoneClear.KEEP
    for mode in PhoneClear:
        settings = load_settings({**env, "PHONE_CLEAR_CONTACT": mode.value.upper()})
        assert settings.mapping.phone_clear is mode


def _cleared(mode: PhoneClear) -> tuple[dict, dict | None]:
    existing = stored(build_create_body(normalised(**{**FULL, "phone": "(202) 555-0142 x12"}), mapping()))
    return existing, build_patch(existing, normalised(**{**FULL, "phone": None}), clearing(mode))


def test_keep_leaves_the_phone_contact_as_it_is():
    existing, patch = _cleared(PhoneClear.KEEP)
    assert patch == {"AccountNumber": "004075", "Phone": "", "PhoneExt": ""}


def test_blank_empties_the_phone_contacts_number_and_extension():
    existing, patch = _cleared(PhoneClear.BLANK)
    phone_id = existing["Contacts"][1]["RecordId"]
    assert patch == {
        "AccountNumber": "004075",
        "Phone": "",
        "PhoneExt": "",
        "Contacts": [{"RecordId": phone_id, "Value": "", "ValueExtension": ""}],
    }
    assert_only_reference_properties(patch)


def test_omit_sends_the_contacts_without_the_phone_contact():
    existing, patch = _cleared(PhoneClear.OMIT)
    email_contact = existing["Contacts"][0]
    assert patch["Contacts"] == [email_contact]
    assert patch["Phone"] == "" and patch["PhoneExt"] == ""


def test_clear_modes_in_the_blind_patch():
    ev0 = event("evt-0", **FULL)
    customer = stored_customer(ev0)
    entry = known_entry(customer, ev0)
    phone_id = customer["Contacts"][1]["RecordId"]
    ev1 = event("evt-1", **{**FULL, "phone": None})
    assert blind_patch(ev1, entry, ["phone"], clearing(PhoneClear.KEEP)) == {"Phone": ""}
    assert blind_patch(ev1, entry, ["phone"], clearing(PhoneClear.BLANK)) == {
        "Phone": "",
        "Contacts": [{"RecordId": phone_id, "Value": "", "ValueExtension": ""}],
    }
    assert blind_patch(ev1, entry, ["phone"], clearing(PhoneClear.OMIT)) is None  # read, then diff


def test_the_emulator_accepts_and_stores_a_blank_phone_contact():
    from commerce_emulator.documents import apply_patch
    from tests.support.commerce_documents import FakeIds

    ev0 = event("evt-0", **{**FULL, "phone": "+1 202 555 0142 x12"})
    customer = stored_customer(ev0)
    ev1 = event("evt-1", **{**FULL, "phone": None})
    patch = build_patch(customer, ev1, clearing(PhoneClear.BLANK))
    updated, problems = apply_patch(customer, patch, FakeIds(7_000_000_000))
    assert problems == []
    phone = [c for c in updated["Contacts"] if c["AddressTypeValue"] == 1][0]
    assert (phone["Value"], phone["ValueExtension"], updated["Phone"], updated["PhoneExt"]) == ("", "", "", "")


def test_log_names_no_value(caplog):
    caplog.set_level(logging.DEBUG)
    result(phone="(202) 555-0142 x12", phoneExtension="13")
    assert "555" not in caplog.text
