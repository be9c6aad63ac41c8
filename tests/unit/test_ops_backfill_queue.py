"""The backfill queue's messages and trigger logic: packing, the per-process gate, the time budget, and
poison messages split into one dead letter per event."""

from __future__ import annotations

import base64
import json

from shared.core.envelope import MAX_MESSAGE_BYTES
from shared.usecases import backfill
from shared.usecases.backfill import BackfillDeps, BackfillGate, Packer, pack, unpack


def envelope(i: int, size: int = 0) -> str:
    return json.dumps({"v": 1, "event": {"eventId": f"bf-{i}", "pad": "x" * size}}, separators=(",", ":"))


def test_pack_and_unpack_round_trip_and_a_single_envelope_is_not_a_pack():
    items = [envelope(1), envelope(2)]
    assert unpack(pack(items)) == items
    assert unpack(envelope(1)) is None
    assert unpack("not json") is None
    assert unpack(b'{"v":1,"batch":[]}') == []


def test_packer_keeps_every_message_under_the_queue_limit_once_base64_encoded():
    packer, messages = Packer(), []
    for row in range(1, 400):
        full = packer.add(row, envelope(row, size=700))
        if full:
            messages.append(full)
    messages.append(packer.flush())
    assert packer.flush() is None
    rows = [r for _, rs in messages for r in rs]
    assert rows == list(range(1, 400))  # every row once, in order
    for text, rs in messages:
        assert len(text.encode()) <= MAX_MESSAGE_BYTES
        assert len(base64.b64encode(text.encode())) < 65536
        assert [json.loads(e)["event"]["eventId"] for e in unpack(text)] == [f"bf-{r}" for r in rs]
    assert len(messages) > 5


def test_packer_caps_the_events_per_message():
    packer = Packer(max_events=3)
    fulls = [packer.add(r, envelope(r)) for r in range(1, 8)]
    assert [rows for _, rows in filter(None, fulls)] == [[1, 2, 3], [4, 5, 6]]
    assert packer.flush()[1] == [7]


class Clock:
    def __init__(self, step: float):
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def deps(monkeypatch, *, limit=1, step=0.0, budget=100.0):
    processed, sent = [], []
    monkeypatch.setattr(
        backfill,
        "process_message",
        lambda body, count, _deps: processed.append((json.loads(body)["event"]["eventId"], count)),
    )
    d = BackfillDeps(
        processor=None,
        gate=BackfillGate(limit),
        send=lambda text, delay: sent.append((text, delay)),
        budget_seconds=budget,
        slot_wait_seconds=0.01,
        monotonic=Clock(step),
    )
    return d, processed, sent


def test_each_event_of_a_pack_goes_through_the_processor(monkeypatch):
    d, processed, sent = deps(monkeypatch)
    result = backfill.process_backfill_message(pack([envelope(1), envelope(2)]), 3, d)
    assert processed == [("bf-1", 1), ("bf-2", 1)]  # each is its own first delivery
    assert result == backfill.BackfillResult(2, 0) and sent == []
    # A single envelope (a retried event) keeps the host's dequeue count.
    backfill.process_backfill_message(envelope(3), 2, d)
    assert processed[-1] == ("bf-3", 2)


def test_a_busy_gate_sends_the_message_back_instead_of_holding_a_thread(monkeypatch):
    d, processed, sent = deps(monkeypatch, limit=1)
    assert d.gate.acquire(0)  # another message holds this process's only slot
    body = pack([envelope(1)])
    result = backfill.process_backfill_message(body, 1, d)
    assert processed == [] and sent == [(body, backfill.SEND_BACK_DELAY_SECONDS)]
    assert result == backfill.BackfillResult(0, 1)


def test_the_time_budget_sends_the_rest_back_as_one_new_pack(monkeypatch):
    d, processed, sent = deps(monkeypatch, step=60.0, budget=100.0)
    result = backfill.process_backfill_message(pack([envelope(i) for i in range(1, 6)]), 1, d)
    assert [p for p, _ in processed] == ["bf-1", "bf-2"]
    [(text, delay)] = sent
    assert delay == 0 and [json.loads(e)["event"]["eventId"] for e in unpack(text)] == ["bf-3", "bf-4", "bf-5"]
    assert result == backfill.BackfillResult(2, 3)
    assert d.gate.acquire(0)  # the slot was released


def test_a_poisoned_pack_becomes_one_dead_letter_per_event(monkeypatch):
    kept = []
    monkeypatch.setattr(backfill, "collect_poison", lambda body, count, _deps: kept.append(body))
    assert backfill.collect_backfill_poison(pack([envelope(1), envelope(2)]), 5, None) == 2
    assert [json.loads(k)["event"]["eventId"] for k in kept] == ["bf-1", "bf-2"]
    assert backfill.collect_backfill_poison("junk", 5, None) == 1 and kept[-1] == "junk"
