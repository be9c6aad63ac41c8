"""Messages no trigger can read become dead letters whatever their text holds, and one that cannot be
kept does not stop the queue monitor's collection of the messages behind it.

The fake table applies Azure Table's rules that matter here (and that Azurite enforces too): keys
without ``/\\#?`` or control characters, at most 1 KiB; a string property at most 32K UTF-16 units."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from shared.adapters import dead_letter_table as dl
from shared.adapters.dead_letter_table import DeadLetterStore
from shared.adapters.telemetry import Telemetry
from shared.core.envelope import peek_identity
from shared.usecases.processor import ProcessorDeps, keep_stranded
from shared.usecases.queue_monitor import FAILURES_PER_RUN, StrandedQueues, collect_stranded

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SURROGATE_ID = '{"v":1,"event":{"eventId":"\\ud800x"}}'  # JSON text: the escape, not the character


class TableLimits(Exception):
    pass


class FakeTable:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], dict] = {}

    def upsert_entity(self, entity: dict, mode=None) -> None:
        for key in ("PartitionKey", "RowKey"):
            value = entity[key]
            if len(value) > 1024 or any(c in value for c in "/\\#?") or not value.isprintable():
                raise TableLimits(f"bad {key}")
        for _name, value in entity.items():
            if isinstance(value, str):
                units = len(value.encode("utf-16-le", "surrogatepass")) // 2
                if units > 32 * 1024:
                    raise HttpResponseError(message="PropertyValueTooLarge", response=None)
        json.dumps(entity, default=str).encode("utf-8")  # the request body
        self.rows[(entity["PartitionKey"], entity["RowKey"])] = dict(entity)

    def get_entity(self, pk: str, rk: str) -> dict:
        try:
            return self.rows[(pk, rk)]
        except KeyError:
            raise ResourceNotFoundError("not found") from None

    def list_entities(self, **_):
        return list(self.rows.values())


def deps(table: FakeTable) -> ProcessorDeps:
    # keep_stranded needs only the dead-letter store, the clock and telemetry.
    return ProcessorDeps(
        commerce=None,
        deadletters=DeadLetterStore(table),
        telemetry=Telemetry(),
        mapping=None,
        max_dequeue_count=5,
        calls=None,
        clock=lambda: NOW,
        ledger=None,
        requeue=None,
        retry=None,
        lease_seconds=1,
        call_budget=1,
        hash_key=b"k",
    )


# --- the event id a broken message is kept under ----------------------------------------------


@pytest.mark.parametrize(
    "event_id", ["\ud800x", "a\udfffb", "\u200b", "a\u2028b", "a\x85b", "\ufeffevt", "", "x" * 129, 12, None]
)
def test_an_id_ingest_could_not_have_written_is_not_trusted(event_id):
    body = json.dumps({"v": 1, "event": {"eventId": event_id, "emailHash": "ab" * 32}})
    assert peek_identity(body) == (None, "ab" * 32)


@pytest.mark.parametrize("event_id", ["evt-1", "Bestellung-Ä-42", "注文-1", "evt \U0001f600", "x" * 128])
def test_an_id_of_the_shape_ingest_writes_is_kept(event_id):
    assert peek_identity(json.dumps({"v": 1, "event": {"eventId": event_id}})) == (event_id, None)


def test_the_reviewed_lone_surrogate_message_is_kept_under_its_digest():
    assert peek_identity(SURROGATE_ID) == (None, None)
    table = FakeTable()
    keep_stranded(SURROGATE_ID, 1, False, deps(table))
    [(partition, row)] = table.rows
    digest = hashlib.sha256(SURROGATE_ID.encode()).hexdigest()[:32]
    assert (partition, row) == ("unknown", f"unreadable-{digest}")
    assert table.rows[(partition, row)]["Envelope"] == SURROGATE_ID


def test_a_row_key_is_made_for_any_id_even_one_with_a_lone_surrogate():
    # Not reachable from peek_identity any more; the key function itself must not raise either.
    keys = {dl._row_key("\ud800x"), dl._row_key("\ud801x"), dl._row_key("x")}
    assert len(keys) == 3 and all(k.isascii() and k.isprintable() for k in keys)
    assert dl._row_key("\ud800" * 200).startswith("sha256-")


# --- an envelope over a table cell -------------------------------------------------------------


def test_an_oversized_envelope_is_split_and_read_back_whole():
    table = FakeTable()
    text = "not base64 " + "é€\U0001f600x" * 12_000  # 48K characters, 60K UTF-16 units
    keep_stranded(text, 1, False, deps(table))
    [row] = table.rows.values()
    assert row["EnvelopeParts"] == 2 and row["EnvelopeSha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert all(len(row[c].encode("utf-16-le")) // 2 <= dl.ENVELOPE_PART for c in ("Envelope", "Envelope2"))
    [letter] = DeadLetterStore(table).query()
    assert letter.envelope == text


def test_a_64k_character_message_fits_and_an_absurd_envelope_is_cut_with_the_whole_digest():
    table = FakeTable()
    longest = "x" * 65_536  # the most a queue message holds
    keep_stranded(longest, 1, False, deps(table))
    [letter] = DeadLetterStore(table).query()
    assert letter.envelope == longest
    absurd = "y" * (dl.ENVELOPE_PART * dl.MAX_ENVELOPE_PARTS + 10)
    columns = dl._envelope_columns(absurd)
    assert columns["EnvelopeParts"] == dl.MAX_ENVELOPE_PARTS
    assert dl._envelope_of(columns) == absurd[: dl.ENVELOPE_PART * dl.MAX_ENVELOPE_PARTS]
    assert columns["EnvelopeSha256"] == hashlib.sha256(absurd.encode()).hexdigest()


def test_a_small_envelope_keeps_the_single_column():
    assert dl._envelope_columns("{}") == {"Envelope": "{}"}


# --- the monitor goes on past a message it cannot keep -----------------------------------------


@dataclass
class Stored:
    content: str
    id: str
    dequeue_count: int = 1
    pop_receipt: str = "r"


@dataclass
class FakeQueue:
    queue_name: str
    messages: list[Stored] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    def receive_messages(self, messages_per_page: int, visibility_timeout: int):
        queue = self

        class Pages:
            def by_page(self):
                batch, queue.messages = queue.messages[:messages_per_page], queue.messages[messages_per_page:]
                return iter([batch])  # taken messages are invisible for the rest of the run

        return Pages()

    def delete_message(self, message: Stored, pop_receipt: str) -> None:
        self.deleted.append(message.id)

    def update_message(self, *args, **kwargs) -> None:
        pass


def collect(messages: list[str], refuse) -> tuple[int, list[str], list[str]]:
    """(kept, deleted ids, ids whose keep was tried) with ``refuse(body)`` raising or not."""
    poison = FakeQueue("events-poison")
    last = FakeQueue("events-poison-poison", [Stored(m, f"m{i}") for i, m in enumerate(messages)])
    tried: list[str] = []

    def keep(body, dequeue_count, readable):
        tried.append(body)
        refuse(body)

    kept = collect_stranded(StrandedQueues(poison=poison, last=last, keep=keep))
    return kept, last.deleted, tried


def test_a_message_the_store_refuses_does_not_stop_the_ones_behind_it(caplog):
    caplog.set_level(logging.WARNING)

    def refuse(body):
        if body.startswith("bad"):
            error = HttpResponseError(message="PropertyValueTooLarge", response=None)
            error.status_code = 400  # as the service answers it
            raise error

    kept, deleted, _ = collect(["bad 1", "good 2", "bad 3", "good 4"], refuse)
    assert (kept, deleted) == (2, ["m1", "m3"])
    assert caplog.text.count("dead letter not written (HttpResponseError)") == 2
    assert "2 stranded message(s) on events-poison-poison could not be kept" in caplog.text


def test_a_message_that_breaks_the_dead_letter_code_does_not_stop_the_others():
    def refuse(body):
        if body == "bad":
            raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")

    kept, deleted, _ = collect(["bad", "good", "bad", "good"], refuse)
    assert (kept, deleted) == (2, ["m1", "m3"])


def test_a_failing_store_stops_the_collection_at_once(caplog):
    caplog.set_level(logging.WARNING)

    def refuse(body):
        raise ConnectionError("table storage unavailable")

    kept, deleted, tried = collect(["a", "b", "c"], refuse)
    assert (kept, deleted, tried) == (0, [], ["a"])
    assert "collection stopped there" in caplog.text


def test_failures_per_run_are_bounded():
    def refuse(body):
        raise ValueError("refused")

    kept, deleted, tried = collect([f"bad {i}" for i in range(3 * FAILURES_PER_RUN)], refuse)
    assert (kept, deleted, len(tried)) == (0, [], FAILURES_PER_RUN)
