"""What Commerce quotes back of an event never reaches a log line, a re-sent message or a dead letter:
the processor masks a failure's message with the values the event sent, in every encoding."""

from __future__ import annotations

import logging
import urllib.parse

import pytest

from shared.core.commerce_errors import RUNTIME_PREFIX, CommerceServerError, CommerceValidationError
from shared.core.dead_letters import DeadLetter, describe, safe_message
from shared.core.telemetry_names import Outcome
from tests.support.builders import event
from tests.support.processor_world import World, at, envelope

EMAIL = "Zoë.O'Brien@Example.com"
PERSON = dict(
    firstName="Zoë",
    lastName="O'Brien",
    phone="(206) 555-0142",
    address={"street": "1 Main St", "city": "Seattle", "postalCode": "98101", "country": "US"},
)
RID = RUNTIME_PREFIX + "RequiredValueNotFound"


def echo() -> str:
    """A message quoting the submitted values, as a real server might (the client masks only emails,
    phones and tokens: names and address parts pass)."""
    return (
        f"A value for 'TaxGroup' is required. Customer ZOË O'BRIEN ({urllib.parse.quote(EMAIL, safe='')}), "
        f"first name Zo&#235;, last name O\\u0027Brien, street 1%20Main%20St, SEATTLE 98101, "
        f"tel %2B12065550142"
    )


FORBIDDEN = [
    "zoë",
    "zo&#235;",
    "o'brien",
    "o\\u0027brien",
    "example.com",
    "1%20main",
    "main st",
    "seattle",
    "98101",
    "2065550142",
    "%2b1206",
]


def leaks(text: str) -> list[str]:
    return [s for s in FORBIDDEN if s in text.lower()]


@pytest.fixture
def world() -> World:
    return World()


def test_a_refusal_echoing_the_event_is_dead_lettered_and_logged_masked(world, caplog):
    ev = event("evt-1", at(0), email=EMAIL, **PERSON)
    world.commerce.fail(
        "create",
        CommerceValidationError(
            echo(), operation="create", status=400, error_resource_id=RID, member_names=["TaxGroup"]
        ),
    )
    with caplog.at_level(logging.DEBUG):
        result = world.send(envelope(ev))
    assert result.outcome is Outcome.DEAD_LETTERED
    [letter] = world.deadletters.letters
    assert leaks(letter.message) == [] and leaks(result.failure.message) == []
    assert letter.error_resource_id == RID and letter.status == 400 and letter.reason == "commerce_rejected"
    assert "create HTTP 400 " + RID in letter.message and "'TaxGroup' is required" in letter.message
    assert "(members: TaxGroup)" in letter.message and "<name>" in letter.message
    assert "<address>" in letter.message and "<email>" in letter.message
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "dead-lettered" in logged and RID in logged and leaks(logged) == []


def test_a_transient_failure_echoing_the_event_is_retried_and_logged_masked(world, caplog):
    ev = event("evt-1", at(0), email=EMAIL, **PERSON)
    world.commerce.fail("create", CommerceServerError(echo(), operation="create", status=503))
    with caplog.at_level(logging.DEBUG):
        result = world.send(envelope(ev))
    assert result.outcome is Outcome.RETRYING and leaks(result.failure.message) == []
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "trying again" in logged and "HTTP 503" in logged and leaks(logged) == []


def test_the_stored_and_listed_message_is_masked_with_the_letters_own_event(world):
    """A dead letter written by an older version (its message unmasked) is masked when shown, and the
    Message column is masked when stored, from the values of the event in the letter's envelope."""
    ev = event("evt-1", at(0), email=EMAIL, **PERSON)
    letter = DeadLetter(
        email_hash=ev.email_hash,
        event_id="evt-1",
        reason="commerce_rejected",
        message=f"create HTTP 400 {RID}: {echo()}",
        error_resource_id=RID,
        status=400,
        attempts=1,
        first_seen_at=None,
        dead_lettered_at=at(1),
        envelope=envelope(ev).to_json(),
    )
    assert leaks(safe_message(letter)) == [] and RID in safe_message(letter)
    shown = describe(letter)
    assert leaks(shown["message"]) == [] and shown["errorResourceId"] == RID and shown["status"] == 400
    unreadable = DeadLetter(
        email_hash="unknown",
        event_id="x",
        reason="unreadable_message",
        message="ann%40example.com",
        error_resource_id=None,
        status=None,
        attempts=1,
        first_seen_at=None,
        dead_lettered_at=at(1),
        envelope="{not json",
    )
    assert safe_message(unreadable) == "<email>"


def test_a_truncated_value_and_utf16_escaped_echo_are_masked_in_the_dead_letter(world):
    """SQL Server quotes a cut value mid-message (error 2628); a .NET server escapes every character
    outside ASCII, one UTF-16 unit at a time; OData doubles the quote of O'Brien in a filter."""
    ev = event(
        "evt-1",
        at(0),
        email="christopher.obrien@example.com",
        firstName="Christopher",
        lastName="O'Brien-𠮷田",
        address={"street": "1 Main St", "city": "Seattle", "country": "US"},
    )
    message = (
        "String or binary data would be truncated in table 'crt.dbo.CUSTTABLE', column 'NAME'. "
        "Truncated value: 'Christop'. Entity {\"LastName\":\"O'Brien-\\ud842\\udfb7\\u7530\"}; "
        "$filter=LastName eq 'O''Brien'"
    )
    world.commerce.fail(
        "create", CommerceValidationError(message, operation="create", status=400, error_resource_id=RID)
    )
    result = world.send(envelope(ev))
    assert result.outcome is Outcome.DEAD_LETTERED
    [letter] = world.deadletters.letters
    for leaked in ("christop", "brien", "\\ud842", "\\u7530"):
        assert leaked not in letter.message.lower(), (leaked, letter.message)
    assert "Truncated value: '<name>'." in letter.message and "column 'NAME'" in letter.message
    assert "$filter=LastName eq '<name>'" in letter.message
