"""The product as separate OS processes: one HTTP ingest devhost and N queue-only worker devhosts,
sharing nothing but Azurite and the Commerce emulator, each test with its own queue and table names.

Also what the multi-worker tests need around it: posting batches, waiting until every queue is
drained, reading dead letters and the ledger from storage, killing a worker process mid-call and
starting another, and generators of customer events (full, or carrying some field groups only)
that know, independently of the product's code, what Commerce must hold after each one.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import requests

from devhost.queue_listener import POISON_SUFFIX
from devhost.testing import DevhostProcess, start_devhost_process
from shared.adapters.dead_letter_table import DeadLetterStore
from shared.adapters.storage import StorageFactory, ensure_queue, ensure_table
from shared.core import telemetry_names as names
from shared.core.dead_letters import DeadLetter
from shared.core.privacy import email_hash
from shared.core.settings import Settings, load_settings
from tests.support.stack import TEST_HOST_JSON, test_env

# host.json of the worker processes: the in-process tests' one, with the production
# maxDequeueCount (the processor reads it from the deployed host.json) and a slower poll, as 9
# processes poll the same Azurite.
_TEST_QUEUES = TEST_HOST_JSON["extensions"]["queues"]
WORKER_HOST_JSON = {
    **TEST_HOST_JSON,
    "extensions": {"queues": {**_TEST_QUEUES, "maxDequeueCount": 5, "maxPollingInterval": "00:00:00.200"}},
}
# App settings scaled down the same way (the lease must stay >= 2 x (connect + read timeout)).
SCALED_SETTINGS = {
    "COMMERCE_CONNECT_TIMEOUT_SECONDS": "0.5",
    "COMMERCE_READ_TIMEOUT_SECONDS": "1",
    "LEDGER_LEASE_SECONDS": "4",
    "RETRY_BASE_DELAY_SECONDS": "1",
    "RETRY_MAX_DELAY_SECONDS": "2",
    "RETRY_MAX_AGE_SECONDS": "180",
}
_OUTCOME = re.compile(r"\boutcome=(?P<outcome>\w+) event_id=(?P<event_id>\S+)(?:.*?\breason=(?P<reason>\S+))?")
# deferred and retrying mean the event was queued again; every other outcome is the event's last.
FINAL_OUTCOMES = {o.value for o in names.Outcome} - {names.Outcome.DEFERRED.value, names.Outcome.RETRYING.value}


def pipeline_env(azurite, emulator, **overrides: str) -> dict[str, str]:
    return test_env(azurite, emulator, **{**SCALED_SETTINGS, **overrides})


@dataclass(frozen=True)
class IngestReply:
    status: int
    accepted: tuple[str, ...]
    body: dict


@dataclass
class Pipeline:
    ingest: DevhostProcess
    workers: list[DevhostProcess]
    env: dict[str, str]
    settings: Settings
    storage: StorageFactory
    worker_args: list[str] = field(default_factory=list)
    worker_count: int = 8
    replies: list[IngestReply] = field(default_factory=list)
    killed: list[DevhostProcess] = field(default_factory=list)  # workers killed (their output is kept)

    def start_workers(self) -> None:
        """The queue-only worker processes, started side by side (for example once the events
        are already queued, so that they all meet a full queue)."""
        assert not self.workers, "workers already started"
        self.workers = _start_all(self.env, [self.worker_args] * self.worker_count)

    def kill_worker(self, index: int) -> None:
        """SIGKILL worker ``index``: no shutdown, no release of what it holds (its messages come back
        when their in-flight visibility lapses, its leases when they expire). Its output is kept."""
        dead = self.workers[index]
        dead.process.send_signal(signal.SIGKILL)
        dead.process.wait(timeout=10)
        self.killed.append(dead)

    def restart_worker(self, index: int) -> DevhostProcess:
        """A new worker process in place of worker ``index`` (killed, or stopped)."""
        [self.workers[index]] = _start_all(self.env, [self.worker_args])
        return self.workers[index]

    # --- sending -------------------------------------------------------------------------------
    @property
    def events_url(self) -> str:
        return f"{self.ingest.http_url}/customers/events"

    def post(self, events: Sequence[dict]) -> IngestReply:
        """One request ``{"events": [...]}``; the reply keeps the ids the ingest says it queued."""
        response = requests.post(
            self.events_url,
            data=json.dumps({"events": list(events)}),
            headers={"Content-Type": "application/json"},
            timeout=60,
        )
        body = response.json()
        if response.status_code == 202:
            accepted = tuple(body["accepted"])
        elif response.status_code == 207:
            accepted = tuple(r["eventId"] for r in body["results"] if r["status"] == "accepted")
        elif response.status_code == 503:
            accepted = tuple(body.get("queuedEventIds") or ())
        else:
            accepted = ()
        reply = IngestReply(response.status_code, accepted, body)
        self.replies.append(reply)
        return reply

    def post_all(self, batches: Sequence[Sequence[dict]], concurrency: int = 4) -> list[IngestReply]:
        """Every batch, ``concurrency`` requests at a time (a sender with several connections)."""
        with ThreadPoolExecutor(concurrency) as pool:
            return list(pool.map(self.post, batches))

    def accepted_ids(self) -> set[str]:
        return {event_id for reply in self.replies for event_id in reply.accepted}

    # --- waiting ---------------------------------------------------------------------------------
    def queues(self):
        return [self.storage.queue(self.settings.events_queue), self.storage.queue(self.settings.poison_queue)]

    def stranded(self) -> int:
        """Messages in ``<queue>-poison-poison``: where the local host puts a poison message whose
        collector failed maxDequeueCount times. Nothing reads that queue: such events are lost."""
        return (
            self.storage.queue(self.settings.poison_queue + POISON_SUFFIX)
            .get_queue_properties()
            .approximate_message_count
            or 0
        )

    def queue_depths(self) -> dict[str, tuple[int, int]]:
        """Per queue: (approximate count, messages a peek sees now)."""
        return {
            q.queue_name: (
                q.get_queue_properties().approximate_message_count or 0,
                len(q.peek_messages(max_messages=32)),
            )
            for q in self.queues()
        }

    def wait_until_drained(self, timeout: float, *, quiet_for: float = 1.5, interval: float = 0.25) -> float:
        """Until the events and poison queues are both empty (approximate count 0 and a peek finds
        nothing) for ``quiet_for`` seconds in a row: a re-sent message is invisible for a while, and
        a worker may be between completing one message and sending its successor. Returns the
        seconds waited; raises TimeoutError with the last depths seen."""
        started = time.monotonic()
        quiet_since: float | None = None
        while True:
            depths = self.queue_depths()
            now = time.monotonic()
            if all(depth == (0, 0) for depth in depths.values()):
                quiet_since = quiet_since if quiet_since is not None else now
                if now - quiet_since >= quiet_for:
                    return now - started
            else:
                quiet_since = None
            if now - started > timeout:
                raise TimeoutError(f"queues not drained after {timeout:g} s: (approximate count, peeked) = {depths}")
            time.sleep(interval)

    # --- reading the outcome -----------------------------------------------------------------------
    def deadletters(self) -> list[DeadLetter]:
        return list(DeadLetterStore(self.storage.table(self.settings.deadletter_table)).query())

    def ledger(self) -> dict[str, dict]:
        """Ledger entities by PartitionKey (the email hash)."""
        table = self.storage.table(self.env["LEDGER_TABLE_NAME"])
        return {e["PartitionKey"]: dict(e) for e in table.list_entities()}

    def email_hash(self, email: str) -> str:
        return email_hash(email.strip().lower(), self.settings.email_hash_key)

    def outcomes(self) -> list[tuple[int, str, str, str | None]]:
        """(worker index, outcome, event id, reason) of every CustomerSyncOutcome the workers logged."""
        found = []
        for index, worker in enumerate(self.workers + self.killed):
            for line in worker.output().splitlines():
                match = _OUTCOME.search(line)
                if match:
                    found.append((index, match["outcome"], match["event_id"], match["reason"]))
        return found

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time used so far by the ingest process and by all workers together."""
        return {
            "ingest": process_cpu_seconds(self.ingest.process.pid),
            f"{len(self.workers)} workers": sum(process_cpu_seconds(w.process.pid) for w in self.workers),
        }

    def output_tails(self, lines: int = 12) -> str:
        parts = []
        for name, process in [("ingest", self.ingest)] + [
            (f"worker {i}", w) for i, w in enumerate(self.workers + self.killed)
        ]:
            tail = "".join(process.lines[-lines:])
            parts.append(f"----- {name} (pid {process.process.pid}, exit {process.process.poll()}) -----\n{tail}")
        return "\n".join(parts)


def socket_owner(local_port: int, remote_port: int, pids: Sequence[int]) -> int | None:
    """Which of ``pids`` holds the TCP connection from ``local_port`` to ``remote_port`` on this host
    (Linux /proc; None when none does, e.g. the connection is already closed)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], fields[9]
            if int(local.rsplit(":", 1)[1], 16) == local_port and int(remote.rsplit(":", 1)[1], 16) == remote_port:
                inodes.add(f"socket:[{inode}]")
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                        return pid
                except OSError:
                    continue
        except OSError:
            continue
    return None


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (Linux /proc; 0.0 where unavailable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # After the command: state is field 3, utime and stime are fields 14 and 15 of stat(5).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def write_host_json(folder: Path, content: dict | None = None) -> Path:
    path = folder / "host.workers.json"
    path.write_text(json.dumps(content or WORKER_HOST_JSON))
    return path


def provision(env: dict[str, str]) -> tuple[Settings, StorageFactory]:
    """The queues and tables the pipeline uses, created before any worker polls them."""
    settings = load_settings(env)
    storage = StorageFactory(env)
    for name in (settings.events_queue, settings.poison_queue, settings.poison_queue + POISON_SUFFIX):
        ensure_queue(storage.queue(name))
    for name in (settings.deadletter_table, env["LEDGER_TABLE_NAME"]):
        ensure_table(storage.table(name))
    return settings, storage


def stop_all(processes: Sequence[DevhostProcess]) -> None:
    """Ctrl-C to every process first, then wait for each: they shut down side by side."""
    for p in processes:
        if p.process.poll() is None:
            p.process.send_signal(2)
    for p in processes:
        p.stop(timeout=10)


def _start_all(env: dict[str, str], args_list: Sequence[Sequence[str]]) -> list[DevhostProcess]:
    """Start the processes side by side; if any fails, stop those that started and raise."""
    with ThreadPoolExecutor(len(args_list)) as pool:
        futures = [pool.submit(start_devhost_process, env=env, args=list(args), timeout=60) for args in args_list]
        started, errors = [], []
        for future in futures:
            try:
                started.append(future.result())
            except Exception as error:  # noqa: BLE001 - every start is awaited, then reported
                errors.append(error)
    if errors:
        stop_all(started)
        raise errors[0]
    return started


@contextmanager
def running_pipeline(
    azurite,
    emulator,
    tmp_path: Path,
    *,
    workers: int = 8,
    start_workers: bool = True,
    settings: dict[str, str] | None = None,
    host_json: dict | None = None,
) -> Iterator[Pipeline]:
    """Start the ingest process and (unless ``start_workers`` is False: then call
    ``Pipeline.start_workers``) ``workers`` queue-only processes, yield the Pipeline, and stop every
    process whatever happens. On a failure the tail of each process's output is printed (pytest
    shows it with the failure). ``host_json``: instead of ``WORKER_HOST_JSON``."""
    env = pipeline_env(azurite, emulator, **(settings or {}))
    cfg, storage = provision(env)
    host_json = str(write_host_json(tmp_path, host_json))
    common = ["--no-azurite", "--no-emulator", "--host-json", host_json]
    ingest_args = [*common, "--port", "0", "--functions", names.FUNCTION_INGEST, names.FUNCTION_HEALTH]
    [ingest] = _start_all(env, [ingest_args])
    pipeline = Pipeline(ingest, [], env, cfg, storage, worker_args=[*common, "--only-queues"], worker_count=workers)
    try:
        if start_workers:
            pipeline.start_workers()
        yield pipeline
    except BaseException:
        print(pipeline.output_tails())
        raise
    finally:
        stop_all([ingest, *pipeline.workers])


# --- customer events whose Commerce result is known in advance ------------------------------------


@dataclass(frozen=True)
class Place:
    """An address (as sent) for one country, and what Commerce must store for it."""

    country_in: str
    country3: str
    city: str
    state_in: str | None
    state_id: str | None
    postal_in: str
    postal_stored: str
    phone_format: str  # international format; E.164 is "+" and its digits
    street_format: str
    numbered: bool = False  # the street number goes in streetNumber


PLACES = (
    Place("US", "USA", "Seattle", "Washington", "WA", "98101", "98101", "+1 206 555 {:04d}", "{} Pine St"),
    Place("USA", "USA", "New York", "NY", "NY", "10001", "10001", "+1 212 555 {:04d}", "{} W 34th St"),
    Place("CAN", "CAN", "Ottawa", "Ontario", "ON", "k1a0b1", "K1A 0B1", "+1 613 555 {:04d}", "{} Sussex Drive"),
    Place(
        "United Kingdom", "GBR", "London", None, None, "sw1a2aa", "SW1A 2AA", "+44 20 7946 {:04d}", "{} Downing Street"
    ),
    Place("DE", "DEU", "Berlin", None, None, "10115", "10115", "+49 30 9018 {:04d}", "Beispielstraße", numbered=True),
)
FIRST_NAMES = (
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Donald",
    "Frances",
    "Ken",
    "Margaret",
    "Niklaus",
    "Radia",
    "Tony",
    "Katherine",
    "John",
    "Hedy",
    "Dennis",
)
LAST_NAMES = (
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Allen",
    "Thompson",
    "Hamilton",
    "Wirth",
    "Perlman",
    "Hoare",
    "Johnson",
    "Backus",
    "Lamarr",
    "Ritchie",
)


def _letters(n: int, width: int = 3) -> str:
    out = ""
    for _ in range(width):
        n, r = divmod(n, 26)
        out = chr(ord("a") + r) + out
    return out


@dataclass(frozen=True)
class _Sent:
    """One event as sent, with its ordering key."""

    raw: dict
    email: str
    occurred_utc: datetime

    @property
    def event_id(self) -> str:
        return self.raw["eventId"]

    @property
    def order_key(self) -> tuple[datetime, str]:
        return self.occurred_utc, self.event_id


@dataclass(frozen=True)
class SentEvent(_Sent):
    """A full event, with the Commerce values it must leave behind."""

    expected: dict[str, Any]


def _raw(event_id: str, occurred: datetime, customer: dict[str, Any]) -> dict:
    return {
        "specVersion": "1.0",
        "eventId": event_id,
        "eventType": "customer.updated",
        "occurredAt": occurred.isoformat(),
        "source": "tests",
        "customer": customer,
    }


def _address(place: Place, serial: int) -> dict[str, str]:
    """The address of ``place`` as sent, its street number unique to ``serial``."""
    number = str(1 + serial % 9_999)
    address = {
        "street": place.street_format if place.numbered else place.street_format.format(number),
        "city": place.city,
        "postalCode": place.postal_in,
        "country": place.country_in,
    }
    if place.numbered:
        address["streetNumber"] = number
    if place.state_in:
        address["state"] = place.state_in
    return address


def _e164(phone: str) -> str:
    return "+" + re.sub(r"\D", "", phone)


def customer_event(
    event_id: str, email: str, occurred: datetime, serial: int, place: Place, rnd: random.Random
) -> SentEvent:
    """A full event (names, phone, address, consent) with values unique to ``serial``."""
    first = rnd.choice(FIRST_NAMES)
    last = rnd.choice(LAST_NAMES) + _letters(serial)  # unique per event: tells which event won
    phone = place.phone_format.format(serial % 10_000)
    address = _address(place, serial)
    opted_in = rnd.random() < 0.5
    raw = _raw(
        event_id,
        occurred,
        {
            "email": email,
            "firstName": first,
            "lastName": last,
            "phone": phone,
            "isOptedInMarketing": opted_in,
            "address": address,
        },
    )
    expected = {
        "Email": email,
        "FirstName": first,
        "LastName": last,
        "Phone": _e164(phone),
        "IsOptedInMarketing": opted_in,
        "Street": address["street"],
        "StreetNumber": address.get("streetNumber"),
        "City": place.city,
        "State": place.state_id,
        "ZipCode": place.postal_stored,
        "ThreeLetterISORegionName": place.country3,
    }
    return SentEvent(raw, email, occurred.astimezone(UTC), expected)


def with_offset(instant: datetime, rnd: random.Random) -> datetime:
    """The same instant written with another UTC offset (ordering is by the instant)."""
    hours = rnd.choice((0, 0, 2, -5, 5.5, 9))
    return instant.astimezone(timezone(timedelta(hours=hours)))


def _primary(items: Any, type_value: int | None = None) -> dict | None:
    candidates = [i for i in (items or []) if type_value is None or i.get("AddressTypeValue") == type_value]
    return next((i for i in candidates if i.get("IsPrimary")), candidates[0] if candidates else None)


def differences(customer: dict, expected: dict[str, Any]) -> list[str]:
    """Names of the expected values the Commerce customer does not hold (empty: it matches)."""
    diffs = []
    if (customer.get("Email") or "").lower() != expected["Email"].lower():
        diffs.append("Email")
    for prop in ("FirstName", "LastName"):
        if customer.get(prop) != expected[prop]:
            diffs.append(prop)
    if _e164(customer.get("Phone") or "") != expected["Phone"]:
        diffs.append("Phone")
    contact = _primary(customer.get("Contacts"), 2)
    if contact is None or bool(contact.get("IsOptedInMarketing")) != expected["IsOptedInMarketing"]:
        diffs.append("IsOptedInMarketing")
    address = _primary(customer.get("Addresses")) or {}
    for prop in ("Street", "StreetNumber", "City", "State", "ZipCode", "ThreeLetterISORegionName"):
        want = expected[prop]
        if want is not None and (address.get(prop) or "").casefold() != want.casefold():
            diffs.append(f"Address.{prop}")
    return diffs


def by_email(customers: list[dict]) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for customer in customers:
        grouped.setdefault((customer.get("Email") or "").lower(), []).append(customer)
    return grouped


def which_event(customer: dict, events: Sequence[SentEvent]) -> SentEvent | None:
    """The event whose data the customer holds, if any (each event's last name is unique)."""
    return next((e for e in events if not differences(customer, e.expected)), None)


def outcome_summary(outcomes: list[tuple[int, str, str, str | None]]) -> dict[str, Counter]:
    """Deliveries by outcome, and events by their first final outcome (a redelivered copy of an
    applied event then shows as the event's outcome, its copy only among the deliveries)."""
    final: dict[str, str] = {}
    for _, outcome, event_id, _ in outcomes:
        if outcome in FINAL_OUTCOMES:
            final.setdefault(event_id, outcome)
    return {"deliveries": Counter(o for _, o, _, _ in outcomes), "final": Counter(final.values())}


# --- events carrying some field groups only -----------------------------------------------------------

GROUP_NAMES = ("name", "phone", "profile", "consent", "address")  # every field group but the email
PROFILES = (("en-US", "USD", "10"), ("da-DK", "DKK", "20"), ("fr-FR", "EUR", "40"), ("en-GB", "GBP", "10"))


@dataclass(frozen=True)
class GroupEvent(_Sent):
    """An event carrying some field groups, with what Commerce must hold for each of them (absent
    groups are unchanged: they say nothing)."""

    groups: dict[str, Any]  # group -> the value ``group_values`` must find once this event wins it


def group_event(
    event_id: str, email: str, occurred: datetime, serial: int, place: Place, groups: Sequence[str], rnd: random.Random
) -> GroupEvent:
    """An event carrying exactly ``groups``, each whole, with values unique to ``serial`` where the
    group has room for it (name, phone, address), so that which event won a group can be told."""
    customer: dict[str, Any] = {"email": email}
    expected: dict[str, Any] = {}
    if "name" in groups:
        first, middle = rnd.choice(FIRST_NAMES), rnd.choice([None, "Q"])
        last = rnd.choice(LAST_NAMES) + _letters(serial)
        customer.update(firstName=first, middleName=middle, lastName=last)
        expected["name"] = (first, middle or "", last, " ".join(p for p in (first, middle, last) if p))
    if "phone" in groups:
        phone = place.phone_format.format(serial % 10_000)
        customer["phone"] = phone
        e164 = _e164(phone)
        expected["phone"] = (e164, e164)
    if "profile" in groups:
        language, currency, group = rnd.choice(PROFILES)
        customer.update(language=language, currencyCode=currency, customerGroup=group)
        expected["profile"] = (language.lower(), currency, group)
    if "consent" in groups:
        opted_in = rnd.random() < 0.5
        customer["isOptedInMarketing"] = opted_in
        expected["consent"] = {opted_in}
    if "address" in groups:
        address = _address(place, serial)
        customer["address"] = address
        expected["address"] = (
            address["street"],
            address.get("streetNumber") or "",
            place.city,
            place.state_id or "",
            place.postal_stored,
            place.country3,
        )
    return GroupEvent(_raw(event_id, occurred, customer), email, occurred.astimezone(UTC), expected)


def group_values(customer: dict) -> dict[str, Any]:
    """What a Commerce customer holds, per field group, in the terms of ``GroupEvent.groups``.
    Consent is the set of values on every email and phone contact: one value when they agree."""
    contacts = customer.get("Contacts") or []
    phone_contact = _primary(contacts, 1)
    address = _primary(customer.get("Addresses")) or {}
    return {
        "name": (
            customer.get("FirstName") or "",
            customer.get("MiddleName") or "",
            customer.get("LastName") or "",
            customer.get("Name") or "",
        ),
        "phone": (_e164(customer.get("Phone") or ""), _e164((phone_contact or {}).get("Value") or "")),
        "profile": (
            (customer.get("Language") or "").lower(),
            customer.get("CurrencyCode") or "",
            customer.get("CustomerGroup") or "",
        ),
        "consent": {bool(c.get("IsOptedInMarketing")) for c in contacts if c.get("AddressTypeValue") in (1, 2)},
        "address": tuple(
            address.get(p) or ""
            for p in ("Street", "StreetNumber", "City", "State", "ZipCode", "ThreeLetterISORegionName")
        ),
    }
