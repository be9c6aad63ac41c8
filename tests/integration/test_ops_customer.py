"""tools.customer on real parts: one customer's story, and its erasure followed by late events."""

from __future__ import annotations

import base64
import io
import json
import logging
from datetime import UTC, datetime

import pytest

from shared.core.dead_letters import DeadLetter
from shared.core.envelope import Envelope
from shared.core.ledger_rules import State
from shared.core.privacy import email_hash
from tests.support.stack import event
from tools import customer

pytestmark = pytest.mark.integration

ADA = "ada.lovelace@example.com"


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return False


def run(args: list[str], email: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = customer.main(args, out=out, stdin=Tty(email + "\n"), stderr=err)
    return code, out.getvalue(), err.getvalue()


def hashed(stack, email: str) -> str:
    return email_hash(email.lower(), stack.runtime.settings.email_hash_key)


def plant_failures(stack, email: str, event_id: str) -> None:
    """A dead letter and a poison-queue copy of one event of ``email``."""
    from shared.core.validation import validate_event

    settings = stack.runtime.settings
    now = datetime.now(UTC)
    result = validate_event(
        event(event_id, email=email, firstName="Ada"),
        now=now,
        settings=settings.mapping,
        hash_key=settings.email_hash_key,
    )
    text = Envelope.wrap(result.event, ingested_at=now, correlation_id="c").to_json()
    stack.runtime.deadletters.put(
        DeadLetter(
            email_hash=result.event.email_hash,
            event_id=result.event.event_id,
            reason="commerce_rejected",
            message=f"rejected {email}",
            error_resource_id=None,
            status=400,
            attempts=1,
            first_seen_at=now,
            dead_lettered_at=now,
            envelope=text,
        )
    )
    poison = stack.storage.queue_service().get_queue_client(settings.poison_queue)
    try:
        poison.create_queue()
    except Exception:  # noqa: BLE001 - exists
        pass
    poison.send_message(base64.b64encode(text.encode()).decode(), time_to_live=-1)


def test_the_story_of_one_customer_names_it_by_hash_and_never_takes_the_email_from_argv(stack_factory):
    stack = stack_factory(poison=False)
    stack.post(event(1, email=ADA, firstName="Ada"))
    stack.wait()
    plant_failures(stack, ADA, "failed")
    before = stack.runtime.ledger.read(hashed(stack, ADA))
    stack.emulator.reset_calls()
    code, out, _ = run([], ADA)
    assert code == 0, out
    # Reading the story writes nothing.
    assert (stack.emulator.calls()["create"], stack.emulator.calls()["update"]) == (0, 0)
    assert stack.runtime.ledger.read(hashed(stack, ADA)).etag == before.etag
    entry = stack.runtime.ledger.read(hashed(stack, ADA))
    assert f"email #{hashed(stack, ADA)}" in out
    assert f"account={entry.account_number}" in out and "last event=evt-1" in out
    assert "search match" in out and entry.account_number in out
    assert "dead letters: 1" in out and "commerce_rejected" in out and "evt-failed" in out
    assert ADA not in out  # the dead letter's message is masked, the email is named by hash
    assert f'customDimensions.email_hash) == "{hashed(stack, ADA)}"' in out
    view = json.loads(run(["--json"], ADA)[1])
    assert view["ledger"]["state"] == "applied" and view["lastAppliedEvent"]["eventId"] == "evt-1"
    # No email argument exists at all.
    with pytest.raises(SystemExit):
        customer.main(["--email", ADA], out=io.StringIO(), stdin=Tty(""), stderr=io.StringIO())


def test_erasure_keeps_ordering_and_a_late_event_cannot_bring_the_data_back(stack_factory, caplog):
    stack = stack_factory(poison=False)
    stack.post(event(1, email=ADA, firstName="Ada"))
    stack.wait()
    plant_failures(stack, ADA, "failed")
    plant_failures(stack, "someone.else@example.com", "other")
    before = stack.runtime.ledger.read(hashed(stack, ADA))

    with caplog.at_level(logging.INFO, logger="customer_sync"):
        code, out, err = run(["--forget", "--yes"], ADA)
    assert code == 0, err
    report = json.loads(out.splitlines()[0])
    assert report == {
        "emailHash": hashed(stack, ADA),
        "ledger": "forgotten",
        "deadLetters": 1,
        "poisonMessages": 1,
        "senderRecords": 0,
    }
    assert before.account_number in out  # named to the operator once, for headquarters
    # The tombstone: ordering key and recent ids, nothing else.
    entry = stack.runtime.ledger.read(hashed(stack, ADA))
    assert entry.state is State.FORGOTTEN and entry.account_number is None and entry.hashes == {}
    assert entry.recent_event_ids == before.recent_event_ids and entry.last > before.last
    assert entry.address_record_id is None and entry.email_contact_record_id is None
    # Only this email's dead letters and poison copies went.
    assert [d.event_id for d in stack.deadletters()] == ["evt-other"]
    poison = stack.storage.queue(stack.runtime.settings.poison_queue)
    left = [json.loads(m.content)["event"]["eventId"] for m in poison.peek_messages(max_messages=32)]
    assert left == ["evt-other"]
    # Logged by hash only.
    erased = [r for r in caplog.records if r.name == "customer_sync.erasure"]
    assert erased and all(ADA not in r.getMessage() for r in caplog.records)
    assert hashed(stack, ADA) in erased[0].getMessage()

    # A late event that happened before the erasure (newer than the last one applied): stale, no call.
    stack.emulator.reset_calls()
    stack.post(event(2, email=ADA, occurred="2026-11-26T11:00:00+00:00", firstName="Late"))
    stack.wait()
    assert stack.telemetry.outcomes()[-1] == "stale"
    assert stack.emulator.calls()["total"] == 0
    # A redelivery of the last one: duplicate.
    stack.post(event(1, email=ADA, firstName="Ada"))
    stack.wait()
    assert stack.telemetry.outcomes()[-1] == "duplicate"
    # An event after the erasure is a new story: found by search, updated.
    stack.post(event(3, email=ADA, occurred=datetime.now(UTC).isoformat(), firstName="Augusta"))
    stack.wait()
    assert stack.telemetry.outcomes()[-1] == "updated"
    assert stack.emulator.calls()["search"] == 1
    assert stack.runtime.ledger.read(hashed(stack, ADA)).state is State.APPLIED
    # Erasing twice is harmless.
    code, out, _ = run(["--forget", "--yes"], ADA)
    assert code == 0 and json.loads(out.splitlines()[0])["deadLetters"] == 0


def test_forget_without_a_terminal_needs_yes(stack_factory):
    stack = stack_factory(poison=False)
    code, _, err = run(["--forget"], ADA)
    assert code == 2 and "--yes" in err
    assert stack.runtime.ledger.read(hashed(stack, ADA)) is None
