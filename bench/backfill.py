"""tools.backfill from one process: records validated per second, records queued per second on Azurite,
CPU per record beside the storage SDK's own CPU per send, and memory held for a large file.

    python -m bench.backfill [--rows 20000] [--repeats 3] [--sends 300] [--memory-rows 100000 1000000]

Generates a Shopify customer export (deterministic, ``--rows`` customers), then, ``--repeats`` times:
- **validate**: every record read and validated as ingest validates an event (``shared.core.bulkfile``), no I/O;
- **SDK send**: ``--sends`` single-event messages, then as many full packed messages, sent one after
  another with the storage SDK to Azurite (started here, in memory): CPU per ``send_message``;
- **backfill**: ``tools.backfill.run_backfill`` on the whole file to Azurite with 8 sends in flight:
  records per second and CPU per record (this process: reading, validation, packing, sending).
Memory: ``--memory-rows`` files each backfilled in a child process with the sends counted but not
made; the child's peak resident set (ru_maxrss) must not grow with the file.

CPU is process time (all threads). The machine is shared: figures are ranges over the repeats, and the
SDK's CPU per send is measured in the same run as the backfill it is compared with.
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from shared.core.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
HEADER = [
    "Customer ID",
    "First Name",
    "Last Name",
    "Email",
    "Accepts Email Marketing",
    "Default Address Company",
    "Default Address Address1",
    "Default Address Address2",
    "Default Address City",
    "Default Address Province Code",
    "Default Address Country Code",
    "Default Address Zip",
    "Default Address Phone",
    "Phone",
    "Accepts SMS Marketing",
    "Total Spent",
    "Total Orders",
    "Note",
    "Tax Exempt",
    "Tags",
]
CITIES = [
    ("Ottawa", "ON", "CA", "K1A 0B1", "+1613555"),
    ("Berlin", "BE", "DE", "10115", "+4930123"),
    ("Lyon", "", "FR", "69001", "+3347200"),
    ("Austin", "TX", "US", "73301", "+1512555"),
]


def export(path: Path, rows: int) -> Path:
    """A Shopify export of ``rows`` customers; one in 50 refused (no valid email)."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        for i in range(1, rows + 1):
            city, state, country, zip_, phone = CITIES[i % len(CITIES)]
            email = f"customer.{i}@example.com" if i % 50 else f"customer.{i}.example.com"
            writer.writerow(
                [
                    7_000_000 + i,
                    f"First{i % 997}",
                    f"Last{i % 991}",
                    email,
                    "yes" if i % 3 else "no",
                    "",
                    f"{i % 400 + 1} Main Street",
                    "",
                    city,
                    state,
                    country,
                    zip_,
                    "",
                    f"{phone}{i % 10000:04d}",
                    "no",
                    "12.50",
                    "2",
                    "",
                    "no",
                    "vip",
                ]
            )
    return path


def _args(path: Path) -> argparse.Namespace:
    return argparse.Namespace(file=path, format="auto", map=[], mapping=None)


def settings_for(connection: str):
    values = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    return load_settings(
        {**values, "AzureWebJobsStorage": connection, "EVENTS_QUEUE_NAME": f"bench-{int(time.time() * 1000) % 10**9}"}
    )


def validate(path: Path, settings, as_of: datetime) -> dict:
    from tools.fileargs import checked, open_run

    run = open_run(_args(path), as_of=as_of)
    cpu, wall, ok = time.process_time(), time.perf_counter(), 0
    rows = 0
    for item in checked(run, _args(path), settings):
        rows += 1
        ok += item.ok
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"rows": rows, "valid": ok, "rows_per_s": rows / wall, "cpu_us_per_row": cpu / rows * 1e6}


def sdk_sends(queue, sends: int, envelope_text: str, packed_text: str) -> dict:
    out = {}
    for label, text in (("single", envelope_text), ("packed", packed_text)):
        queue.send_message(text, time_to_live=-1)  # warm the connection
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(sends):
            queue.send_message(text, time_to_live=-1)
        out[label] = {
            "bytes": len(text.encode()),
            "cpu_ms_per_send": (time.process_time() - cpu) / sends * 1000,
            "wall_ms_per_send": (time.perf_counter() - wall) / sends * 1000,
        }
    queue.clear_messages()
    return out


def backfill(path: Path, settings, as_of: datetime, send, workdir: Path, concurrency: int = 8) -> dict:
    from tools.backfill import run_backfill
    from tools.fileargs import open_run

    run = open_run(_args(path), as_of=as_of)
    checkpoint = workdir / f"cp-{time.perf_counter_ns()}.json"
    cpu, wall = time.process_time(), time.perf_counter()
    summary = run_backfill(
        run,
        _args(path),
        settings,
        send,
        rejects_path=workdir / "rejects.csv",
        checkpoint_path=checkpoint,
        concurrency=concurrency,
    )
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {
        "rows": summary.read,
        "queued": summary.queued,
        "messages": summary.messages,
        "rejected": summary.rejected,
        "rows_per_s": summary.read / wall,
        "queued_per_s": summary.queued / wall,
        "cpu_us_per_row": cpu / summary.read * 1e6,
        "events_per_message": summary.queued / max(summary.messages, 1),
    }


def memory_child(rows: int, workdir: Path) -> dict:
    """In a child process: backfill a file of ``rows`` records, sends counted only; peak RSS."""
    path = workdir / f"memory-{rows}.csv"
    if not path.exists():
        export(path, rows)
    settings = settings_for("UseDevelopmentStorage=true")
    sent = []
    started = time.perf_counter()
    result = backfill(
        path, settings, datetime.now(UTC) - timedelta(hours=1), lambda message: sent.append(len(message)), workdir
    )
    result["seconds"] = time.perf_counter() - started
    result["file_mb"] = path.stat().st_size / 1e6
    result["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def span(values: list[float], fmt: str = "{:,.0f}") -> str:
    lo, hi = min(values), max(values)
    return fmt.format(lo) if abs(hi - lo) < 1e-9 else f"{fmt.format(lo)}-{fmt.format(hi)}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.backfill", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--rows", type=int, default=20_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--sends", type=int, default=300)
    p.add_argument("--memory-rows", type=int, nargs="*", default=[100_000, 1_000_000])
    p.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    p.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child, args.workdir)))
        return 0

    from devhost.azurite import start_azurite
    from shared.adapters.storage import StorageFactory, StorageQueueSender, ensure_queue
    from shared.usecases.backfill import Packer

    results: dict = {"rows": args.rows, "validate": [], "sdk": [], "backfill": [], "memory": []}
    with tempfile.TemporaryDirectory(prefix="bench-backfill-") as tmp:
        workdir = Path(tmp)
        path = export(workdir / "customers_export.csv", args.rows)
        azurite = start_azurite()
        try:
            settings = settings_for(azurite.connection_string)
            storage = StorageFactory({"AzureWebJobsStorage": azurite.connection_string})
            queue = storage.queue(settings.backfill_queue)
            ensure_queue(queue)
            sender = StorageQueueSender(queue)
            as_of = datetime.now(UTC) - timedelta(hours=1)
            # One real envelope and one full pack of them, for the SDK's own cost per send.
            from shared.core.envelope import Envelope
            from tools.fileargs import checked, open_run

            run = open_run(_args(path), as_of=as_of)
            packer, full = Packer(), None
            for item in checked(run, _args(path), settings):
                if item.ok:
                    text = Envelope.wrap(item.event, ingested_at=as_of, correlation_id="bench").to_json()
                    full = full or packer.add(item.row, text)
                    single = text
                if full:
                    break
            for _ in range(args.repeats):
                results["validate"].append(validate(path, settings, as_of))
                results["sdk"].append(sdk_sends(queue, args.sends, single, full[0]))
                results["backfill"].append(backfill(path, settings, as_of, lambda m: sender.send(m), workdir))
                queue.clear_messages()
        finally:
            azurite.stop()
        for rows in args.memory_rows:
            child = subprocess.run(
                [sys.executable, "-m", "bench.backfill", "--memory-child", str(rows), "--workdir", str(workdir)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            )
            results["memory"].append(json.loads(child.stdout.strip().splitlines()[-1]))
    v, s, b = results["validate"], results["sdk"], results["backfill"]
    print(json.dumps(results, indent=2))
    print(
        f"\nrecords validated / s          {span([x['rows_per_s'] for x in v])} "
        f"({span([x['cpu_us_per_row'] for x in v])} us CPU per record)"
    )
    print(
        f"records queued / s (Azurite)   {span([x['queued_per_s'] for x in b])} "
        f"({span([x['events_per_message'] for x in b], '{:,.0f}')} events per message, 8 sends in flight)"
    )
    print(f"backfill CPU per record        {span([x['cpu_us_per_row'] for x in b])} us (read + validate + pack + send)")
    print(
        f"SDK CPU per send_message       single event {span([x['single']['cpu_ms_per_send'] for x in s], '{:.2f}')} ms"
        f"; packed {span([x['packed']['cpu_ms_per_send'] for x in s], '{:.2f}')} ms "
        f"({s[0]['packed']['bytes']:,} bytes)"
    )
    per_row_sdk = [x["single"]["cpu_ms_per_send"] * 1000 for x in s]
    print(f"  one send per record would cost {span(per_row_sdk)} us CPU per record in the SDK alone")
    for m_ in results["memory"]:
        print(
            f"memory: {m_['rows']:,} records ({m_['file_mb']:,.0f} MB file): peak RSS {m_['max_rss_mb']:,.0f} MB, "
            f"{m_['seconds']:,.0f} s, {m_['rows_per_s']:,.0f} records/s without sends"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
