"""Commerce calls and ledger operations per event, token fetches, and processor throughput.

    python -m bench.pipeline [--events N] [--latency-ms 20] [--concurrency 16] [--repeats 3]
                             [--commerce-max-concurrency 0] [--profile]

Runs the real processor, Commerce client and ledger (``LedgerStore`` on an in-memory Azurite) against
the Commerce emulator, both started here as child processes. Call counts come from the emulator's
own counters (``/_emulator/calls``), never from the processor; ledger operations from a counting
wrapper around the store (reads, inserts, ETag replaces, lost races), with the time each took.

Throughput: ``concurrency`` threads run the processor over new-customer events against the emulator
answering every call after ``latency_ms``, after a warm-up that opens the connection pools. It is
measured twice, interleaved run by run so that other load on the machine hits both alike: with the
ledger on Azurite (what a worker does) and with an in-process ledger of the same semantics (what the
processor costs without storage round trips). Each is reported as the median of ``repeats`` runs and
as a share of the bound concurrency / (calls x latency): the most any client could do if it spent no
time of its own and storage answered instantly.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

from azure.core.credentials import AccessToken

from commerce_emulator.testing import start_emulator_process
from devhost.azurite import start_azurite
from shared.commerce.auth import CachedTokenProvider
from shared.commerce.client import CommerceClient
from shared.envelope import Envelope
from shared.ledger import LedgerConflict, LedgerEntry
from shared.ledger_store import LedgerStore
from shared.processor import CallCounter, LedgerPort, ProcessorDeps, process_message
from shared.settings import load_settings
from shared.storage import StorageFactory, ensure_table
from shared.telemetry import Telemetry
from shared.validation import validate_event
from tests.memory_ledger import MemoryLedger  # the same ETag rules the unit tests use

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
LEDGER_OPS = ("read", "insert", "replace", "conflict")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + system) of this process, or of child ``pid`` from /proc (Linux; else 0)."""
    if pid is None:
        return time.process_time()
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


class CountingCredential:
    """Stands in for an Entra credential: hands out one-hour tokens and counts how many."""

    def __init__(self, token: str, lifetime_s: int = 3600):
        self.token, self.lifetime_s, self.fetches = token, lifetime_s, 0

    def get_token(self, *scopes, **kwargs) -> AccessToken:
        self.fetches += 1
        return AccessToken(self.token, int(time.time()) + self.lifetime_s)


class ListDeadLetters:
    def __init__(self):
        self.letters = []

    def put(self, letter) -> None:
        self.letters.append(letter)


class Requeued:
    """The processor's ``requeue``: keeps what it would send again (deferred or retrying events)."""

    def __init__(self):
        self.messages: list[tuple[str, int]] = []
        self._lock = threading.Lock()

    def __call__(self, text: str, delay: int) -> None:
        with self._lock:
            self.messages.append((text, delay))


class CountingLedger:
    """Wraps a LedgerPort: counts each storage operation and the wall time it took (all threads)."""

    def __init__(self, inner: LedgerPort):
        self.inner = inner
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.counts = dict.fromkeys(LEDGER_OPS, 0)
            self.seconds = dict.fromkeys(LEDGER_OPS, 0.0)

    def _count(self, op: str, started: float) -> None:
        with self._lock:
            self.counts[op] += 1
            self.seconds[op] += time.perf_counter() - started

    def read(self, email_hash: str) -> LedgerEntry | None:
        started = time.perf_counter()
        try:
            return self.inner.read(email_hash)
        finally:
            self._count("read", started)

    def write(self, entry: LedgerEntry) -> LedgerEntry:
        started = time.perf_counter()
        op = "insert" if entry.etag is None else "replace"
        try:
            return self.inner.write(entry)
        except LedgerConflict:
            op = "conflict"
            raise
        finally:
            self._count(op, started)


def envelope(i: int, settings, *, minute: int = 0, last_name: str = "Lovelace", street: str = "1 Main St",
             phone: str = "+1 206 555 0100") -> str:
    # Fixed-width numbers: no address is a word prefix of another, so searches return one row
    # (the emulator, like the real full-text search, matches bench.1 against bench.10...).
    raw = {"specVersion": "1.0", "eventId": f"bench-{i}-{minute}-{last_name}-{len(street)}-{phone[-2:]}",
           "eventType": "customer.updated",
           "occurredAt": (NOW - timedelta(hours=1) + timedelta(minutes=minute)).isoformat(),
           "customer": {"email": f"bench.{i:06d}@example.com", "firstName": "Ada", "lastName": last_name,
                        "phone": phone, "isOptedInMarketing": True,
                        "address": {"street": street, "city": "Seattle", "state": "WA",
                                    "postalCode": "98101", "country": "US"}}}
    result = validate_event(raw, now=NOW, settings=settings.mapping, hash_key=settings.email_hash_key)
    assert result.event is not None, result.errors
    return Envelope.wrap(result.event, ingested_at=NOW, correlation_id="bench").to_json()


class Bench:
    """One emulator, one Azurite, one client: runs batches of messages and counts what they cost."""

    def __init__(self, emulator, settings, commerce_max_concurrency: int):
        self.emulator, self.settings = emulator, settings
        self.credential = CountingCredential(emulator.token)
        self.calls = CallCounter()
        self.client = CommerceClient(settings.commerce,
                                     CachedTokenProvider(self.credential, "api://bench/.default"),
                                     on_call=self.calls.add,
                                     max_concurrency=commerce_max_concurrency or None)
        self.deadletters = ListDeadLetters()
        self.requeued = Requeued()

    def deps(self, ledger: LedgerPort) -> ProcessorDeps:
        s = self.settings
        return ProcessorDeps(commerce=self.client, deadletters=self.deadletters, telemetry=Telemetry(),
                             mapping=s.mapping, max_dequeue_count=5, calls=self.calls, clock=lambda: NOW,
                             ledger=ledger, requeue=self.requeued, retry=s.retry,
                             lease_seconds=s.ledger_lease_seconds, call_budget=self.client.call_budget,
                             hash_key=s.email_hash_key, rng=random.Random(7))

    def batch(self, messages: list[str], workers: int, deps: ProcessorDeps,
              wrap: Callable[[Callable[[], object]], object] | None = None) -> tuple[float, Counter]:
        """Process ``messages`` on ``workers`` threads: (seconds, outcome counts)."""
        def one(message: str):
            work = lambda: process_message(message, 1, deps)  # noqa: E731
            return (wrap(work) if wrap else work()).outcome.value

        started = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            outcomes = Counter(pool.map(one, messages))
        return time.perf_counter() - started, outcomes

    def scenario(self, messages: list[str], workers: int, ledger: CountingLedger) -> dict:
        """Commerce calls (emulator's count) and ledger operations per event of one batch."""
        self.emulator.reset_calls()
        ledger.reset()
        _, outcomes = self.batch(messages, workers, self.deps(ledger))
        n = len(messages)
        counted = self.emulator.calls()
        by_op = {k: round(v / n, 3) for k, v in counted.items() if k not in ("total", "faulted") and v}
        return {"outcomes": dict(outcomes), "commerce_calls": round(counted["total"] / n, 3),
                "commerce_by_operation": by_op,
                "ledger_ops": {k: round(v / n, 3) for k, v in ledger.counts.items() if v},
                "ledger_ops_total": round(sum(ledger.counts.values()) / n, 3)}


class ThreadProfiles:
    """cProfile in every worker thread (a Profile sees only the thread that enabled it), merged.
    Times are CPU seconds of the worker threads."""

    def __init__(self):
        self._local = threading.local()
        self._all: list[cProfile.Profile] = []
        self._lock = threading.Lock()

    def __call__(self, work: Callable[[], object]) -> object:
        profile = getattr(self._local, "profile", None)
        if profile is None:
            # CPU time of the thread, not wall time: with 16 threads sharing the GIL, wall time
            # charges every wait for the GIL to whichever call happened to release it (recv, stat).
            profile = self._local.profile = cProfile.Profile(time.thread_time)
            with self._lock:
                self._all.append(profile)
        profile.enable()
        try:
            return work()
        finally:
            profile.disable()

    def report(self, top: int = 30) -> str:
        out = io.StringIO()
        stats = pstats.Stats(self._all[0], stream=out)
        for p in self._all[1:]:
            stats.add(p)
        stats.sort_stats("cumulative").print_stats(top)
        stats.sort_stats("tottime").print_stats(top)
        return out.getvalue()


def run(events: int, latency_ms: int, concurrency: int, repeats: int = 3,
        commerce_max_concurrency: int = 0, profile: bool = False) -> dict:
    env = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    emulator = start_emulator_process()
    azurite = start_azurite()
    try:
        env = {**env, "COMMERCE_BASE_URL": emulator.base_url, "COMMERCE_STATIC_DEV_TOKEN": emulator.token,
               "AzureWebJobsStorage": azurite.connection_string}
        settings = load_settings(env)
        table = StorageFactory(env).table(settings.ledger_table)  # what the worker builds
        ensure_table(table)
        ledger = CountingLedger(LedgerStore(table))
        bench = Bench(emulator, settings, commerce_max_concurrency)

        # --- per event costs: 200 customers through every kind of event, in order ---------------
        n = min(events, 200)
        new = [envelope(i, settings) for i in range(n)]
        changed = [envelope(i, settings, minute=1, last_name="King") for i in range(n)]
        unchanged = [envelope(i, settings, minute=2, last_name="King") for i in range(n)]
        stale = [envelope(i, settings, minute=1, last_name="Byron") for i in range(n)]  # older than :02
        moved_house = [envelope(i, settings, minute=3, last_name="King", street="22 Pine St") for i in range(n)]
        new_phone = [envelope(i, settings, minute=4, last_name="King", street="22 Pine St",
                              phone="+1 206 555 0199") for i in range(n)]
        racing = [envelope(i, settings, minute=5, last_name="Hopper", street="22 Pine St",
                           phone="+1 206 555 0199") for i in range(n)]
        per_event = {
            "new": bench.scenario(new, 4, ledger),
            "changed": bench.scenario(changed, 4, ledger),
            "unchanged_new_event_id": bench.scenario(unchanged, 4, ledger),
            "duplicate_delivery": bench.scenario(unchanged, 4, ledger),
            "stale": bench.scenario(stale, 4, ledger),
            "changed_address": bench.scenario(moved_house, 4, ledger),
            "changed_phone": bench.scenario(new_phone, 4, ledger),
            # Both deliveries of each event in flight at once: one applies, the other is deferred
            # (lease busy) or finds it applied. Calls are per delivery, so 0.5 means one PATCH per event.
            "duplicate_delivery_concurrent": bench.scenario([m for m in racing for _ in (0, 1)], 8, ledger),
        }
        expected = {"new": "created", "changed": "updated", "unchanged_new_event_id": "unchanged",
                    "duplicate_delivery": "duplicate", "stale": "stale", "changed_address": "updated",
                    "changed_phone": "updated"}
        for name, outcome in expected.items():
            assert set(per_event[name]["outcomes"]) == {outcome}, (name, per_event[name]["outcomes"])
        deferred_in_race = len(bench.requeued.messages)
        # What Commerce holds in the end: one customer per email, every change applied by the PATCHes.
        held = bench.emulator.customers()
        assert len(held) == n, f"{len(held)} customers for {n} emails"
        for c in held:
            addresses = c.get("Addresses") or []
            assert (c["LastName"], c["Phone"], len(addresses), addresses[0]["Street"]) == \
                ("Hopper", "+12065550199", 1, "22 Pine St"), c["AccountNumber"]

        # --- throughput: new customers, Azurite ledger and in-process ledger interleaved ---------
        emulator.reset()
        emulator.set_faults(latency_ms=latency_ms)
        memory = CountingLedger(MemoryLedger())
        for ledger_port, base in ((ledger, 5_000), (memory, 6_000)):
            # Warm-up: open the connection pools and start the threads, as a running worker has.
            bench.batch([envelope(base + i, settings) for i in range(4 * concurrency)], concurrency,
                        bench.deps(ledger_port))
        runs: dict[str, list[float]] = {"azurite": [], "memory": []}
        # Where the machine's CPU goes, per event: this process (processor, client, Tables SDK),
        # the emulator, Azurite. On a small machine the three compete for the same cores.
        pids = {"bench": None, "emulator": emulator.process.pid, "azurite": azurite.process.pid}
        cpu = {name: dict.fromkeys(pids, 0.0) for name in runs}
        ledger_seconds = dict.fromkeys(LEDGER_OPS, 0.0)
        ledger_counts = dict.fromkeys(LEDGER_OPS, 0)
        emulator.reset_calls()
        for r in range(repeats):
            for name, ledger_port in (("azurite", ledger), ("memory", memory)):
                first = 10_000 + (2 * r + (name == "memory")) * events
                msgs = [envelope(first + i, settings) for i in range(events)]
                ledger_port.reset()
                before = {k: cpu_seconds(pid) for k, pid in pids.items()}
                elapsed, outcomes = bench.batch(msgs, concurrency, bench.deps(ledger_port))
                for k, pid in pids.items():
                    cpu[name][k] += cpu_seconds(pid) - before[k]
                assert set(outcomes) == {"created"}, outcomes
                runs[name].append(events / elapsed)
                if name == "azurite":
                    for op in LEDGER_OPS:
                        ledger_seconds[op] += ledger.seconds[op]
                        ledger_counts[op] += ledger.counts[op]
        calls_per = emulator.calls()["total"] / (2 * repeats * events)
        slots = min(concurrency, commerce_max_concurrency or concurrency)
        bound = slots / (calls_per * latency_ms / 1000)

        profile_text = None
        if profile:
            profiles = ThreadProfiles()
            msgs = [envelope(100_000 + i, settings) for i in range(events)]
            bench.batch(msgs, concurrency, bench.deps(ledger), wrap=profiles)
            profile_text = profiles.report()

        assert bench.deadletters.letters == []

        def summary(name: str) -> dict:
            values = runs[name]
            median = sorted(values)[len(values) // 2]
            return {"events_per_s_each": [round(x, 1) for x in values], "events_per_s": round(median, 1),
                    "ratio": round(median / bound, 3),
                    "cpu_ms_per_event": {k: round(v / (repeats * events) * 1000, 2)
                                         for k, v in cpu[name].items()}}

        result = {
            "per_event": per_event,
            "deferred_in_concurrent_duplicates": deferred_in_race,
            "token_fetches": bench.credential.fetches,
            "throughput": {
                "events": events, "latency_ms": latency_ms, "concurrency": concurrency,
                "commerce_max_concurrency": commerce_max_concurrency or None,
                "calls_per_event": round(calls_per, 3), "repeats": repeats,
                "bound_events_per_s": round(bound, 1),
                "ledger_azurite": summary("azurite"),
                "ledger_in_process": summary("memory"),
                "cpu_cores": os.cpu_count(),
                "azurite_ms_per_ledger_op": {op: round(ledger_seconds[op] / ledger_counts[op] * 1000, 2)
                                             for op in LEDGER_OPS if ledger_counts[op]},
                "azurite_ledger_ops_per_event": round(sum(ledger_counts.values()) / (repeats * events), 3),
            },
        }
        if profile_text is not None:
            result["profile"] = profile_text
        return result
    finally:
        emulator.stop()
        azurite.stop()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.pipeline")
    p.add_argument("--events", type=int, default=800)
    p.add_argument("--latency-ms", type=int, default=20)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3, help="timed runs of each kind; the median is reported")
    p.add_argument("--commerce-max-concurrency", type=int, default=0,
                   help="the client's cap on calls in flight (COMMERCE_MAX_CONCURRENCY); 0: none")
    p.add_argument("--profile", action="store_true",
                   help="also run one Azurite-ledger batch under cProfile (all threads) and print it")
    a = p.parse_args(argv)
    result = run(a.events, a.latency_ms, a.concurrency, a.repeats, a.commerce_max_concurrency, a.profile)
    profile = result.pop("profile", None)
    print(json.dumps(result, indent=2))
    if profile:
        print(profile)


if __name__ == "__main__":
    main()
