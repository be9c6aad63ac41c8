"""Commerce calls and ledger operations per event, token fetches, and processor throughput, beside a
naive baseline.

    python -m bench.pipeline [--events N] [--latency-ms 20] [--concurrency 16] [--repeats 3]
                             [--commerce-max-concurrency 0] [--profile]

Runs the real processor, Commerce client and ledger (``LedgerStore`` on an in-memory Azurite) against
the Commerce emulator, both started here as child processes. Call counts come from the emulator's
own counters (``/_emulator/calls``), never from the processor; ledger operations from a counting
wrapper around the store (reads, inserts, ETag replaces, lost races), with the time each took.

The naive baseline (``bench.naive``: a token per event, search with ``$top=1``, create, nothing else)
runs against the same emulator in the same run, through the same events, so that every figure is
also a ratio against what a partner would otherwise deploy, correctness included: what Commerce holds
afterwards, and duplicates when both deliveries of a new customer's event run at once.

Throughput: ``concurrency`` threads run the processor over new-customer events against the emulator
answering every call after ``latency_ms``, after a warm-up that opens the connection pools. Three
variants, interleaved run by run so that other load on the machine hits them alike: the ledger on
Azurite (what a worker does), an in-process ledger of the same semantics (what the processor costs
without storage round trips), and the naive baseline. Each is reported as the median of ``repeats``
runs and as a share of the bound concurrency / (calls x latency): the most any client could do if it
spent no time of its own and storage answered instantly. CPU per event is measured per process (this
one, the emulator, Azurite); the goals are the ratios within one run.

CPU per Commerce call: one thread, the emulator without latency, the processor's ``CommerceClient``
against the same two requests (search, create) sent with ``requests.Session.post`` as the naive
baseline sends them, interleaved; ``time.process_time`` of this process, so neither the emulator's CPU
nor other load on the machine is counted.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
from azure.core.credentials import AccessToken
from requests.adapters import HTTPAdapter

from bench.naive import NaiveSync
from commerce_emulator.testing import start_emulator_process
from devhost.azurite import start_azurite
from shared.adapters.commerce.auth import CachedTokenProvider
from shared.adapters.commerce.client import CommerceClient, search_body
from shared.adapters.ledger_table import LedgerStore
from shared.adapters.memory_ledger import MemoryLedger  # the same ETag rules the unit tests use
from shared.adapters.storage import StorageFactory, ensure_table
from shared.adapters.telemetry import Telemetry
from shared.core.commerce_bodies.create import build_create_body
from shared.core.envelope import Envelope
from shared.core.ledger_rules import LedgerConflict, LedgerEntry
from shared.core.settings import load_settings
from shared.core.validation import validate_event
from shared.usecases.processor import CallCounter, LedgerPort, ProcessorDeps, process_message

try:
    from shared.usecases.processor import EntryPresence
except ImportError:  # an earlier release, measured by this bench for before/after figures
    EntryPresence = None  # type: ignore[assignment, misc]

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
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


def envelope(
    i: int,
    settings,
    *,
    minute: int = 0,
    last_name: str = "Lovelace",
    street: str = "1 Main St",
    phone: str = "+1 206 555 0100",
    prefix: str = "bench",
) -> str:
    # Fixed-width numbers: no address is a word prefix of another, so searches return one row
    # (the emulator, like the real full-text search, matches bench.1 against bench.10...).
    raw = {
        "specVersion": "1.0",
        "eventId": f"bench-{i}-{minute}-{last_name}-{len(street)}-{phone[-2:]}",
        "eventType": "customer.updated",
        "occurredAt": (NOW - timedelta(hours=1) + timedelta(minutes=minute)).isoformat(),
        "customer": {
            "email": f"{prefix}.{i:06d}@example.com",
            "firstName": "Ada",
            "lastName": last_name,
            "phone": phone,
            "isOptedInMarketing": True,
            "address": {"street": street, "city": "Seattle", "state": "WA", "postalCode": "98101", "country": "US"},
        },
    }
    result = validate_event(raw, now=NOW, settings=settings.mapping, hash_key=settings.email_hash_key)
    assert result.event is not None, result.errors
    return Envelope.wrap(result.event, ingested_at=NOW, correlation_id="bench").to_json()


class Bench:
    """One emulator, one client: runs batches of messages and counts what they cost."""

    def __init__(self, emulator, settings, commerce_max_concurrency: int):
        self.emulator, self.settings = emulator, settings
        self.credential = CountingCredential(emulator.token)
        self.calls = CallCounter()
        self.client = CommerceClient(
            settings.commerce,
            CachedTokenProvider(self.credential, "api://bench/.default"),
            on_call=self.calls.add,
            max_concurrency=commerce_max_concurrency or None,
        )
        self.deadletters = ListDeadLetters()
        self.requeued = Requeued()
        self._presence: dict[int, object] = {}
        self.naive_credential = CountingCredential(emulator.token)
        self.naive = NaiveSync(settings.commerce, settings.mapping, self.naive_credential, "api://bench/.default")

    def deps(self, ledger: LedgerPort) -> ProcessorDeps:
        s = self.settings
        extra = {}
        if EntryPresence is not None:
            # One EntryPresence per ledger, kept across batches, as a worker process keeps its own.
            extra["presence"] = self._presence.setdefault(id(ledger), EntryPresence())
        return ProcessorDeps(
            commerce=self.client,
            deadletters=self.deadletters,
            telemetry=Telemetry(),
            mapping=s.mapping,
            max_dequeue_count=5,
            calls=self.calls,
            clock=lambda: NOW,
            ledger=ledger,
            requeue=self.requeued,
            retry=s.retry,
            lease_seconds=s.ledger_lease_seconds,
            call_budget=self.client.call_budget,
            hash_key=s.email_hash_key,
            rng=random.Random(7),
            **extra,
        )

    @staticmethod
    def processor(deps: ProcessorDeps) -> Callable[[str], str]:
        return lambda message: process_message(message, 1, deps).outcome.value

    def batch(
        self,
        messages: list[str],
        workers: int,
        work: Callable[[str], str],
        wrap: Callable[[Callable[[], str]], str] | None = None,
    ) -> tuple[float, Counter]:
        """Run ``work`` over ``messages`` on ``workers`` threads: (seconds, outcome counts)."""

        def one(message: str) -> str:
            return wrap(lambda: work(message)) if wrap else work(message)

        started = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            outcomes = Counter(pool.map(one, messages))
        return time.perf_counter() - started, outcomes

    def scenario(self, messages: list[str], workers: int, ledger: CountingLedger | None) -> dict:
        """Commerce calls (emulator's count), tokens and ledger operations per event of one batch;
        ``ledger`` None: the naive baseline."""
        self.emulator.reset_calls()
        tokens = self.naive_credential.fetches
        if ledger is not None:
            ledger.reset()
        work = self.naive.process if ledger is None else self.processor(self.deps(ledger))
        _, outcomes = self.batch(messages, workers, work)
        n = len(messages)
        counted = self.emulator.calls()
        by_op = {k: round(v / n, 3) for k, v in counted.items() if k not in ("total", "faulted") and v}
        result = {
            "outcomes": dict(outcomes),
            "commerce_calls": round(counted["total"] / n, 3),
            "commerce_by_operation": by_op,
        }
        if ledger is None:
            result["tokens"] = round((self.naive_credential.fetches - tokens) / n, 3)
        else:
            result["ledger_ops"] = {k: round(v / n, 3) for k, v in ledger.counts.items() if v}
            result["ledger_ops_total"] = round(sum(ledger.counts.values()) / n, 3)
        return result


class ThreadProfiles:
    """cProfile in every worker thread (a Profile sees only the thread that enabled it), merged.
    Times are CPU seconds of the worker threads."""

    def __init__(self):
        self._local = threading.local()
        self._all: list[cProfile.Profile] = []
        self._lock = threading.Lock()

    def __call__(self, work: Callable[[], str]) -> str:
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

    def stats(self) -> pstats.Stats:
        stats = pstats.Stats(self._all[0], stream=io.StringIO())
        for p in self._all[1:]:
            stats.add(p)
        return stats

    def by_package(self, events: int) -> list[tuple[str, float, float]]:
        """Own (tottime) CPU by package or module: (name, share, ms per event). cProfile's own overhead
        inflates the absolute figures; the shares are what to read."""
        totals: Counter = Counter()
        for (filename, _, name), (_, _, own, _, _) in self.stats().stats.items():  # type: ignore[attr-defined]
            totals[_package(filename, name)] += own
        whole = sum(totals.values()) or 1.0
        return [(k, round(v / whole, 3), round(v / events * 1000, 3)) for k, v in totals.most_common(25)]

    def breakdown(self, events: int) -> dict[str, float]:
        """CPU ms per event (cumulative, under cProfile) of the processor as a whole and of its two kinds
        of I/O: the ledger (``LedgerStore.read``/``write``: requests and (de)serialisation) and the
        Commerce client (``CommerceClient._call``), and the client's ms per call; the rest is the
        processor's own work."""
        cumulative: Counter = Counter()
        commerce_calls = 0
        wanted = {
            ("shared/usecases/processor/delivery.py", "process_message"): "processor",
            ("shared/usecases/processor.py", "process_message"): "processor",  # releases before the package
            ("shared/adapters/ledger_table.py", "read"): "ledger",
            ("shared/adapters/ledger_table.py", "write"): "ledger",
            ("shared/adapters/commerce/client.py", "_call"): "commerce",
        }
        for (filename, _, name), (_, calls, _, cum, _) in self.stats().stats.items():  # type: ignore[attr-defined]
            for (suffix, function), kind in wanted.items():
                if filename.endswith(suffix) and name == function:
                    cumulative[kind] += cum
                    commerce_calls += calls if kind == "commerce" else 0
        ms = {k: round(v / events * 1000, 3) for k, v in cumulative.items()}
        ms["rest"] = round(ms.get("processor", 0) - ms.get("ledger", 0) - ms.get("commerce", 0), 3)
        if commerce_calls:
            ms["commerce_per_call"] = round(cumulative["commerce"] / commerce_calls * 1000, 3)
        return ms

    def report(self, top: int = 30) -> str:
        out = io.StringIO()
        stats = self.stats()
        stats.stream = out  # type: ignore[attr-defined]
        stats.sort_stats("cumulative").print_stats(top)
        stats.sort_stats("tottime").print_stats(top)
        return out.getvalue()


def cpu_per_call(bench: Bench, settings, events: int = 300, rounds: int = 3) -> dict:
    """CPU µs per Commerce call on one thread, new customers (a search, then a create): the processor's
    client, and ``requests.Session.post`` as the naive baseline calls it (same pool, same headers and
    bodies). Interleaved rounds; each list is per round, the ratio is of the best rounds."""
    commerce = settings.commerce
    session = requests.Session()
    session.mount("http://", HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0))
    session.mount("https://", HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0))
    base, version = commerce.base_url.rstrip("/"), commerce.api_version
    timeout = (commerce.connect_timeout, commerce.read_timeout)
    headers = {
        "OUN": commerce.oun,
        "Authorization": f"{commerce.auth_scheme} {bench.emulator.token}",
        "Accept": "application/json",
        "Content-Type": "application/json",
    }
    top = commerce.search_page_size

    def client(email: str, body: dict) -> None:
        bench.client.search_customers_by_email(email)
        bench.client.create_customer(body)

    def session_post(email: str, body: dict) -> None:
        found = session.post(
            f"{base}/Customers/SearchByFields?$top={top}&$skip=0&api-version={version}",
            json=search_body(email),
            headers=headers,
            timeout=timeout,
        )
        found.raise_for_status()
        found.json()
        created = session.post(
            f"{base}/Customers?api-version={version}",
            json={**body, "AccountNumber": ""},
            headers=headers,
            timeout=timeout,
        )
        created.raise_for_status()
        created.json()

    def customers(first: int, n: int) -> list[tuple[str, dict]]:
        events = [Envelope.from_json(envelope(first + i, settings)).event for i in range(n)]
        return [(e.email, build_create_body(e, settings.mapping)) for e in events]

    kinds = {"client": client, "session_post": session_post}
    us: dict[str, list[float]] = {name: [] for name in kinds}
    first = 300_000
    for k, work in enumerate(kinds.values()):  # warm-up: the connection, the token
        for email, body in customers(first + 100 * k, 20):
            work(email, body)
    first += 1_000
    for _ in range(rounds):
        for work, values in zip(kinds.values(), us.values(), strict=True):
            batch = customers(first, events)
            first += events
            started = time.process_time()
            for email, body in batch:
                work(email, body)
            values.append(round((time.process_time() - started) / (2 * events) * 1e6, 1))
    session.close()
    return {
        "events": events,
        "us_per_call": us,
        "client_over_session_post": round(min(us["client"]) / min(us["session_post"]), 3),
    }


def _package(filename: str, name: str) -> str:
    if "site-packages/" in filename:
        parts = filename.split("site-packages/", 1)[1].split("/")
        return "/".join(parts[:3]) if parts[0] == "azure" else parts[0]
    if filename.startswith(str(ROOT)):
        return filename[len(str(ROOT)) + 1 :]
    if "/lib/python3" in filename:
        return "stdlib " + filename.split("/lib/python3", 1)[1].split("/", 2)[1].removesuffix(".py")
    return "builtins" if filename.startswith("~") or filename.startswith("<") else filename


def _holds(held: list[dict], prefix: str, n: int) -> dict:
    """What Commerce holds for the ``n`` emails ``prefix``.NNNNNN after the sequence of events."""
    mine = [c for c in held if str(c.get("Email", "")).startswith(prefix + ".")]
    by_email = Counter(c["Email"].lower() for c in mine)
    latest = sum(
        1
        for c in mine
        if (c.get("LastName"), c.get("Phone")) == ("Hopper", "+12065550199")
        and (c.get("Addresses") or [{}])[0].get("Street") == "22 Pine St"
    )
    return {
        "emails": n,
        "customers": len(mine),
        "emails_with_more_than_one": sum(1 for v in by_email.values() if v > 1),
        "emails_missing": n - len(by_email),
        "customers_with_the_latest_data": latest,
    }


def run(
    events: int,
    latency_ms: int,
    concurrency: int,
    repeats: int = 3,
    commerce_max_concurrency: int = 0,
    profile: bool = False,
) -> dict:
    env = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    emulator = start_emulator_process()
    azurite = start_azurite()
    try:
        env = {
            **env,
            "COMMERCE_BASE_URL": emulator.base_url,
            "COMMERCE_STATIC_DEV_TOKEN": emulator.token,
            "AzureWebJobsStorage": azurite.connection_string,
        }
        settings = load_settings(env)
        table = StorageFactory(env).table(settings.ledger_table)  # what the worker builds
        ensure_table(table)
        ledger = CountingLedger(LedgerStore(table))
        bench = Bench(emulator, settings, commerce_max_concurrency)

        # --- per event costs: 200 customers through every kind of event, in order ---------------
        # The same sequence for the naive baseline, on other addresses (naive.NNNNNN@...).
        n = min(events, 200)

        def sequence(prefix: str) -> dict[str, list[str]]:
            e = lambda i, **kw: envelope(i, settings, prefix=prefix, **kw)  # noqa: E731
            racing = [
                e(i, minute=5, last_name="Hopper", street="22 Pine St", phone="+1 206 555 0199") for i in range(n)
            ]
            return {
                "new": [e(i) for i in range(n)],
                "changed": [e(i, minute=1, last_name="King") for i in range(n)],
                "unchanged_new_event_id": [e(i, minute=2, last_name="King") for i in range(n)],
                "duplicate_delivery": [e(i, minute=2, last_name="King") for i in range(n)],
                "stale": [e(i, minute=1, last_name="Byron") for i in range(n)],  # older than :02
                "changed_address": [e(i, minute=3, last_name="King", street="22 Pine St") for i in range(n)],
                "changed_phone": [
                    e(i, minute=4, last_name="King", street="22 Pine St", phone="+1 206 555 0199") for i in range(n)
                ],
                # Both deliveries of each event in flight at once: one applies, the other is deferred
                # (lease busy) or finds it applied. Calls are per delivery: 0.5 is one PATCH per event.
                "duplicate_delivery_concurrent": [m for m in racing for _ in (0, 1)],
                # Both deliveries of a new customer's event at once: the classic duplicate create.
                "new_concurrent": [m for i in range(n) for m in (e(500_000 + i),) * 2],
            }

        ours, naive = sequence("bench"), sequence("naive")
        per_event = {
            name: bench.scenario(msgs, 8 if name.endswith("_concurrent") else 4, ledger) for name, msgs in ours.items()
        }
        naive_per_event = {
            name: bench.scenario(msgs, 8 if name.endswith("_concurrent") else 4, None) for name, msgs in naive.items()
        }
        expected = {
            "new": "created",
            "changed": "updated",
            "unchanged_new_event_id": "unchanged",
            "duplicate_delivery": "duplicate",
            "stale": "stale",
            "changed_address": "updated",
            "changed_phone": "updated",
        }
        for name, outcome in expected.items():
            assert set(per_event[name]["outcomes"]) == {outcome}, (name, per_event[name]["outcomes"])
        deferred_in_race = len(bench.requeued.messages)
        # What Commerce holds in the end: one customer per email, every change applied by the PATCHes.
        held = bench.emulator.customers()
        ours_held = [c for c in held if c["Email"].startswith("bench.")]
        assert len(ours_held) == 2 * n, f"{len(ours_held)} customers for {2 * n} emails"
        for c in ours_held:
            if c["Email"].startswith("bench.5"):  # the new_concurrent customers: created once each
                continue
            addresses = c.get("Addresses") or []
            assert (c["LastName"], c["Phone"], len(addresses), addresses[0]["Street"]) == (
                "Hopper",
                "+12065550199",
                1,
                "22 Pine St",
            ), c["AccountNumber"]
        correctness = {
            "ours": {
                **_holds([c for c in ours_held if not c["Email"].startswith("bench.5")], "bench", n),
                "new_concurrent": _holds([c for c in held if c["Email"].startswith("bench.5")], "bench", n),
            },
            "naive": {
                **_holds(
                    [c for c in held if c["Email"].startswith("naive.") and not c["Email"].startswith("naive.5")],
                    "naive",
                    n,
                ),
                "new_concurrent": _holds([c for c in held if c["Email"].startswith("naive.5")], "naive", n),
            },
        }

        # --- throughput: new customers; Azurite ledger, in-process ledger and naive interleaved ---
        emulator.reset()
        emulator.set_faults(latency_ms=latency_ms)
        memory = CountingLedger(MemoryLedger())
        variants: dict[str, Callable[[str], str]] = {
            "azurite": bench.processor(bench.deps(ledger)),
            "memory": bench.processor(bench.deps(memory)),
            "naive": bench.naive.process,
        }
        for k, work in enumerate(variants.values()):
            # Warm-up: open the connection pools and start the threads, as a running worker has.
            bench.batch([envelope(5_000 + 1_000 * k + i, settings) for i in range(4 * concurrency)], concurrency, work)
        runs: dict[str, list[float]] = {name: [] for name in variants}
        # Where the machine's CPU goes, per event: this process (processor, client, Tables requests),
        # the emulator, Azurite. On a small machine the three compete for the same cores.
        pids = {"bench": None, "emulator": emulator.process.pid, "azurite": azurite.process.pid}
        cpu = {name: dict.fromkeys(pids, 0.0) for name in runs}
        ledger_seconds = dict.fromkeys(LEDGER_OPS, 0.0)
        ledger_counts = dict.fromkeys(LEDGER_OPS, 0)
        calls = {name: 0 for name in variants}
        tokens = bench.naive_credential.fetches
        for r in range(repeats):
            for v, (name, work) in enumerate(variants.items()):
                first = 10_000 + (len(variants) * r + v) * events
                msgs = [envelope(first + i, settings) for i in range(events)]
                ledger.reset()
                emulator.reset_calls()
                before = {k: cpu_seconds(pid) for k, pid in pids.items()}
                elapsed, outcomes = bench.batch(msgs, concurrency, work)
                for k, pid in pids.items():
                    cpu[name][k] += cpu_seconds(pid) - before[k]
                calls[name] += emulator.calls()["total"]
                assert set(outcomes) == {"created"}, (name, outcomes)
                runs[name].append(events / elapsed)
                if name == "azurite":
                    for op in LEDGER_OPS:
                        ledger_seconds[op] += ledger.seconds[op]
                        ledger_counts[op] += ledger.counts[op]
        naive_tokens = bench.naive_credential.fetches - tokens
        emulator.clear_faults()  # waiting costs no CPU, but 20 ms a call would make this slow
        per_call = cpu_per_call(bench, settings)
        emulator.set_faults(latency_ms=latency_ms)
        calls_per = calls["azurite"] / (repeats * events)
        slots = min(concurrency, commerce_max_concurrency or concurrency)
        bound = slots / (calls_per * latency_ms / 1000)

        profile_text, profile_summary = None, None
        if profile:
            profile_summary, texts = {}, []
            for k, name in enumerate(("azurite", "memory")):
                profiles = ThreadProfiles()
                msgs = [envelope(100_000 + k * events + i, settings) for i in range(events)]
                bench.batch(msgs, concurrency, variants[name], wrap=profiles)
                profile_summary[name] = {
                    "cpu_ms_per_event": profiles.breakdown(events),
                    "own_time_by_package": profiles.by_package(events),
                }
                texts.append(f"=== {name} ledger: cProfile of {events} new-customer events\n{profiles.report()}")
            profile_text = "\n".join(texts)

        assert bench.deadletters.letters == []

        def summary(name: str) -> dict:
            values = runs[name]
            median = sorted(values)[len(values) // 2]
            return {
                "events_per_s_each": [round(x, 1) for x in values],
                "events_per_s": round(median, 1),
                "ratio": round(median / bound, 3),
                "commerce_calls_per_event": round(calls[name] / (repeats * events), 3),
                "cpu_ms_per_event": {k: round(v / (repeats * events) * 1000, 2) for k, v in cpu[name].items()},
            }

        summaries = {name: summary(name) for name in variants}
        own_cpu = {name: cpu[name]["bench"] for name in variants}
        result = {
            "python": sys.version.split()[0],
            "cpu_cores": os.cpu_count(),
            "load_average_before_after": [load_before, os.getloadavg() if hasattr(os, "getloadavg") else None],
            "per_event": per_event,
            "deferred_in_concurrent_duplicates": deferred_in_race,
            "token_fetches": bench.credential.fetches,
            "naive": {
                "per_event": naive_per_event,
                "what_commerce_holds": correctness["naive"],
                "token_fetches_per_event_throughput": round(naive_tokens / (repeats * events), 3),
            },
            "what_commerce_holds": correctness["ours"],
            "throughput": {
                "events": events,
                "latency_ms": latency_ms,
                "concurrency": concurrency,
                "commerce_max_concurrency": commerce_max_concurrency or None,
                "calls_per_event": round(calls_per, 3),
                "repeats": repeats,
                "bound_events_per_s": round(bound, 1),
                "ledger_azurite": summaries["azurite"],
                "ledger_in_process": summaries["memory"],
                "naive": summaries["naive"],
                "ratios": {
                    # The goals: ratios within this one run.
                    "cpu_azurite_over_in_process": round(own_cpu["azurite"] / own_cpu["memory"], 2),
                    "cpu_azurite_over_naive": round(own_cpu["azurite"] / own_cpu["naive"], 2),
                    "throughput_azurite_over_naive": round(
                        summaries["azurite"]["events_per_s"] / summaries["naive"]["events_per_s"], 2
                    ),
                },
                "azurite_ms_per_ledger_op": {
                    op: round(ledger_seconds[op] / ledger_counts[op] * 1000, 2)
                    for op in LEDGER_OPS
                    if ledger_counts[op]
                },
                "azurite_ledger_ops_per_event": round(sum(ledger_counts.values()) / (repeats * events), 3),
            },
            "commerce_cpu_per_call": per_call,
        }
        if profile_text is not None:
            result["profile_summary"] = profile_summary
            result["profile"] = profile_text
        return result
    finally:
        bench.naive.close() if "bench" in locals() else None
        emulator.stop()
        azurite.stop()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.pipeline")
    p.add_argument("--events", type=int, default=800)
    p.add_argument("--latency-ms", type=int, default=20)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3, help="timed runs of each kind; the median is reported")
    p.add_argument(
        "--commerce-max-concurrency",
        type=int,
        default=0,
        help="the client's cap on calls in flight (COMMERCE_MAX_CONCURRENCY); 0: none",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="also run one batch of each ledger under cProfile (all threads): a summary in the "
        "JSON, the tables after it",
    )
    a = p.parse_args(argv)
    result = run(a.events, a.latency_ms, a.concurrency, a.repeats, a.commerce_max_concurrency, a.profile)
    profile = result.pop("profile", None)
    print(json.dumps(result, indent=2))
    if profile:
        print(profile)


if __name__ == "__main__":
    main()
