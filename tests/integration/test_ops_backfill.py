"""tools.backfill on real parts: a Shopify export queued on Azurite, processed by the backfill trigger
into the Commerce emulator, interrupted and resumed with exact counts."""

from __future__ import annotations

import csv
import io
import json
import threading
from datetime import UTC, datetime, timedelta

import pytest

from shared.core.bulkfile import SHOPIFY_ADDRESS2, SHOPIFY_ADDRESS_PHONE, SHOPIFY_COLUMNS
from tests.support.shopify_export import HEADER
from tools import backfill

pytestmark = pytest.mark.integration

BAD = {5: ("Email", "not-an-email"), 12: ("Default Address Country Code", "QQ"), 20: ("Phone", "+1 555")}


def shopify_export(path, rows: int = 30) -> None:
    assert set(SHOPIFY_COLUMNS.values()) | {SHOPIFY_ADDRESS2, SHOPIFY_ADDRESS_PHONE} <= set(HEADER)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        for i in range(1, rows + 1):
            row = {
                "Customer ID": str(7000 + i),
                "First Name": f"Ada{i}",
                "Last Name": "Lovelace",
                "Email": f"person.{i}@example.com",
                "Accepts Email Marketing": "yes" if i % 2 else "no",
                "Default Address Address1": f"{i} Main Street",
                "Default Address City": "Ottawa",
                "Default Address Province Code": "ON",
                "Default Address Country Code": "CA",
                "Default Address Zip": "K1A 0B1",
                "Phone": f"'+1613555{i:04d}",
                "Note": "likes tea",
            }
            if i in BAD:
                column, value = BAD[i]
                row[column] = value
            writer.writerow([row.get(c, "") for c in HEADER])


def as_of() -> str:
    return (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0).isoformat()


def test_a_resumed_backfill_applies_every_valid_row_once_and_rejects_the_rest(stack, tmp_path, monkeypatch):
    export = tmp_path / "customers_export.csv"
    shopify_export(export)
    monkeypatch.setattr(backfill, "PACK_EVENTS", 4)
    queue = stack.storage.queue(stack.runtime.settings.backfill_queue)
    sent: list[str] = []

    def crashing_send(message: str) -> None:
        # The third message reaches the queue but its answer is lost: the run stops, the checkpoint
        # does not count it, and the resumed run sends it again.
        queue.send_message(message, time_to_live=-1)
        sent.append(message)
        if len(sent) == 3:
            raise TimeoutError("answer lost")

    args = ["--as-of", as_of(), "--concurrency", "1", "--no-progress", str(export)]
    out = io.StringIO()
    assert backfill.main(args, out=out, err=io.StringIO(), send=crashing_send) == 1
    assert "could not be written" in out.getvalue()
    checkpoint = json.loads((tmp_path / "customers_export.csv.checkpoint.json").read_text())
    assert checkpoint["complete"] is False and checkpoint["queued"] == 8 and checkpoint["messages"] == 2

    out = io.StringIO()
    assert backfill.main(args, out=out, err=io.StringIO()) == 0, out.getvalue()
    assert "resumed after record" in out.getvalue()
    checkpoint = json.loads((tmp_path / "customers_export.csv.checkpoint.json").read_text())
    assert checkpoint["complete"] is True
    assert (checkpoint["queued"], checkpoint["rejected"], checkpoint["rows_done"]) == (27, 3, 30)

    stack.wait(60)
    outcomes = stack.telemetry.outcomes()
    assert outcomes.count("created") == 27  # every valid row applied once
    # Re-sent on resume: the message whose answer was lost, and any sent after it before the run
    # stopped (at most 2 x --concurrency messages); the ledger skips each of their events.
    resent = sum(len(json.loads(m)["batch"]) for m in sent) - 8
    assert 4 <= resent <= 8
    assert outcomes.count("duplicate") == resent
    # (A re-sent event processed while its first copy holds the email's lease is deferred first.)
    assert set(outcomes) - {"deferred"} == {"created", "duplicate"}
    customers = stack.emulator.customers()
    assert sorted(c["Email"] for c in customers) == sorted(
        f"person.{i}@example.com" for i in range(1, 31) if i not in BAD
    )
    calls = stack.emulator.calls()
    assert (calls["create"], calls["update"]) == (27, 0)
    first = next(c for c in customers if c["Email"] == "person.1@example.com")
    assert first["FirstName"] == "Ada1"
    # The live queue was never used, and the events say where they came from.
    assert stack.queue().peek_messages() == []
    sources = {r.source for r in stack.telemetry.custom_events("CustomerSyncOutcome")}
    assert sources == {"backfill"}

    # The rejects file: each refused record once, by row and column, never the value.
    with (tmp_path / "customers_export.csv.rejects.csv").open(newline="") as f:
        rejects = list(csv.DictReader(f))
    assert [(int(r["row"]), r["field"]) for r in rejects] == [
        (5, "Email"),
        (12, "Default Address Country Code"),
        (20, "Phone"),
    ]
    text = (tmp_path / "customers_export.csv.rejects.csv").read_text()
    assert "not-an-email" not in text and "QQ" not in text

    # Running it again does nothing: the checkpoint says complete.
    out = io.StringIO()
    assert backfill.main(args, out=out, err=io.StringIO(), send=lambda m: pytest.fail("sent")) == 0
    assert "already complete" in out.getvalue()


def test_ctrl_c_saves_the_checkpoint_and_a_different_as_of_cannot_resume_it(stack, tmp_path, monkeypatch):
    export = tmp_path / "export.csv"
    shopify_export(export, rows=12)
    monkeypatch.setattr(backfill, "PACK_EVENTS", 2)
    stop = threading.Event()
    sent: list[str] = []

    def send(message: str) -> None:
        sent.append(message)
        if len(sent) == 2:
            stop.set()

    from shared.core.settings import load_settings
    from tools.fileargs import open_run

    parser_args = type(
        "A",
        (),
        {"file": export, "as_of": datetime(2026, 11, 30, tzinfo=UTC), "format": "auto", "map": [], "mapping": None},
    )()
    settings = load_settings(stack.env)
    run = open_run(parser_args)
    with pytest.raises(KeyboardInterrupt):
        backfill.run_backfill(
            run,
            parser_args,
            settings,
            send,
            rejects_path=tmp_path / "r.csv",
            checkpoint_path=tmp_path / "cp.json",
            concurrency=1,
            stop=stop,
        )
    saved = json.loads((tmp_path / "cp.json").read_text())
    first_rows = [int(e["event"]["eventId"].rsplit("-", 1)[1]) for m in sent for e in json.loads(m)["batch"]]
    # Everything sent was confirmed before the checkpoint was saved; what was only in the message being
    # filled was not sent and is read again.
    assert saved["queued"] == len(first_rows) >= 4 and not saved["complete"]
    assert saved["rows_done"] >= max(first_rows)
    # Another export time would give the same ids other times: refused.
    code = backfill.main(
        [
            "--as-of",
            "2026-11-29T00:00:00Z",
            "--checkpoint",
            str(tmp_path / "cp.json"),
            "--rejects",
            str(tmp_path / "r.csv"),
            "--no-progress",
            str(export),
        ],
        out=io.StringIO(),
        err=(err := io.StringIO()),
        send=lambda m: None,
    )
    assert code == 2 and "another file, --as-of" in err.getvalue()
    # The same one resumes after record 4.
    rest: list[str] = []
    code = backfill.main(
        [
            "--as-of",
            "2026-11-30T00:00:00Z",
            "--checkpoint",
            str(tmp_path / "cp.json"),
            "--rejects",
            str(tmp_path / "r.csv"),
            "--no-progress",
            str(export),
        ],
        out=io.StringIO(),
        err=io.StringIO(),
        send=rest.append,
    )
    assert code == 0
    rows = [int(e["event"]["eventId"].rsplit("-", 1)[1]) for m in rest for e in json.loads(m)["batch"]]
    assert min(rows) > saved["rows_done"]  # the resumed run starts after the checkpoint
    # Every valid record exactly once over the two runs (5 and 12 are refused).
    assert sorted(first_rows + rows) == [1, 2, 3, 4, 6, 7, 8, 9, 10, 11]
    with (tmp_path / "r.csv").open(newline="") as f:
        assert [r["row"] for r in csv.DictReader(f)] == ["5", "12"]
