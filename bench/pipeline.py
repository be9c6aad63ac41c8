"""Commerce calls per event, token fetches, and processor throughput against the emulator.

    python -m bench.pipeline [--events N] [--latency-ms 20] [--concurrency 16]

Call counts come from the emulator's own counters (``/_emulator/calls``), never from the processor.
Throughput runs the real processor and client with ``concurrency`` threads against the emulator
with a fixed latency per call, after a warm-up that opens the connection pool, and reports the median
of several timed runs as a share of the bound concurrency / (calls x latency): the most any client
could do if it spent no time of its own.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

from azure.core.credentials import AccessToken

from commerce_emulator.testing import start_emulator_process
from shared.commerce.auth import CachedTokenProvider
from shared.commerce.client import CommerceClient
from shared.envelope import Envelope
from shared.processor import CallCounter, ProcessorDeps, process_message
from shared.settings import load_settings
from shared.telemetry import Telemetry
from shared.validation import validate_event

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


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


def envelope(i: int, settings, *, minute: int = 0, last_name: str = "Lovelace") -> str:
    # Fixed-width numbers: no address is a word prefix of another, so searches return one row
    # (the emulator, like the real full-text search, matches bench.1 against bench.10...).
    raw = {"specVersion": "1.0", "eventId": f"bench-{i}-{minute}-{last_name}",
           "eventType": "customer.updated",
           "occurredAt": (NOW - timedelta(hours=1) + timedelta(minutes=minute)).isoformat(),
           "customer": {"email": f"bench.{i:06d}@example.com", "firstName": "Ada", "lastName": last_name,
                        "phone": "+1 206 555 0100", "isOptedInMarketing": True,
                        "address": {"street": "1 Main St", "city": "Seattle", "state": "WA",
                                    "postalCode": "98101", "country": "US"}}}
    result = validate_event(raw, now=NOW, settings=settings.mapping, hash_key=settings.email_hash_key)
    assert result.event is not None, result.errors
    return Envelope.wrap(result.event, ingested_at=NOW, correlation_id="bench").to_json()


def run(events: int, latency_ms: int, concurrency: int, repeats: int = 3) -> dict:
    env = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    emulator = start_emulator_process()
    try:
        settings = load_settings({**env, "COMMERCE_BASE_URL": emulator.base_url,
                                  "COMMERCE_STATIC_DEV_TOKEN": emulator.token})
        credential = CountingCredential(emulator.token)
        calls = CallCounter()
        client = CommerceClient(settings.commerce, CachedTokenProvider(credential, "api://bench/.default"),
                                on_call=calls.add)
        deadletters = ListDeadLetters()
        deps = ProcessorDeps(commerce=client, deadletters=deadletters, telemetry=Telemetry(),
                             mapping=settings.mapping, max_dequeue_count=5, calls=calls,
                             clock=lambda: NOW)

        def per_event(messages: list[str], workers: int) -> tuple[float, float, list[str]]:
            before = emulator.calls()["total"]
            started = time.perf_counter()
            with ThreadPoolExecutor(workers) as pool:
                outcomes = [r.outcome.value for r in pool.map(lambda m: process_message(m, 1, deps), messages)]
            elapsed = time.perf_counter() - started
            return (emulator.calls()["total"] - before) / len(messages), elapsed, outcomes

        n = min(events, 200)
        new_msgs = [envelope(i, settings) for i in range(n)]
        new_calls, _, o_new = per_event(new_msgs, 4)
        changed_calls, _, o_changed = per_event(
            [envelope(i, settings, minute=1, last_name="King") for i in range(n)], 4)
        unchanged_calls, _, o_unchanged = per_event(
            [envelope(i, settings, minute=2, last_name="King") for i in range(n)], 4)
        duplicate_calls, _, o_dup = per_event(
            [envelope(i, settings, minute=2, last_name="King") for i in range(n)], 4)
        assert set(o_new) == {"created"} and set(o_changed) == {"updated"}, (o_new, o_changed)
        assert set(o_unchanged) == {"unchanged"} and set(o_dup) == {"unchanged"}

        emulator.reset()
        emulator.set_faults(latency_ms=latency_ms)
        # Warm-up: open the pool's connections and start the threads, as a running worker has.
        per_event([envelope(5_000 + i, settings) for i in range(4 * concurrency)], concurrency)
        runs = []
        for r in range(repeats):
            msgs = [envelope(10_000 + r * events + i, settings) for i in range(events)]
            calls_per, elapsed, outcomes = per_event(msgs, concurrency)
            assert set(outcomes) == {"created"}
            runs.append(events / elapsed)
        throughput = sorted(runs)[len(runs) // 2]
        bound = concurrency / (calls_per * latency_ms / 1000)
        assert deadletters.letters == []
        return {
            "calls_per_event": {"new": new_calls, "changed": changed_calls, "unchanged": unchanged_calls,
                                "duplicate_delivery": duplicate_calls},
            "token_fetches": credential.fetches,
            "throughput": {"events": events, "latency_ms": latency_ms, "concurrency": concurrency,
                           "calls_per_event": calls_per, "repeats": repeats,
                           "events_per_s_each": [round(x, 1) for x in runs],
                           "events_per_s": round(throughput, 1),
                           "bound_events_per_s": round(bound, 1), "ratio": round(throughput / bound, 3)},
        }
    finally:
        emulator.stop()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.pipeline")
    p.add_argument("--events", type=int, default=800)
    p.add_argument("--latency-ms", type=int, default=20)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3, help="timed runs; the median is reported")
    a = p.parse_args(argv)
    print(json.dumps(run(a.events, a.latency_ms, a.concurrency, a.repeats), indent=2))


if __name__ == "__main__":
    main()
