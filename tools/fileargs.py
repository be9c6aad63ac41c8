"""The file arguments tools.backfill, tools.dryrun and tools.duplicates share, and a progress line."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from shared.core.bulkfile import (
    FORMATS,
    Checked,
    ColumnMapping,
    FileFormatError,
    Progress,
    check,
    file_digest,
    mapping_from_file,
    mapping_from_pairs,
    parse_as_of,
    read_records,
)
from shared.core.contract import EARLIEST_OCCURRED_AT, MAX_FUTURE_SKEW_SECONDS


def add_file_arguments(p: argparse.ArgumentParser, *, as_of_required: bool = True) -> None:
    p.add_argument(
        "file", type=Path, help="Shopify customer export (CSV), JSON Lines of events, or a CSV with --map / --mapping"
    )
    p.add_argument(
        "--as-of",
        required=as_of_required,
        type=parse_as_of,
        metavar="TIMESTAMP",
        help="when the file was exported (ISO 8601, UTC when no offset): every record's "
        "occurredAt, so any later edit in the marketing system wins",
    )
    p.add_argument("--format", choices=FORMATS, default="auto")
    p.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="TARGET=COLUMN",
        help="a CSV column for a contract field, e.g. customer.email=E-mail (repeat)",
    )
    p.add_argument("--mapping", type=Path, help="a webhook mapping file whose paths are column names")
    p.add_argument("--settings", type=Path, help="local.settings.json-style file (else the environment)")
    p.add_argument(
        "--credential",
        choices=["azure-cli", "managed-identity"],
        default="azure-cli",
        help="identity for identity-based storage settings (default: your az login)",
    )


def column_mapping(args: argparse.Namespace) -> ColumnMapping | None:
    if args.mapping is not None:
        return mapping_from_file(args.mapping.read_text(encoding="utf-8"))
    return mapping_from_pairs(args.map) if args.map else None


def check_as_of(as_of: datetime, now: datetime) -> str | None:
    if as_of > now + timedelta(seconds=MAX_FUTURE_SKEW_SECONDS):
        return "--as-of is in the future: it is the time the file was exported"
    if as_of < EARLIEST_OCCURRED_AT:
        return f"--as-of is before {EARLIEST_OCCURRED_AT.date()}"
    return None


@dataclass
class FileRun:
    path: Path
    digest: str
    as_of: datetime
    now: datetime
    progress: Progress
    size: int


def open_run(args: argparse.Namespace, as_of: datetime | None = None) -> FileRun:
    as_of = as_of or args.as_of
    now = datetime.now(UTC)
    if not args.file.is_file():
        raise FileFormatError(f"{args.file}: no such file")
    return FileRun(args.file, file_digest(args.file), as_of, now, Progress(), args.file.stat().st_size)


def checked(run: FileRun, args: argparse.Namespace, settings, *, start_after: int = 0) -> Iterator[Checked]:
    """Every record after ``start_after``, validated as ingest validates an event."""
    for record in read_records(
        run.path,
        as_of=run.as_of,
        digest=run.digest,
        fmt=args.format,
        mapping=column_mapping(args),
        start_after=start_after,
        progress=run.progress,
    ):
        yield check(record, now=run.now, settings=settings.mapping, hash_key=settings.email_hash_key)


class ProgressLine:
    """One line on stderr, rewritten in place on a terminal (every 10 s as a new line otherwise)."""

    def __init__(self, total_bytes: int, stream: TextIO = sys.stderr, enabled: bool = True):
        self.total = max(total_bytes, 1)
        self.stream = stream
        self.enabled = enabled
        self.tty = enabled and stream.isatty()
        self.started = time.monotonic()
        self._last = 0.0

    def update(self, done_bytes: int, counts: dict[str, int], final: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not final and now - self._last < (0.2 if self.tty else 10.0):
            return
        self._last = now
        elapsed = max(now - self.started, 1e-6)
        share = min(done_bytes / self.total, 1.0)
        rate = counts.get("read", 0) / elapsed
        eta = (elapsed / share - elapsed) if 0 < share < 1 else 0.0
        width = 24
        bar = "#" * int(share * width) + "-" * (width - int(share * width))
        text = (
            f"[{bar}] {share:6.1%}  "
            + "  ".join(f"{k} {v:,}" for k, v in counts.items())
            + f"  {rate:,.0f} rows/s  ETA {_duration(eta)}"
        )
        if self.tty:
            self.stream.write("\r" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
