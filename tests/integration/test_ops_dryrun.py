"""tools.dryrun on real parts: per-record decisions from the processor's own code, and proof that it
writes nothing (the emulator's write counters, the ledger's ETags, the queues and dead letters)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.stack import event
from tools import dryrun

pytestmark = pytest.mark.integration


def line(email: str, **customer) -> str:
    return json.dumps({"eventType": "customer.updated", "customer": {"email": email, **customer}})


def test_a_dry_run_reports_each_decision_and_writes_nothing(stack, tmp_path):
    stack.emulator.seed(
        [
            {"Email": "changed@example.com", "FirstName": "Old", "LastName": "Name"},
            {"Email": "same@example.com", "FirstName": "Same", "LastName": "Name"},
            {"Email": "twice@example.com", "FirstName": "A", "RecordId": 7},
            {"Email": "twice@example.com", "FirstName": "B", "RecordId": 9},
        ]
    )
    # Two customers the ledger already knows (applied by the live pipeline).
    stack.post(
        [
            event(1, email="known@example.com", occurred="2026-11-20T10:00:00+00:00", firstName="Kim", lastName="Ng"),
            event(
                2, email="moved.on@example.com", occurred="2026-11-20T10:00:00+00:00", firstName="Lee", lastName="Old"
            ),
        ]
    )
    stack.wait()
    export = tmp_path / "events.jsonl"
    export.write_text(
        "\n".join(
            [
                line("changed@example.com", firstName="New", lastName="Name"),
                line("same@example.com", firstName="Same", lastName="Name"),  # names equal, no email contact
                line("fresh@example.com", firstName="Fresh"),
                line("twice@example.com", firstName="C"),
                line("not-an-email", firstName="X"),
                line("known@example.com", firstName="Kim", lastName="Ng"),
                line("moved.on@example.com", firstName="Lee", lastName="New"),
                line("fresh@example.com", firstName="Fresh"),  # the second record sees what the first would do
            ]
        )
        + "\n"
    )

    ledger_before = {e.email_hash: e for e in stack.runtime.ledger.entries()}
    customers_before = stack.emulator.customers()
    stack.emulator.reset_calls()
    out = io.StringIO()
    as_of = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    code = dryrun.main(
        [str(export), "--as-of", as_of, "--no-progress", "--commerce-concurrency", "2"], out=out, err=io.StringIO()
    )
    assert code == 0, out.getvalue()

    # Nothing written anywhere.
    calls = stack.emulator.calls()
    assert (calls["create"], calls["update"]) == (0, 0) and calls["search"] >= 4
    assert stack.emulator.customers() == customers_before
    ledger_after = {e.email_hash: e for e in stack.runtime.ledger.entries()}
    assert ledger_after == ledger_before
    assert {h: e.etag for h, e in ledger_after.items()} == {h: e.etag for h, e in ledger_before.items()}
    for name in (stack.runtime.settings.events_queue, stack.runtime.settings.backfill_queue):
        assert stack.queue(name).peek_messages() == []
    assert stack.deadletters() == []

    with (tmp_path / "events.jsonl.dryrun.csv").open(newline="") as f:
        rows = {int(r["row"]): r for r in csv.DictReader(f)}
    decisions = {row: r["decision"] for row, r in rows.items()}
    assert decisions == {
        1: "update",
        2: "update",
        3: "create",
        4: "ambiguous",
        5: "reject",
        6: "unchanged",
        7: "update",
        8: "unchanged",
    }
    assert "FirstName: Old -> New" in rows[1]["changes"]
    # Same names, but Commerce has no email contact yet: the sync would add it, and says so.
    assert "FirstName" not in rows[2]["changes"] and "Value: \"\" -> same@example.com" in rows[2]["changes"]
    assert "LastName: Old -> New" in rows[7]["changes"]  # a PATCH built from the ledger alone
    assert "FirstName" in rows[3]["changes"] and "Fresh" in rows[3]["changes"]
    assert "2 Commerce customers share this email" in rows[4]["detail"] and rows[4]["account"]
    assert "invalid_email" in rows[5]["detail"]
    assert rows[8]["outcome"] in ("unchanged", "duplicate")
    summary = out.getvalue()
    assert "create" in summary and "total" in summary and " 8" in summary
