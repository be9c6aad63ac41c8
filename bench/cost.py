"""How the cost of an event grows: with the size of the ledger, and with near-miss addresses in Commerce.

    python -m bench.cost [--sizes 1000 100000] [--customers 100] [--near-misses 0 10 49 50 120 500]

1. Ledger size. The ledger on an in-memory Azurite is filled with entries of other emails up to each
   size, then ``--customers`` new customers go through the sequence of bench.pipeline (new, changed,
   unchanged, duplicate, stale) with the real processor, client and ledger. Reported per event:
   Commerce calls (the emulator's count), ledger operations (counted around the store) and the wall
   time of each kind of ledger operation. Every operation is a point read or write by PartitionKey,
   so the counts must not move; the times show what the storage itself does with more entities
   (Azurite's in-memory store is not Azure's, so only the counts carry over).
2. Near misses. Commerce's email search is a word-prefix full-text search: ``nm10x.000001@...`` also
   finds ``nm10x.000001a7@...``. For each ``--near-misses`` k, k such customers are created in the
   emulator, then a new customer with the exact address is synced. Reported: the search requests it
   took (pages of ``COMMERCE_SEARCH_PAGE_SIZE``), and what the naive baseline (``$top=1``) did with the
   same address. A last case puts 2,000 unrelated customers in the emulator: no near miss, one page.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from bench.pipeline import NOW, ROOT, Bench, CountingLedger, envelope
from commerce_emulator.testing import start_emulator_process
from devhost.azurite import start_azurite
from shared.adapters.ledger_table import LedgerStore
from shared.adapters.memory_ledger import MemoryLedger
from shared.adapters.storage import StorageFactory, ensure_table
from shared.core.envelope import Envelope
from shared.core.ledger_rules import LedgerEntry, OrderKey, State
from shared.core.settings import load_settings
from shared.core.validation import validate_event

SEQUENCE = ("new", "changed", "unchanged", "duplicate", "stale")


def _filler(i: int) -> LedgerEntry:
    """An entry of some other email, as a worker leaves it after a create."""
    return LedgerEntry(
        hashlib.sha256(f"filler-{i}".encode()).hexdigest(),
        state=State.APPLIED,
        account_number=f"{100_000 + i:06d}",
        address_record_id=str(5_000_000 + i),
        email_contact_record_id=str(6_000_000 + i),
        last=OrderKey(NOW, f"filler-{i}"),
        recent_event_ids=(f"filler-{i}",),
        hashes={"email": "0" * 32, "name": "1" * 32},
        group_keys={"name": OrderKey(NOW, f"filler-{i}")},
    )


def fill(store: LedgerStore, start: int, stop: int, workers: int = 16) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda i: store.write(_filler(i)), range(start, stop), chunksize=64))
    return time.perf_counter() - started


def sequence(bench: Bench, ledger: CountingLedger, settings, first: int, n: int) -> dict:
    e = lambda i, **kw: envelope(first + i, settings, prefix="grow", **kw)  # noqa: E731
    batches = {
        "new": [e(i) for i in range(n)],
        "changed": [e(i, minute=1, last_name="King") for i in range(n)],
        "unchanged": [e(i, minute=2, last_name="King") for i in range(n)],
        "duplicate": [e(i, minute=2, last_name="King") for i in range(n)],
        "stale": [e(i, minute=1, last_name="Byron") for i in range(n)],
    }
    out = {}
    for name in SEQUENCE:
        result = bench.scenario(batches[name], 4, ledger)
        seconds = {
            op: round(ledger.seconds[op] / ledger.counts[op] * 1000, 2) for op in ledger.counts if ledger.counts[op]
        }
        out[name] = {
            "outcomes": result["outcomes"],
            "commerce_calls": result["commerce_calls"],
            "ledger_ops": result["ledger_ops_total"],
            "ms_per_ledger_op": seconds,
        }
    return out


def _event(email: str, settings, event_id: str) -> str:
    raw = {
        "specVersion": "1.0",
        "eventId": event_id,
        "occurredAt": (NOW - timedelta(hours=1)).isoformat(),
        "customer": {"email": email, "firstName": "Ada", "lastName": "Lovelace"},
    }
    result = validate_event(raw, now=NOW, settings=settings.mapping, hash_key=settings.email_hash_key)
    assert result.event is not None, result.errors
    return Envelope.wrap(result.event, ingested_at=NOW, correlation_id="bench").to_json()


def near_misses(bench: Bench, settings, counts: list[int]) -> list[dict]:
    memory = CountingLedger(MemoryLedger())
    rows = []
    cases = [(k, f"nm{k}x") for k in counts] + [(0, "lone")]
    for k, word in cases:
        unrelated = word == "lone"
        if unrelated:
            for j in range(2_000):
                bench.client.create_customer({"Email": f"other{j:05d}.someone@example.net", "Contacts": []})
        else:
            for j in range(k):
                bench.client.create_customer({"Email": f"{word}.000001a{j}@example.com", "Contacts": []})
        target = f"{word}.000001@example.com"
        bench.emulator.reset_calls()
        ours = bench.processor(bench.deps(memory))(_event(target, settings, f"{word}-1"))
        ours_calls = bench.emulator.calls()
        bench.emulator.reset_calls()
        update = bench.processor(bench.deps(memory))(
            _event(target, settings, f"{word}-2").replace('"Lovelace"', '"King"')
        )
        update_calls = bench.emulator.calls()
        naive_target = f"{word}.000001@example.org" if unrelated else f"{word}.000001@example.com"
        if not unrelated:  # the naive baseline, on the same kind of address (its own copy of the misses)
            for j in range(k):
                bench.client.create_customer({"Email": f"{word}.000001a{j}@example.org", "Contacts": []})
            naive_target = f"{word}.000001@example.org"
        bench.emulator.reset_calls()
        naive = bench.naive.process(_event(naive_target, settings, f"{word}-n"))
        naive_calls = bench.emulator.calls()
        created = [c for c in bench.emulator.customers() if c["Email"].lower() == naive_target]
        rows.append(
            {
                "near_misses": k,
                "other_customers_unrelated": 2_000 if unrelated else 0,
                "ours_new": {
                    "outcome": ours,
                    "search_pages": ours_calls.get("search", 0),
                    "commerce_calls": ours_calls["total"],
                },
                "ours_next_event": {
                    "outcome": update,
                    "search_pages": update_calls.get("search", 0),
                    "commerce_calls": update_calls["total"],
                },
                "naive_new": {
                    "outcome": naive,
                    "search_pages": naive_calls.get("search", 0),
                    "customer_created": bool(created),
                },
            }
        )
    return rows


def run(sizes: list[int], customers: int, counts: list[int]) -> dict:
    env = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
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
        table = StorageFactory(env).table(settings.ledger_table)
        ensure_table(table)
        store = LedgerStore(table)
        ledger = CountingLedger(store)
        bench = Bench(emulator, settings, 0)
        growth, filled = [], 0
        for k, size in enumerate(sorted(sizes)):
            seconds = fill(store, filled, size - customers * k)
            filled = size - customers * k
            growth.append(
                {
                    "ledger_entries_before": filled + customers * k,
                    "fill_seconds": round(seconds, 1),
                    "per_event": sequence(bench, ledger, settings, 700_000 + 10_000 * k, customers),
                }
            )
        return {
            "python": sys.version.split()[0],
            "cpu_cores": os.cpu_count(),
            "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
            "search_page_size": settings.commerce.search_page_size,
            "ledger_growth": growth,
            "near_misses": near_misses(bench, settings, counts),
        }
    finally:
        emulator.stop()
        azurite.stop()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.cost")
    p.add_argument("--sizes", type=int, nargs="+", default=[1_000, 100_000], help="ledger entries")
    p.add_argument("--customers", type=int, default=100, help="customers synced at each size")
    p.add_argument("--near-misses", type=int, nargs="+", default=[0, 10, 49, 50, 120, 500])
    a = p.parse_args(argv)
    print(json.dumps(run(a.sizes, a.customers, a.near_misses), indent=2))


if __name__ == "__main__":
    main()
