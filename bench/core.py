"""CPU time per event of the pure core: validate + normalise + map to a create body; and start-up.

    python -m bench.core [--events N] [--repeat R] [--import-runs K]

Prints microseconds of process CPU time per event (time.process_time, after a warm-up over the
same inputs, so the one-off costs of imports and per-country caches are excluded), the best of
``--repeat`` timed runs (the machine is shared: the best run is the least disturbed). Target:
<= 300 µs/event. With ``--import-runs K`` it also prints the wall time of ``import function_app`` in
a fresh interpreter, best of K (the cold start's share that is this app's). Writes nothing.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

from shared.core.commerce_bodies.create import build_create_body
from shared.core.settings import InvalidFieldPolicy, MappingSettings
from shared.core.validation import validate_event

TARGET_US = 300.0
SETTINGS = MappingSettings(
    default_customer_type=1,
    default_group="30",
    default_currency="USD",
    default_language="en-us",
    address_type=7,
    default_country="US",
    state_id_overrides={},
    invalid_field_policy=InvalidFieldPolicy.REJECT,
)
KEY = b"bench-hash-key-0123456789"
NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)

# Real senders' data: names in the shop's language, loose postal codes, tel: URIs, extensions.
_LOOSE_ADDRESSES = [
    {"street": "Hauptstraße 5", "city": "Wien", "postalCode": "1010", "country": "Österreich", "state": "Wien"},
    {
        "street": "Rue Exemple",
        "streetNumber": "3",
        "city": "Paris",
        "postalCode": "75001",
        "country": "france",
        "state": "Ile-de-France",
    },
    {
        "street": "Beispielweg",
        "streetNumber": "9",
        "city": "München",
        "postalCode": "80331",
        "country": "Deutschland",
        "state": "Bavaria",
    },
    {"street": "Triq il-Kbira", "city": "Valletta", "postalCode": "vlt1117", "country": "Malta"},
]
_LOOSE_PHONES = ["tel:+1-202-555-01{:02d}", "+44 20 7946 0{:03d} ext. 12", "+1 (202) 555-01{:02d} x7"]
_ADDRESSES = [
    {"street": "1 Example Avenue", "city": "Seattle", "state": "WA", "postalCode": "98101", "country": "US"},
    {"street": "24 Example Drive", "city": "Ottawa", "state": "Ontario", "postalCode": "k1a0b1", "country": "CAN"},
    {
        "street": "10 Example Street",
        "city": "London",
        "state": "GB-ENG",
        "postalCode": "sw1a2aa",
        "country": "United Kingdom",
    },
    {"street": "Eksempelvej", "streetNumber": "3", "city": "Aarhus", "postalCode": "8000", "country": "DK"},
    {"street": "Beispielstraße", "streetNumber": "7", "city": "Berlin", "postalCode": "10115", "country": "DE"},
]
_PHONES = ["(202) 555-01{:02d}", "+44 20 7946 0{:03d}", "+1 613 555 01{:02d}", "+49 30 9018{:02d}"]
_NAMES = [("Ada", "Lovelace"), ("Siobhán", "O'Brien"), ("𠮷田", "花子 🌸"), ("José", "Núñez"), ("Li", "Wei")]


def make_events(n: int, seed: int = 7, loose: bool = False) -> list[dict]:
    """``loose``: a share of the addresses and phones written as real senders write them."""
    rnd = random.Random(seed)
    events = []
    for i in range(n):
        first, last = rnd.choice(_NAMES)
        customer: dict = {"email": f"{first.lower()}.{i}+tag@Example.com", "firstName": first, "lastName": last}
        if rnd.random() < 0.8:
            phones = _PHONES + _LOOSE_PHONES if loose else _PHONES
            customer["phone"] = rnd.choice(phones).format(rnd.randrange(100))
        if rnd.random() < 0.7:
            customer["address"] = dict(rnd.choice(_ADDRESSES + _LOOSE_ADDRESSES if loose else _ADDRESSES))
        if rnd.random() < 0.5:
            customer.update(
                language=rnd.choice(["en-US", "da-DK", "de", "en-GB"]),
                currencyCode=rnd.choice(["usd", "EUR", "DKK"]),
                isOptedInMarketing=rnd.random() < 0.5,
            )
        if rnd.random() < 0.2:
            customer["middleName"] = None
        occurred = NOW - timedelta(seconds=rnd.randrange(86_400))
        events.append(
            {
                "specVersion": "1.0",
                "eventId": f"bench-{i}",
                "eventType": "customer.updated",
                "occurredAt": occurred.isoformat(),
                "customer": customer,
            }
        )
    return events


def run(events: list[dict]) -> int:
    accepted = 0
    for raw in events:
        result = validate_event(raw, now=NOW, settings=SETTINGS, hash_key=KEY)
        if result.event is not None:
            build_create_body(result.event, SETTINGS)
            accepted += 1
    return accepted


def per_event_us(events: list[dict], repeat: int) -> tuple[float, int]:
    run(events[:500])  # warm-up: imports, per-country postal rules, language cache
    best, accepted = float("inf"), 0
    for _ in range(max(repeat, 1)):
        start = time.process_time()
        accepted = run(events)
        best = min(best, (time.process_time() - start) / len(events) * 1e6)
    return best, accepted


def import_ms(runs: int) -> float:
    """Wall time of ``import function_app`` in a fresh interpreter, best of ``runs``."""
    code = "import time; t = time.perf_counter(); import function_app; print((time.perf_counter() - t) * 1000)"
    times = [
        float(
            subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()[-1]
        )
        for _ in range(runs)
    ]
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.core")
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=1, help="timed runs; the best is reported")
    parser.add_argument(
        "--import-runs", type=int, default=0, help="also time `import function_app` in this many fresh interpreters"
    )
    args = parser.parse_args(argv)
    for label, loose in (("validate+map", False), ("validate+map, loose real-world input", True)):
        events = make_events(max(args.events, 1), loose=loose)
        per_event, accepted = per_event_us(events, args.repeat)
        print(
            f"{label}: {per_event:.1f} µs/event CPU over {len(events)} events "
            f"({accepted} accepted, best of {max(args.repeat, 1)}); target <= {TARGET_US:.0f} "
            f"µs/event: {'met' if per_event <= TARGET_US else 'MISSED'}"
        )
    if args.import_runs:
        print(
            f"import function_app: {import_ms(args.import_runs):.0f} ms wall (best of "
            f"{args.import_runs} fresh interpreters)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
