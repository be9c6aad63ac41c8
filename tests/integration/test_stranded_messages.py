"""Messages no queue trigger can read (not base64) end as dead letters, through the queue-monitor timer.

The host moves such a message from the event queue to ``-poison`` at once; the poison collector cannot
decode it either, so it goes on to ``-poison-poison`` (locally, or wherever the identity may create that
queue) or keeps coming back in ``-poison`` (in Azure, where it may not). The timer collects both.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from base64 import b64encode

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.functions.timer import TimerRequest
from azure.storage.queue import QueueClient

import function_app
from devhost.bindings import discover
from devhost.invoke import FunctionExecutor
from shared.adapters.storage import ensure_queue
from shared.core import telemetry_names as names
from shared.usecases.queue_monitor import report
from tests.support.stack import Stack, event

pytestmark = pytest.mark.integration

EMAIL_HASH = "ab" * 32
# A sender that queued the envelope's JSON itself, without base64: readable to a person, not to the host.
PLAIN_JSON = json.dumps(
    {
        "v": 1,
        "ingestedAt": "2026-11-26T10:00:00+00:00",
        "correlationId": "c-1",
        "event": {"eventId": "evt-plain", "emailHash": EMAIL_HASH, "email": "ada.lovelace@example.com"},
    }
)
JUNK = "%% not base64: grace@example.com %%"


def raw(stack: Stack, suffix: str = "", *, create: bool = False) -> QueueClient:
    """A client that reads and writes message text as stored, with no base64 either way."""
    client = QueueClient.from_connection_string(
        stack.env["AzureWebJobsStorage"], stack.runtime.settings.events_queue + suffix
    )
    if create:
        ensure_queue(client)
    return client


def stored(client: QueueClient) -> int:
    """Messages in the queue, invisible ones included; 0 while the queue does not exist."""
    try:
        return client.get_queue_properties().approximate_message_count or 0
    except ResourceNotFoundError:
        return 0


def run_timer(stack: Stack) -> None:
    """The timer function as the host calls it (its schedule never fires during a test)."""
    (timer,) = discover(function_app.app, stack.env, [names.FUNCTION_QUEUE_MONITOR]).timers
    timer.invoker(TimerRequest(past_due=False), FunctionExecutor(1))


def assert_nothing_leaked(stack: Stack, caplog) -> None:
    text = caplog.text + "\n".join(r.getMessage() for r in stack.telemetry.records)
    assert "ada.lovelace@example.com" not in text and "grace@example.com" not in text
    assert "Traceback" not in text


def test_non_base64_messages_on_the_event_queue_end_as_dead_letters(stack, caplog):
    caplog.set_level(logging.DEBUG, logger="devhost")
    caplog.set_level(logging.DEBUG, logger="customer_sync")
    raw(stack).send_message(PLAIN_JSON)
    raw(stack).send_message(JUNK)
    stack.wait()
    # What the host does with them: moved to -poison without an invocation, then on from there.
    last = raw(stack, "-poison-poison")
    assert sorted(m.content for m in last.peek_messages(max_messages=32)) == sorted([PLAIN_JSON, JUNK])
    assert stack.deadletters() == []

    run_timer(stack)

    letters = {d.event_id: d for d in stack.deadletters()}
    plain = letters.pop("evt-plain")
    assert (plain.reason, plain.email_hash, plain.envelope) == ("unreadable_message", EMAIL_HASH, PLAIN_JSON)
    [(junk_id, junk)] = letters.items()
    assert junk_id.startswith("unreadable-") and junk.reason == "unreadable_message"
    assert junk.envelope == JUNK and junk.email_hash == "unknown"
    for name in ("", "-poison", "-poison-poison"):
        assert stored(raw(stack, name)) == 0, name
    alerts = stack.telemetry.custom_events(names.EVENT_DEAD_LETTERED)
    assert sorted(r.reason for r in alerts) == ["unreadable_message", "unreadable_message"]
    assert_nothing_leaked(stack, caplog)


def test_a_message_stuck_in_the_poison_queue_is_collected_and_a_readable_one_left_to_the_collector(
    stack_factory, caplog
):
    """In Azure the host may not create -poison-poison: the unreadable message stays in -poison."""
    stack = stack_factory(queues=False)
    poison = raw(stack, "-poison", create=True)
    poison.send_message(JUNK)
    readable = b64encode(b'{"v": 1}').decode()
    poison.send_message(readable)

    run_timer(stack)

    [letter] = stack.deadletters()
    assert (letter.reason, letter.envelope) == ("unreadable_message", JUNK)
    # Released at once, not held until its invisibility ran out: the collector gets it right away.
    [left] = poison.peek_messages(max_messages=32)
    assert left.content == readable
    assert stored(raw(stack, "-poison-poison")) == 0
    assert_nothing_leaked(stack, caplog)


@pytest.mark.parametrize("suffix", ["-backfill-poison", "-backfill-poison-poison"])
def test_unreadable_messages_of_the_backfill_queue_are_kept_too(stack_factory, caplog, suffix):
    stack = stack_factory(queues=False)
    raw(stack, suffix, create=True).send_message(JUNK)

    run_timer(stack)

    [letter] = stack.deadletters()
    assert (letter.reason, letter.envelope) == ("unreadable_message", JUNK)
    assert stored(raw(stack, suffix)) == 0
    assert_nothing_leaked(stack, caplog)


def test_a_readable_message_the_collector_gave_up_on_is_kept_with_its_envelope(stack_factory):
    stack = stack_factory(queues=False)
    last = raw(stack, "-poison-poison", create=True)
    envelope = json.dumps({"v": 1, "event": {"eventId": "evt-9", "emailHash": EMAIL_HASH}})
    last.send_message(b64encode(envelope.encode()).decode())

    run_timer(stack)

    [letter] = stack.deadletters()
    assert (letter.event_id, letter.reason, letter.envelope) == ("evt-9", "max_dequeue_exceeded", envelope)
    assert stored(last) == 0


def test_each_run_collects_a_bounded_number(stack_factory):
    stack = stack_factory(queues=False)
    last = raw(stack, "-poison-poison", create=True)
    for index in range(5):
        last.send_message(f"junk {index} !")
    stranded = [dataclasses.replace(pair, limit=3) for pair in stack.runtime.stranded_queues()]
    rt = stack.runtime

    report(rt.monitored_queues(), rt.deadletters, 30, rt.telemetry, function_app.utcnow(), stranded=stranded)
    assert (len(stack.deadletters()), stored(last)) == (3, 2)
    report(rt.monitored_queues(), rt.deadletters, 30, rt.telemetry, function_app.utcnow(), stranded=stranded)
    assert (len(stack.deadletters()), stored(last)) == (5, 0)


def test_a_message_stays_queued_when_its_dead_letter_cannot_be_written(stack_factory, caplog):
    stack = stack_factory(queues=False)
    poison, last = raw(stack, "-poison", create=True), raw(stack, "-poison-poison", create=True)
    poison.send_message(JUNK)
    last.send_message(JUNK)

    def refuse(letter):
        raise ConnectionError("table storage unavailable")

    stack.runtime.deadletters.put = refuse
    caplog.set_level(logging.WARNING)
    rt = stack.runtime
    readings = report(
        rt.monitored_queues(), rt.deadletters, 30, rt.telemetry, function_app.utcnow(), stranded=rt.stranded_queues()
    )

    assert (stored(poison), stored(last)) == (1, 1)  # invisible for a while, then back for the next run
    assert caplog.text.count("dead letter not written (ConnectionError)") == 2
    # The metrics are still reported, the unreadable message counted (a decoding client could not peek it).
    assert {r.queue: r.depth for r in readings}[rt.settings.poison_queue] == 1
    run_timer(stack)  # and the timer itself does not fail
    assert_nothing_leaked(stack, caplog)


def test_metrics_and_the_event_queue_are_untouched_by_the_collection(stack_factory):
    stack = stack_factory(queues=False)
    assert stack.post(event(1)).status_code == 202
    run_timer(stack)
    assert stored(raw(stack)) == 1 and stack.deadletters() == []


# A sender's JSON whose event id is a lone surrogate (the escape, in the text): no table key can hold it.
LONE_SURROGATE_ID = '{"v":1,"event":{"eventId":"\\ud800x"}}'


def test_a_message_whose_id_cannot_be_a_key_and_those_behind_it_end_as_dead_letters(stack_factory, caplog):
    stack = stack_factory(queues=False)
    poison = raw(stack, "-poison", create=True)
    poison.send_message(LONE_SURROGATE_ID)
    poison.send_message(JUNK)

    run_timer(stack)

    letters = {d.envelope: d for d in stack.deadletters()}
    assert sorted(letters) == sorted([LONE_SURROGATE_ID, JUNK])
    assert letters[LONE_SURROGATE_ID].event_id.startswith("unreadable-")  # keyed by its digest
    assert stored(poison) == 0
    assert "dead letter not written" not in caplog.text
    assert_nothing_leaked(stack, caplog)


def test_a_message_over_a_table_cell_is_kept_whole(stack_factory, caplog):
    """Azurite, like Azure, refuses a string property over 32K UTF-16 units (PropertyValueTooLarge)."""
    stack = stack_factory(queues=False)
    poison = raw(stack, "-poison", create=True)
    big = "not base64: " + "0123456789" * 4_000  # 40K characters
    poison.send_message(big)
    poison.send_message(JUNK)

    run_timer(stack)

    letters = {d.envelope: d for d in stack.deadletters()}
    assert sorted(letters) == sorted([big, JUNK])  # read back joined, exactly as queued
    assert stored(poison) == 0
    assert "dead letter not written" not in caplog.text


def test_a_message_the_store_refuses_does_not_stop_the_collection(stack_factory, caplog):
    stack = stack_factory(queues=False)
    last = raw(stack, "-poison-poison", create=True)
    for text in ("junk 1 !", "refused !", "junk 3 !"):
        last.send_message(text)
    store, put = stack.runtime.deadletters, stack.runtime.deadletters.put

    def refuse_one(letter):
        if letter.envelope == "refused !":
            error = HttpResponseError(message="InvalidInput", response=None)
            error.status_code = 400
            raise error
        put(letter)

    store.put = refuse_one
    caplog.set_level(logging.WARNING)

    run_timer(stack)

    assert sorted(d.envelope for d in stack.deadletters()) == ["junk 1 !", "junk 3 !"]
    assert stored(last) == 1  # the refused one, invisible for a while and then back for the next run
    assert "1 stranded message(s) on" in caplog.text and "stopped" not in caplog.text
