"""CPU time per event of the pure core: validate + normalise + map to a create body.

    python -m bench.core [--events N]

Prints microseconds of process CPU time per event (time.process_time, after a warm-up over the
same inputs, so the one-off costs of imports and per-country caches are excluded). Writes nothing.
Target: <= 300 µs/event.
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import datetime, timedelta, timezone

from shared.mapping import build_create_body
from shared.settings import InvalidFieldPolicy, MappingSettings
from shared.validation import validate_event

TARGET_US = 300.0
SETTINGS = MappingSettings(default_customer_type=1, default_group="30", default_currency="USD",
                           default_language="en-us", address_type=7, default_country="US",
                           state_id_overrides={}, invalid_field_policy=InvalidFieldPolicy.REJECT)
KEY = b"bench-hash-key-0123456789"
NOW = datetime(2026, 11, 26, 12, tzinfo=timezone.utc)

_ADDRESSES = [
    {"street": "1 Example Avenue", "city": "Seattle", "state": "WA", "postalCode": "98101", "country": "US"},
    {"street": "24 Example Drive", "city": "Ottawa", "state": "Ontario", "postalCode": "k1a0b1",
     "country": "CAN"},
    {"street": "10 Example Street", "city": "London", "state": "GB-ENG", "postalCode": "sw1a2aa",
     "country": "United Kingdom"},
    {"street": "Eksempelvej", "streetNumber": "3", "city": "Aarhus", "postalCode": "8000", "country": "DK"},
    {"street": "Beispielstraße", "streetNumber": "7", "city": "Berlin", "postalCode": "10115", "country": "DE"},
]
_PHONES = ["(202) 555-01{:02d}", "+44 20 7946 0{:03d}", "+1 613 555 01{:02d}", "+49 30 9018{:02d}"]
_NAMES = [("Ada", "Lovelace"), ("Siobhán", "O'Brien"), ("𠮷田", "花子 🌸"), ("José", "Núñez"), ("Li", "Wei")]


def make_events(n: int, seed: int = 7) -> list[dict]:
    rnd = random.Random(seed)
    events = []
    for i in range(n):
        first, last = rnd.choice(_NAMES)
        customer: dict = {"email": f"{first.lower()}.{i}+tag@Example.com", "firstName": first,
                          "lastName": last}
        if rnd.random() < 0.8:
            customer["phone"] = rnd.choice(_PHONES).format(rnd.randrange(100))
        if rnd.random() < 0.7:
            customer["address"] = dict(rnd.choice(_ADDRESSES))
        if rnd.random() < 0.5:
            customer.update(language=rnd.choice(["en-US", "da-DK", "de", "en-GB"]),
                            currencyCode=rnd.choice(["usd", "EUR", "DKK"]),
                            isOptedInMarketing=rnd.random() < 0.5)
        if rnd.random() < 0.2:
            customer["middleName"] = None
        occurred = NOW - timedelta(seconds=rnd.randrange(86_400))
        events.append({"specVersion": "1.0", "eventId": f"bench-{i}", "eventType": "customer.updated",
                       "occurredAt": occurred.isoformat(), "customer": customer})
    return events


def run(events: list[dict]) -> int:
    accepted = 0
    for raw in events:
        result = validate_event(raw, now=NOW, settings=SETTINGS, hash_key=KEY)
        if result.event is not None:
            build_create_body(result.event, SETTINGS)
            accepted += 1
    return accepted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.core")
    parser.add_argument("--events", type=int, default=5000)
    args = parser.parse_args(argv)
    events = make_events(max(args.events, 1))
    run(events[:500])  # warm-up: imports, per-country postal rules, language cache
    start = time.process_time()
    accepted = run(events)
    elapsed = time.process_time() - start
    per_event = elapsed / len(events) * 1e6
    print(f"validate+map: {per_event:.1f} µs/event CPU over {len(events)} events "
          f"({accepted} accepted); target <= {TARGET_US:.0f} µs/event: "
          f"{'met' if per_event <= TARGET_US else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
