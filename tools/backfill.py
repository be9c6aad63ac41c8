"""Initial load: queue a file of existing customers for the app to process.

    python -m tools.backfill FILE --as-of 2026-11-30T06:00:00Z [--format auto|shopify|jsonl|csv]
                             [--map customer.email=E-mail ...] [--mapping FILE] [--concurrency 8]
                             [--rejects FILE.rejects.csv] [--checkpoint FILE.checkpoint.json]

FILE is Shopify's customer export, JSON Lines of canonical events, or any CSV with a column mapping
(``shared.core.bulkfile``). Every record is validated here first, exactly as ingest validates an event;
refused records go to the rejects CSV (row, field, reason, message: never the value), nothing is
dropped silently. Valid records are queued, packed many to a message, on ``<EVENTS_QUEUE_NAME>-backfill``
for the app's backfill trigger (``shared.usecases.backfill``): the scaled-out app does the Commerce work, with
its own lower concurrency, and live events never wait behind the load.

Every record's occurredAt is --as-of (the export time, required), so an edit made in the marketing
system after the export wins. Event ids are deterministic (the file's digest and the record number):
after Ctrl-C or a crash, the same command resumes from the checkpoint file and re-sends at most the
messages that were in flight, which the ledger then skips as duplicates.

Exit codes: 0 done, 1 stopped (queue unreachable, or interrupted: run the same command to resume),
2 usage, settings or file problems.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TextIO

from shared.core.bulkfile import FileFormatError, as_of_text, csv_line, rejects_header
from shared.core.envelope import MAX_MESSAGE_BYTES, Envelope
from shared.core.settings import Settings
from shared.usecases.backfill import Packer
from tools.fileargs import FileRun, ProgressLine, add_file_arguments, check_as_of, checked, open_run
from tools.replay import load_tool_settings, operator_credential

CHECKPOINT_EVERY_SECONDS = 1.0
PACK_EVENTS = 200  # most events in one queue message (the size limit usually comes first)


@dataclass
class Checkpoint:
    """What a resumed run needs: which file, which export time, which queue, and the record number up
    to which everything is queued or rejected."""

    file_digest: str
    as_of: str
    queue: str
    rows_done: int = 0
    queued: int = 0
    rejected: int = 0
    messages: int = 0
    complete: bool = False

    @classmethod
    def load(cls, path: Path) -> Checkpoint | None:
        if not path.exists():
            return None
        return cls(**json.loads(path.read_text(encoding="utf-8")))

    def save(self, path: Path) -> None:
        temp = path.with_name(path.name + ".tmp")
        temp.write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")
        os.replace(temp, path)  # atomic: a crash leaves the old checkpoint or the new one


@dataclass
class Summary:
    read: int = 0  # records read in this run (after the checkpoint)
    queued: int = 0  # events queued in this run
    rejected: int = 0
    messages: int = 0
    resumed_from: int = 0
    seconds: float = 0.0
    stopped: str | None = None  # why the run stopped early
    totals: dict = field(default_factory=dict)


class _Sends:
    """Messages being sent, in the order they were packed; the watermark is the last record number
    below which every message has been queued."""

    def __init__(self, pool: ThreadPoolExecutor, send: Callable[[str], None], limit: int):
        self.pool, self.send = pool, send
        self.inflight: deque[tuple[int, int, Future]] = deque()
        self.slots = threading.BoundedSemaphore(limit * 2)  # bounds memory: packed messages waiting
        self.failure: BaseException | None = None

    def submit(self, message: str, rows: list[int]) -> None:
        self.slots.acquire()
        if self.failure is not None:  # a send failed meanwhile: this one stays unsent (read again on resume)
            self.slots.release()
            self.inflight.append((rows[0], len(rows), self._failed()))
            return
        future = self.pool.submit(self.send, message)
        future.add_done_callback(self._done)
        self.inflight.append((rows[0], len(rows), future))

    def _failed(self) -> Future:
        future: Future = Future()
        future.set_exception(self.failure)
        return future

    def _done(self, future: Future) -> None:
        if future.exception() is not None and self.failure is None:
            self.failure = future.exception()  # no further message is submitted
        self.slots.release()

    def settle(self) -> tuple[int | None, int, int]:
        """Pop the finished messages at the head: (first record not confirmed, events confirmed,
        messages confirmed). Stops at the first failure and keeps it."""
        events = messages = 0
        while self.inflight and self.inflight[0][2].done():
            first, count, future = self.inflight[0]
            error = future.exception()
            if error is not None:
                self.failure = self.failure or error
                break
            self.inflight.popleft()
            events += count
            messages += 1
        return (self.inflight[0][0] if self.inflight else None), events, messages

    def drain(self) -> None:
        for _, _, future in list(self.inflight):
            try:
                future.result()
            except BaseException:  # noqa: BLE001 - kept by settle()
                pass


def run_backfill(
    run: FileRun,
    args: argparse.Namespace,
    settings: Settings,
    send: Callable[[str], None],
    *,
    rejects_path: Path,
    checkpoint_path: Path,
    concurrency: int = 8,
    progress: ProgressLine | None = None,
    stop: threading.Event | None = None,
) -> Summary:
    """Validate every record after the checkpoint, write the rejects, queue the valid ones packed.
    ``send(message)`` puts one message on the backfill queue. Raises KeyboardInterrupt after saving the
    checkpoint when interrupted."""
    queue = settings.backfill_queue
    cp = Checkpoint.load(checkpoint_path)
    if cp is not None and (cp.file_digest, cp.as_of, cp.queue) != (run.digest, as_of_text(run.as_of), queue):
        raise FileFormatError(
            f"{checkpoint_path} is for another file, --as-of or queue; remove it (or pass "
            "another --checkpoint) to start over"
        )
    cp = cp or Checkpoint(run.digest, as_of_text(run.as_of), queue)
    summary = Summary(resumed_from=cp.rows_done)
    if cp.complete:
        summary.stopped = "already complete"
        summary.totals = asdict(cp)
        return summary
    rejects, cp.rejected = _open_rejects(rejects_path, keep_through=cp.rows_done)
    started = time.monotonic()
    correlation = f"backfill-{run.digest[:16]}"
    packer = Packer(max_events=PACK_EVENTS)
    last_saved = 0.0
    read_upto = cp.rows_done

    def record(sends: _Sends, force: bool = False) -> None:
        nonlocal last_saved
        first_open, events, messages = sends.settle()
        cp.queued += events
        cp.messages += messages
        summary.queued += events
        summary.messages += messages
        buffered = packer.first_row
        candidates = [r for r in (first_open, buffered) if r is not None]
        cp.rows_done = (min(candidates) - 1) if candidates else read_upto
        now = time.monotonic()
        if force or now - last_saved >= CHECKPOINT_EVERY_SECONDS:
            rejects.flush()
            os.fsync(rejects.fileno())
            cp.save(checkpoint_path)
            last_saved = now
        if progress is not None:
            progress.update(
                run.progress.bytes,
                {"read": summary.read, "queued": summary.queued, "rejected": summary.rejected},
                final=force,
            )

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="backfill-send") as pool:
        sends = _Sends(pool, send, concurrency)
        try:
            for item in checked(run, args, settings, start_after=cp.rows_done):
                if stop is not None and stop.is_set():
                    raise KeyboardInterrupt
                summary.read += 1
                read_upto = item.row
                text = None
                if item.ok:
                    text = Envelope.wrap(item.event, ingested_at=run.now, correlation_id=correlation).to_json()
                    if len(text.encode("utf-8")) > MAX_MESSAGE_BYTES:
                        item = type(item)(
                            item.row, None, (("", "too_large", f"the event exceeds {MAX_MESSAGE_BYTES} bytes"),)
                        )
                if not item.ok:
                    for column, code, message in item.problems:
                        rejects.write(csv_line([item.row, column, code, message]))
                    summary.rejected += 1
                    cp.rejected += 1
                else:
                    full = packer.add(item.row, text)
                    if full is not None:
                        sends.submit(*full)
                if sends.failure is not None:
                    break
                record(sends)
            if sends.failure is None:
                last = packer.flush()
                if last is not None:
                    sends.submit(*last)
            sends.drain()
            record(sends, force=True)
        except KeyboardInterrupt:
            sends.drain()
            record(sends, force=True)  # what was only buffered is not sent: it is read again on resume
            rejects.close()
            raise
        finally:
            summary.seconds = time.monotonic() - started
    rejects.close()
    if sends.failure is not None:
        summary.stopped = f"the backfill queue could not be written ({type(sends.failure).__name__})"
    else:
        cp.complete = True
        cp.save(checkpoint_path)
    summary.totals = asdict(cp)
    return summary


def _open_rejects(path: Path, keep_through: int) -> tuple[TextIO, int]:
    """The rejects CSV, fresh, or (resuming) with the lines of records after the checkpoint removed:
    those records are read again, so each refused record is listed exactly once. Also returns how many
    records it lists."""
    kept: list[list[str]] = []
    if keep_through and path.exists():
        with path.open("r", encoding="utf-8", newline="") as f:
            rows = [r for r in csv.reader(f)][1:]
        kept = [r for r in rows if r and r[0].isdigit() and int(r[0]) <= keep_through]
    out = path.open("w", encoding="utf-8", newline="")
    out.write(csv_line(rejects_header()))
    for r in kept:
        out.write(csv_line(r))
    return out, len({r[0] for r in kept})


def _print_summary(summary: Summary, rejects: Path, out: TextIO) -> None:
    t = summary.totals
    rate = summary.read / summary.seconds if summary.seconds else 0.0
    print(
        f"records read this run   {summary.read:,}"
        + (f" (resumed after record {summary.resumed_from:,})" if summary.resumed_from else ""),
        file=out,
    )
    print(
        f"events queued           {t.get('queued', 0):,} in {t.get('messages', 0):,} message(s) "
        f"({summary.queued:,} this run)",
        file=out,
    )
    print(f"records rejected        {t.get('rejected', 0):,}  -> {rejects}", file=out)
    print(f"time                    {summary.seconds:,.1f} s ({rate:,.0f} records/s)", file=out)
    if summary.stopped:
        print(f"stopped: {summary.stopped}", file=out)


def main(
    argv: list[str] | None = None,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    send: Callable[[str], None] | None = None,
) -> int:
    p = argparse.ArgumentParser(
        prog="python -m tools.backfill", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_file_arguments(p)
    p.add_argument("--rejects", type=Path, help="rejects CSV (default: FILE.rejects.csv)")
    p.add_argument("--checkpoint", type=Path, help="resume file (default: FILE.checkpoint.json)")
    p.add_argument("--concurrency", type=int, default=8, help="queue sends in flight (default 8)")
    p.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    args = p.parse_args(argv)
    loaded = load_tool_settings(args.settings, err)
    if loaded is None:
        return 2
    env, settings = loaded
    rejects = args.rejects or args.file.with_name(args.file.name + ".rejects.csv")
    checkpoint = args.checkpoint or args.file.with_name(args.file.name + ".checkpoint.json")
    try:
        run = open_run(args)
        problem = check_as_of(run.as_of, run.now)
        if problem:
            print(problem, file=err)
            return 2
        if send is None:
            send = _queue_sender(env, settings, args.credential)
        progress = ProgressLine(run.size, err, enabled=not args.no_progress)
        summary = run_backfill(
            run,
            args,
            settings,
            send,
            rejects_path=rejects,
            checkpoint_path=checkpoint,
            concurrency=max(1, args.concurrency),
            progress=progress,
        )
    except FileFormatError as error:
        print(str(error), file=err)
        return 2
    except KeyboardInterrupt:
        cp = Checkpoint.load(checkpoint)
        print(
            f"\ninterrupted: everything through record {cp.rows_done if cp else 0:,} is queued or rejected; "
            "run the same command to resume",
            file=err,
        )
        return 1
    _print_summary(summary, rejects, out)
    return 1 if summary.stopped and summary.stopped != "already complete" else 0


def _queue_sender(env, settings: Settings, credential: str) -> Callable[[str], None]:
    from shared.adapters.storage import StorageFactory, StorageQueueSender, ensure_queue

    storage = StorageFactory(env, operator_credential(credential))
    queue = storage.queue(settings.backfill_queue)
    if settings.storage_connection != "identity":
        ensure_queue(queue)  # Azurite or a hand-made account; Bicep provisions it in Azure
    sender = StorageQueueSender(queue)
    return lambda message: sender.send(message)


if __name__ == "__main__":
    raise SystemExit(main())
