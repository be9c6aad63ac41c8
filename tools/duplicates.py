"""Duplicates already in Commerce: which emails of a file have several Commerce customers.

    python -m tools.duplicates FILE [--format ...] [--map ... | --mapping FILE] [--out FILE.duplicates.csv]
                               [--commerce-concurrency 4]

Each distinct valid email of the file is looked up with the exact-match search the processor uses
(the CSU search is a prefix search; only exact, case-insensitive matches count). Emails with two or
more customers go to a CSV for the data steward: the email, the number of customers, their account
numbers in the order the processor ranks them (the first is the one a sync would update: non-async
first, then the lowest RecordId), their RecordIds and async flags, and the file's first row for the
email. Nothing is merged or written: merge in headquarters. The CSV names customers by email: keep it
as you keep the export.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import logging
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from shared.core.bulkfile import FileFormatError
from shared.usecases.processor import pick_customer
from tools.fileargs import ProgressLine, add_file_arguments, checked, open_run
from tools.replay import load_tool_settings

COLUMNS = ["email", "customers", "accounts", "record_ids", "async", "first_row"]


def ranked(matches: list[dict]) -> list[dict]:
    """The processor's order: the customer it would update first (``shared.usecases.processor.pick_customer``)."""
    rest, order = list(matches), []
    while rest:
        chosen = pick_customer(rest)
        order.append(chosen)
        rest.remove(chosen)
    return order


def find_duplicates(
    run, args, settings, search, out_csv: TextIO, *, workers: int = 4, progress: ProgressLine | None = None
) -> dict[str, int]:
    writer = csv.writer(out_csv, lineterminator="\n")
    writer.writerow(COLUMNS)
    seen: set[bytes] = set()
    counts = {"records": 0, "emails": 0, "duplicated": 0, "invalid": 0}
    lock = threading.Lock()
    room = threading.BoundedSemaphore(workers * 4)

    def look(email: str, row: int) -> None:
        try:
            matches = search(email)
            if len(matches) > 1:
                order = ranked(matches)
                with lock:
                    counts["duplicated"] += 1
                    writer.writerow(
                        [
                            email,
                            len(order),
                            " ".join(str(c.get("AccountNumber")) for c in order),
                            " ".join(str(c.get("RecordId") or "") for c in order),
                            " ".join("yes" if c.get("IsAsyncCustomer") else "no" for c in order),
                            row,
                        ]
                    )
        finally:
            room.release()

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="duplicates") as pool:
        for item in checked(run, args, settings):
            counts["records"] += 1
            if not item.ok:
                counts["invalid"] += 1
                continue
            key = hashlib.blake2b(item.event.email_match_key.encode(), digest_size=16).digest()
            if key in seen:
                continue
            seen.add(key)
            counts["emails"] += 1
            room.acquire()
            pool.submit(look, item.event.email, item.row)
            if progress is not None:
                progress.update(run.progress.bytes, dict(counts))
    if progress is not None:
        progress.update(run.progress.bytes, dict(counts), final=True)
    return counts


def main(argv: list[str] | None = None, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    p = argparse.ArgumentParser(
        prog="python -m tools.duplicates", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_file_arguments(p, as_of_required=False)
    p.add_argument("--out", type=Path, help="CSV of duplicated emails (default: FILE.duplicates.csv)")
    p.add_argument("--commerce-concurrency", type=int, default=4, help="most Commerce searches in flight")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    loaded = load_tool_settings(args.settings, err)
    if loaded is None:
        return 2
    env, settings = loaded
    from shared.adapters.commerce.auth import build_token_provider
    from shared.adapters.commerce.client import CommerceClient

    cap = max(1, args.commerce_concurrency)
    client = CommerceClient(
        settings.commerce,
        build_token_provider(settings.commerce, logger=logging.getLogger("customer_sync.duplicates")),
        max_concurrency=cap,
    )
    out_path = args.out or args.file.with_name(args.file.name + ".duplicates.csv")
    try:
        run = open_run(args, as_of=args.as_of or datetime.now(UTC))
        with out_path.open("w", encoding="utf-8", newline="") as f:
            counts = find_duplicates(
                run,
                args,
                settings,
                client.search_customers_by_email,
                f,
                workers=cap,
                progress=ProgressLine(run.size, err, enabled=not args.no_progress),
            )
    except FileFormatError as error:
        print(str(error), file=err)
        return 2
    print(
        f"{counts['records']:,} record(s), {counts['emails']:,} distinct valid email(s), "
        f"{counts['invalid']:,} invalid; {counts['duplicated']:,} email(s) with several Commerce customers "
        f"-> {out_path}",
        file=out,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
