"""Dry run: what a backfill (or a sync of these records) would do, writing nothing anywhere.

    python -m tools.dryrun FILE --as-of TIMESTAMP [same file options as tools.backfill]
                           [--out FILE.dryrun.csv] [--commerce-concurrency 4]

Per record: ``create``, ``update`` (with the field-by-field difference: Commerce now -> after the
sync), ``unchanged`` (Commerce holds it, or the ledger has it or newer: duplicate / stale),
``reject`` (with the reason: validation, as ingest does it, or a sync that would fail), ``ambiguous``
(several Commerce customers share the email; the one the sync would write is named) or ``deferred``
(a worker holds the email's lease right now) or ``error`` (a read failed: throttled, timed out; run
again). A CSV with one line per record and a summary table.

It reads the ledger and Commerce (at most --commerce-concurrency calls in flight) and writes nothing
anywhere: no queue message, no ledger write, no Commerce create or PATCH, no dead letter, no table or
queue created. The decisions are the processor's own (``shared.usecases.dryrun``): it runs the same code on ports
that only read. Use the same FILE and --as-of as the backfill, so the event ids and times match.
The CSV holds what the sync would write (names, addresses): keep it as you keep the export.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import sys
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TextIO

from shared.core.bulkfile import FileFormatError
from shared.core.envelope import Envelope
from shared.core.settings import Settings
from shared.usecases.dryrun import REJECT, Decision, DryRun
from tools.fileargs import ProgressLine, add_file_arguments, check_as_of, checked, open_run
from tools.replay import load_tool_settings, operator_credential

COLUMNS = ["row", "email_hash", "decision", "account", "outcome", "detail", "changes"]
ORDER = ("create", "update", "unchanged", "ambiguous", "reject", "deferred", "error")


def read_only_runtime(env, settings: Settings, credential: str, commerce_concurrency: int):
    """The app's runtime, built without its start-up step that creates missing queues and tables."""
    from shared.adapters.commerce.auth import build_token_provider
    from shared.adapters.commerce.client import CommerceClient
    from shared.adapters.dead_letter_table import DeadLetterStore
    from shared.adapters.ledger_table import LedgerStore
    from shared.adapters.storage import StorageFactory
    from shared.adapters.telemetry import Telemetry
    from shared.runtime import Runtime, max_dequeue_count
    from shared.usecases.processor import CallCounter

    storage = StorageFactory(env, operator_credential(credential))
    import logging

    commerce = CommerceClient(
        settings.commerce,
        build_token_provider(settings.commerce, logger=logging.getLogger("customer_sync.dryrun")),
        max_concurrency=commerce_concurrency,
    )
    return Runtime(
        settings=settings,
        storage=storage,
        telemetry=Telemetry(),
        commerce=commerce,
        deadletters=DeadLetterStore(storage.table(settings.deadletter_table)),
        ledger=LedgerStore(storage.table(settings.ledger_table)),
        calls=CallCounter(),
        max_dequeue_count=max_dequeue_count(),
    )


def _changes(decision: Decision) -> str:
    return "; ".join(f"{name}: {_text(before)} -> {_text(after)}" for name, before, after in decision.changes)


def _text(value) -> str:
    return '""' if value in (None, "") else str(value)


def run_dryrun(
    run,
    args,
    settings: Settings,
    dry: DryRun,
    out_csv: TextIO,
    *,
    workers: int = 4,
    progress: ProgressLine | None = None,
) -> Counter:
    """Decide every record; one CSV line each (in completion order, with its row number)."""
    writer = csv.writer(out_csv, lineterminator="\n")
    writer.writerow(COLUMNS)
    counts: Counter = Counter()
    lock = threading.Lock()
    # Records of one email go to one worker, in file order, as one queue would apply them.
    lanes = [ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"dryrun-{i}") for i in range(workers)]
    room = threading.BoundedSemaphore(workers * 8)
    correlation = f"dryrun-{run.digest[:16]}"

    def emit(row: int, email_hash: str, decision: Decision) -> None:
        with lock:
            writer.writerow(
                [
                    row,
                    email_hash[:12],
                    decision.decision,
                    decision.account or "",
                    decision.outcome or "",
                    decision.detail,
                    _changes(decision),
                ]
            )
            counts[decision.decision] += 1
            if progress is not None:
                progress.update(run.progress.bytes, {"read": sum(counts.values()), **counts})

    def work(item) -> None:
        try:
            envelope = Envelope.wrap(item.event, ingested_at=run.now, correlation_id=correlation)
            emit(item.row, item.event.email_hash, dry.decide(envelope))
        finally:
            room.release()

    try:
        for item in checked(run, args, settings):
            if not item.ok:
                detail = "; ".join(f"{column or '-'}: {code} ({message})" for column, code, message in item.problems)
                emit(item.row, "", Decision(REJECT, detail=detail))
                continue
            room.acquire()
            lane = int(hashlib.sha1(item.event.email_hash.encode()).hexdigest()[:8], 16) % workers
            lanes[lane].submit(work, item)
    finally:
        for lane in lanes:
            lane.shutdown(wait=True)
    if progress is not None:
        progress.update(run.progress.bytes, {"read": sum(counts.values()), **counts}, final=True)
    return counts


def print_summary(counts: Counter, out_path: Path, out: TextIO) -> None:
    total = sum(counts.values())
    print(f"{'decision':<12}{'records':>10}", file=out)
    for name in ORDER:
        print(f"{name:<12}{counts.get(name, 0):>10,}", file=out)
    print(f"{'total':<12}{total:>10,}", file=out)
    print(f"per record: {out_path}", file=out)


def main(argv: list[str] | None = None, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    p = argparse.ArgumentParser(
        prog="python -m tools.dryrun", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_file_arguments(p)
    p.add_argument("--out", type=Path, help="per-record CSV (default: FILE.dryrun.csv)")
    p.add_argument("--commerce-concurrency", type=int, default=4, help="most Commerce calls in flight (default 4)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    loaded = load_tool_settings(args.settings, err)
    if loaded is None:
        return 2
    env, settings = loaded
    out_path = args.out or args.file.with_name(args.file.name + ".dryrun.csv")
    cap = max(1, args.commerce_concurrency)
    try:
        run = open_run(args)
        problem = check_as_of(run.as_of, run.now)
        if problem:
            print(problem, file=err)
            return 2
        runtime = read_only_runtime(env, settings, args.credential, cap)
        dry = DryRun(runtime.processor_deps)
        with out_path.open("w", encoding="utf-8", newline="") as f:
            counts = run_dryrun(
                run,
                args,
                settings,
                dry,
                f,
                workers=cap,
                progress=ProgressLine(run.size, err, enabled=not args.no_progress),
            )
    except FileFormatError as error:
        print(str(error), file=err)
        return 2
    print_summary(counts, out_path, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
