"""The processor's ledger protocol, without I/O: MemoryLedger, a fake Commerce that keeps customers with
the emulator's own pure document rules, a recording requeue, and a clock and rng the test controls."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from azure.core.exceptions import HttpResponseError

from shared.core.commerce_bodies.groups import group_hashes
from shared.core.commerce_errors import (
    RUNTIME_PREFIX,
    CommerceAuthError,
    CommerceConnectionError,
    CommerceError,
    CommercePermanentError,
    CommerceServerError,
    CommerceThrottledError,
    CommerceTimeoutError,
)
from shared.core.ledger_rules import ORDERED_GROUPS, Lease, LedgerConflict, LedgerEntry, OrderKey, State
from shared.core.telemetry_names import Outcome
from shared.usecases.processor import RetryLater, process_message
from tests.support.builders import KEY, NOW, event
from tests.support.processor_world import (
    CALL_BUDGET,
    FULL,
    LEASE_SECONDS,
    NEW_EMAIL,
    OLD_EMAIL,
    RecordingLedger,
    World,
    at,
    created,
    envelope,
)
from tests.support.simulation import simulate


@pytest.fixture
def world() -> World:
    return World()


# --- the happy paths ---------------------------------------------------------------------------------


def test_a_new_email_is_searched_then_created_and_recorded(world):
    ev = event("evt-1", at(0), **FULL)
    result = world.send(envelope(ev))
    assert result.outcome is Outcome.CREATED
    assert world.commerce.ops == ["search", "create"]
    [customer] = world.commerce.by_email(OLD_EMAIL)
    assert result.account_number == customer["AccountNumber"]
    entry = world.entry(ev.email_hash)
    assert entry.state is State.APPLIED and entry.account_number == customer["AccountNumber"]
    assert entry.last == OrderKey.of(ev) and entry.recent_event_ids == ("evt-1",)
    assert entry.lease is None
    assert entry.hashes == group_hashes(ev, KEY)
    assert entry.address_record_id == str(customer["Addresses"][0]["RecordId"])
    assert entry.email_contact_record_id == str(customer["Contacts"][0]["RecordId"])
    assert entry.phone_contact_record_id == str(customer["Contacts"][1]["RecordId"])
    assert world.requeued == [] and world.deadletters.letters == []
    assert world.ledger.writes == 2  # take the lease (insert), record the result


def test_an_existing_commerce_customer_is_found_and_patched_not_duplicated(world):
    seeded = world.commerce.create_customer({"Email": OLD_EMAIL, "FirstName": "Old", "Contacts": []})
    world.commerce.log.clear()
    result = world.send(envelope(event("evt-1", at(0), firstName="Ada")))
    assert result.outcome is Outcome.UPDATED and result.account_number == seeded["AccountNumber"]
    assert world.commerce.ops == ["search", "get", "update"]
    assert len(world.commerce.customers) == 1
    assert world.commerce.customers[seeded["AccountNumber"]]["FirstName"] == "Ada"


def test_the_same_event_again_is_a_duplicate_with_no_call_and_no_write(world):
    ev = created(world)
    writes = world.ledger.writes
    result = world.send(envelope(ev))
    assert result.outcome is Outcome.DUPLICATE
    assert world.commerce.ops == [] and world.ledger.writes == writes and world.requeued == []


def test_an_older_event_is_stale_with_no_call(world):
    created(world, minutes=10)
    writes = world.ledger.writes
    result = world.send(envelope(event("evt-0", at(5), **{**FULL, "firstName": "Older"})))
    assert result.outcome is Outcome.STALE
    assert world.commerce.ops == [] and world.ledger.writes == writes
    [customer] = world.commerce.by_email(OLD_EMAIL)
    assert customer["FirstName"] == "Ada"


def test_a_changed_group_is_one_patch(world):
    ev1 = created(world)
    ev2 = event("evt-2", at(1), **{**FULL, "phone": "+1 202 555 0199"})
    result = world.send(envelope(ev2))
    assert result.outcome is Outcome.UPDATED
    assert world.commerce.ops == ["update"]
    account, patch = world.commerce.log[0][1]
    assert set(patch) == {"Phone", "Contacts"}  # just the phone group
    [customer] = world.commerce.by_email(OLD_EMAIL)
    assert customer["Phone"] == "+12025550199" and customer["AccountNumber"] == account
    entry = world.entry(ev2.email_hash)
    assert entry.last == OrderKey.of(ev2) and entry.recent_event_ids == ("evt-1", "evt-2")
    assert entry.hashes["phone"] == group_hashes(ev2, KEY)["phone"] != group_hashes(ev1, KEY)["phone"]


def test_unchanged_data_makes_no_call_but_is_recorded(world):
    created(world)
    ev2 = event("evt-2", at(1), **FULL)
    result = world.send(envelope(ev2))
    assert result.outcome is Outcome.UNCHANGED and world.commerce.ops == []
    entry = world.entry(ev2.email_hash)
    assert entry.last == OrderKey.of(ev2) and "evt-2" in entry.recent_event_ids and entry.lease is None


def test_a_partial_event_keeps_the_hashes_of_groups_it_did_not_carry(world):
    ev1 = created(world)
    world.send(envelope(event("evt-2", at(1), firstName="Ada", middleName="King", lastName="Byron")))
    assert world.commerce.ops == ["update"]
    entry = world.entry(ev1.email_hash)
    assert entry.hashes["phone"] == group_hashes(ev1, KEY)["phone"]
    # the phone it still has costs nothing
    world.commerce.log.clear()
    assert world.send(envelope(event("evt-3", at(2), phone=FULL["phone"]))).outcome is Outcome.UNCHANGED
    assert world.commerce.ops == []


def test_a_patch_that_needs_an_unknown_part_reads_first(world):
    created(world)  # MiddleName "King" is set: a first+last change cannot compose Name blind
    result = world.send(envelope(event("evt-2", at(1), firstName="Grace", lastName="Hopper")))
    assert result.outcome is Outcome.UPDATED
    assert world.commerce.ops == ["get", "update"]
    [customer] = world.commerce.by_email(OLD_EMAIL)
    assert customer["Name"] == "Grace King Hopper"


# --- leases ------------------------------------------------------------------------------------------


def test_a_live_lease_of_another_worker_defers_the_event(world):
    ev1 = created(world)
    entry = world.entry(ev1.email_hash)
    other = Lease("someone-else", NOW + timedelta(seconds=60), OrderKey(at(3), "evt-3"))
    world.ledger.put(replace(entry, lease=other))
    ev2 = event("evt-2", at(1), **{**FULL, "phone": "+1 202 555 0199"})
    result = world.send(envelope(ev2))
    assert result.outcome is Outcome.DEFERRED and 1 <= result.delay <= 5
    assert world.commerce.ops == []
    again, delay = world.last_requeued()
    assert delay == result.delay and 1 <= delay <= 5
    assert again.attempt == 1 and again.last_reason == "lease_busy" and again.event == ev2
    assert world.entry(ev1.email_hash).lease == other  # untouched


def test_deferrals_are_spread_over_1_to_5_seconds(world):
    ev1 = created(world)
    world.ledger.put(replace(world.entry(ev1.email_hash), lease=Lease("other", NOW + timedelta(hours=1), None)))
    delays = {world.send(envelope(event(f"evt-{i}", at(1), **FULL))).delay for i in range(2, 40)}
    assert delays <= {1, 2, 3, 4, 5} and len(delays) >= 3


def test_an_expired_lease_of_a_dead_worker_is_taken_over_and_its_event_read_before_writing(world):
    ev1 = created(world)
    ev2 = event("evt-2", at(1), **{**FULL, "phone": "+1 202 555 0199"})
    dead = Lease("dead-worker", NOW - timedelta(seconds=1), OrderKey.of(ev2))
    world.ledger.put(replace(world.entry(ev1.email_hash), lease=dead))
    result = world.send(envelope(ev2))  # the dead worker's own event, redelivered
    assert result.outcome is Outcome.UPDATED
    assert world.commerce.ops == ["get", "update"]  # what Commerce holds was unknown: read first
    entry = world.entry(ev1.email_hash)
    assert entry.state is State.APPLIED and entry.lease is None and entry.last == OrderKey.of(ev2)


def test_an_expired_lease_makes_older_events_stale(world):
    ev1 = created(world)
    dead = Lease("dead-worker", NOW - timedelta(seconds=1), OrderKey(at(5), "evt-5"))
    world.ledger.put(replace(world.entry(ev1.email_hash), lease=dead))
    assert world.send(envelope(event("evt-2", at(1), **FULL))).outcome is Outcome.STALE
    assert world.commerce.ops == []


def test_a_lease_about_to_expire_is_renewed_before_the_write(world):
    ev = event("evt-1", at(0), **FULL)
    # the search takes 100 s: 20 s of the 120 s lease are left, less than two call budgets
    world.commerce.before_call = lambda op: world.clock.advance(100) if op == "search" else None
    assert world.send(envelope(ev)).outcome is Outcome.CREATED
    leases = [e.lease for e in world.ledger.history]
    assert leases[0].until == NOW + timedelta(seconds=LEASE_SECONDS)
    assert leases[1].until == NOW + timedelta(seconds=100 + LEASE_SECONDS)  # renewed before the create
    assert leases[1].owner == leases[0].owner and leases[1].pending == OrderKey.of(ev)
    assert leases[2] is None and world.ledger.writes == 3
    assert world.commerce.ops == ["search", "create"]


def test_a_lease_with_time_left_is_not_renewed(world):
    world.commerce.before_call = lambda op: world.clock.advance(LEASE_SECONDS - 2 * CALL_BUDGET - 1)
    assert world.send(envelope(event("evt-1", at(0), **FULL))).outcome is Outcome.CREATED
    assert world.ledger.writes == 2


# --- failures ----------------------------------------------------------------------------------------


def test_a_throttled_create_is_requeued_after_retry_after_and_releases_the_lease(world):
    ev = event("evt-1", at(0), **FULL)
    world.commerce.fail("create", CommerceThrottledError("slow down", operation="create", status=429, retry_after=3))
    result = world.send(envelope(ev))
    assert result.outcome is Outcome.RETRYING and result.failure.reason == "commerce_throttled"
    again, delay = world.last_requeued()
    assert 3 <= delay <= 4 and delay == result.delay
    assert again.attempt == 2 and again.last_reason == "commerce_throttled" and again.event == ev
    assert again.ingested_at == NOW - timedelta(minutes=1)  # the age limit counts from the first ingest
    entry = world.entry(ev.email_hash)
    assert entry.lease is None and entry.state is State.NEW and entry.last is None  # nothing was written
    assert world.deadletters.letters == []
    # the requeued message completes the job
    world.commerce.log.clear()
    assert world.send(again).outcome is Outcome.CREATED
    assert world.commerce.ops == ["search", "create"] and len(world.commerce.customers) == 1


def test_a_throttled_patch_keeps_the_entry_certain(world):
    ev1 = created(world)
    before = world.entry(ev1.email_hash)
    world.commerce.fail("update", CommerceThrottledError("slow down", operation="update", status=429, retry_after=3))
    ev2 = event("evt-2", at(1), **{**FULL, "phone": "+1 202 555 0199"})
    assert world.send(envelope(ev2)).outcome is Outcome.RETRYING
    after = world.entry(ev1.email_hash)
    assert after.lease is None and after.state is State.APPLIED
    assert (after.last, after.hashes) == (before.last, before.hashes)


def test_backoff_without_retry_after_grows_with_the_attempt(world):
    ev = event("evt-1", at(0), **FULL)
    delays = []
    message = envelope(ev)
    for attempt in range(1, 6):
        world.commerce.fail("search", CommerceServerError("busy", operation="search", status=503))
        assert world.send(message).outcome is Outcome.RETRYING
        message, delay = world.last_requeued()
        assert message.attempt == attempt + 1
        delays.append(delay)
    steps = [5, 10, 20, 40, 80]
    assert all(s / 2 <= d <= s for d, s in zip(delays, steps, strict=False)), delays


def _connection_error(op: str, dropped: bool) -> CommerceError:
    error = CommerceConnectionError("connection dropped", operation=op)
    error.dropped = dropped
    return error


def _timeout(op: str, sent: bool) -> CommerceError:
    error = CommerceTimeoutError("timeout", operation=op)
    error.sent = sent
    return error


@pytest.mark.parametrize(
    "error, uncertain",
    [
        (_timeout("update", sent=True), True),
        (_timeout("update", sent=False), False),  # no free slot / connect timeout: never left
        (_connection_error("update", dropped=True), True),
        (_connection_error("update", dropped=False), False),
        (CommerceServerError("bad gateway", operation="update", status=502), True),
        (CommerceServerError("locked", operation="update", status=423), False),
        (CommerceThrottledError("slow down", operation="update", status=429), False),
        (CommerceAuthError("expired", operation="update", status=401), False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v),
)
def test_only_a_write_that_may_have_committed_makes_the_entry_uncertain(world, error, uncertain):
    ev1 = created(world)
    world.commerce.fail("update", error)
    ev2 = event("evt-2", at(1), **{**FULL, "phone": "+1 202 555 0199"})
    result = world.send(envelope(ev2))
    assert result.outcome is Outcome.RETRYING and world.commerce.ops == ["update"]
    entry = world.entry(ev1.email_hash)
    assert entry.lease is None
    if uncertain:
        assert entry.state is State.UNCERTAIN and entry.last == OrderKey.of(ev2) and entry.hashes == {}
    else:
        assert entry.state is State.APPLIED and entry.last == OrderKey.of(ev1) and entry.hashes
    again, _ = world.last_requeued()
    world.commerce.log.clear()
    assert world.send(again).outcome is Outcome.UPDATED
    assert world.commerce.ops == (["get", "update"] if uncertain else ["update"])


def test_a_lease_race_lost_again_and_again_defers(world):
    class AlwaysLosing(RecordingLedger):
        reads = 0

        def read(self, email_hash):
            self.reads += 1
            return super().read(email_hash)

        def write(self, entry):
            raise LedgerConflict("etag")

    world.deps.ledger = ledger = AlwaysLosing()
    result = world.send(envelope(event("evt-1", at(0), **FULL)))
    assert result.outcome is Outcome.DEFERRED and world.commerce.ops == []
    assert ledger.reads == 4  # LEASE_RACES attempts, each deciding again on a fresh read


def test_a_timed_out_patch_leaves_the_entry_uncertain_and_the_next_event_reads_first(world):
    ev1 = created(world)
    world.commerce.fail("update", CommerceTimeoutError("read timeout", operation="update"))
    ev2 = event("evt-2", at(1), **{**FULL, "phone": "+1 202 555 0199"})
    result = world.send(envelope(ev2))
    assert result.outcome is Outcome.RETRYING and result.failure.may_have_committed
    entry = world.entry(ev1.email_hash)
    assert entry.state is State.UNCERTAIN and entry.hashes == {} and entry.lease is None
    assert entry.last == OrderKey.of(ev2)
    # an event older than the uncertain one is stale: it must not overwrite what may have landed
    world.commerce.log.clear()
    assert world.send(envelope(event("evt-1b", at(0.5), **FULL))).outcome is Outcome.STALE
    # the next event reads the customer before patching
    ev3 = event("evt-3", at(2), **{**FULL, "customerGroup": "50"})
    assert world.send(envelope(ev3)).outcome is Outcome.UPDATED
    assert world.commerce.ops == ["get", "update"]
    [customer] = world.commerce.by_email(OLD_EMAIL)
    assert customer["CustomerGroup"] == "50"
    entry = world.entry(ev1.email_hash)
    assert entry.state is State.APPLIED and entry.hashes == group_hashes(ev3, KEY)


def test_the_retry_of_an_uncertain_write_that_did_commit_finds_nothing_to_do(world):
    created(world)
    world.commerce.fail("update", CommerceTimeoutError("read timeout", operation="update"), commit=True)
    ev2 = event("evt-2", at(1), **{**FULL, "phone": "+1 202 555 0199"})
    assert world.send(envelope(ev2)).outcome is Outcome.RETRYING
    again, _ = world.last_requeued()
    world.commerce.log.clear()
    result = world.send(again)  # the same event: not a duplicate, since its write is uncertain
    assert result.outcome is Outcome.UNCHANGED
    assert world.commerce.ops == ["get"]
    assert world.entry(ev2.email_hash).state is State.APPLIED


def test_a_create_that_timed_out_after_committing_is_not_created_twice(world):
    ev = event("evt-1", at(0), **FULL)
    world.commerce.fail("create", CommerceServerError("gateway", operation="create", status=502), commit=True)
    assert world.send(envelope(ev)).outcome is Outcome.RETRYING
    assert world.entry(ev.email_hash).state is State.UNCERTAIN
    again, _ = world.last_requeued()
    world.commerce.log.clear()
    assert world.send(again).outcome is Outcome.UNCHANGED
    assert world.commerce.ops == ["search", "get"]
    assert len(world.commerce.by_email(OLD_EMAIL)) == 1
    assert world.entry(ev.email_hash).account_number == world.commerce.by_email(OLD_EMAIL)[0]["AccountNumber"]


def test_a_failed_read_does_not_make_the_entry_uncertain(world):
    ev = event("evt-1", at(0), **FULL)
    world.commerce.fail("search", CommerceTimeoutError("read timeout", operation="search"))
    assert world.send(envelope(ev)).outcome is Outcome.RETRYING
    entry = world.entry(ev.email_hash)
    assert entry.state is State.NEW and entry.lease is None


def test_a_404_on_the_stored_account_resolves_by_email_again(world):
    ev1 = created(world)
    old_account = world.entry(ev1.email_hash).account_number
    # Commerce replaced the account (an async number made permanent, or a merge)
    doc = world.commerce.customers.pop(old_account)
    world.commerce.customers["009999"] = {**doc, "AccountNumber": "009999"}
    ev2 = event("evt-2", at(1), **{**FULL, "phone": "+1 202 555 0199"})
    result = world.send(envelope(ev2))
    assert result.outcome is Outcome.UPDATED and result.account_number == "009999"
    assert world.commerce.ops == ["update", "search", "get", "update"]
    assert world.commerce.customers["009999"]["Phone"] == "+12025550199"
    assert world.entry(ev1.email_hash).account_number == "009999"


def test_past_the_maximum_age_a_transient_failure_is_dead_lettered(world):
    ev = event("evt-1", at(0), **FULL)
    world.commerce.fail("search", CommerceThrottledError("slow down", operation="search", status=429, retry_after=3))
    result = world.send(envelope(ev, ingested_at=NOW - timedelta(days=1, seconds=1)))
    assert result.outcome is Outcome.DEAD_LETTERED
    assert result.failure.reason == "retries_exhausted:commerce_throttled"  # the outcome's reason too
    assert world.telemetry.outcomes[-1] == (Outcome.DEAD_LETTERED, "retries_exhausted:commerce_throttled")
    [letter] = world.deadletters.letters
    assert letter.reason == "retries_exhausted:commerce_throttled" and letter.event_id == "evt-1"
    assert letter.email_hash == ev.email_hash and "ada@" not in letter.message
    assert world.telemetry.dead == ["retries_exhausted:commerce_throttled"]
    assert world.requeued == [] and world.entry(ev.email_hash).lease is None


def test_a_permanent_refusal_is_dead_lettered_at_once(world):
    ev = event("evt-1", at(0), **FULL)
    world.commerce.fail(
        "create",
        CommercePermanentError(
            "bad data", operation="create", status=400, error_resource_id=RUNTIME_PREFIX + "InvalidFormat"
        ),
    )
    result = world.send(envelope(ev))
    assert result.outcome is Outcome.DEAD_LETTERED
    [letter] = world.deadletters.letters
    assert letter.reason == "commerce_rejected" and letter.status == 400 and letter.attempts == 1
    assert world.requeued == []
    entry = world.entry(ev.email_hash)
    assert entry.lease is None and entry.state is State.NEW  # refused before committing: not uncertain


def test_an_unreadable_message_is_dead_lettered(world):
    result = world.send('{"v": 1, "event": {"eventId": "x"}}')
    assert result.outcome is Outcome.DEAD_LETTERED
    assert world.deadletters.letters[0].reason == "unreadable_message" and world.commerce.ops == []


def test_when_the_event_cannot_be_queued_again_the_host_retries_it(world):
    world.requeue_error = ConnectionError("storage down")
    world.commerce.fail("search", CommerceServerError("busy", operation="search", status=503))
    with pytest.raises(RetryLater):
        process_message(envelope(event("evt-1", at(0), **FULL)).to_json(), 1, world.deps)
    assert [o for o, _ in world.telemetry.outcomes] == [Outcome.RETRYING]
    assert world.entry(event("evt-1").email_hash).lease is None


def test_losing_the_lease_before_recording_is_retried(world):
    ev1 = created(world)
    ev2 = event("evt-2", at(1), **{**FULL, "phone": "+1 202 555 0199"})

    def take_over(op: str) -> None:  # another worker overran ours and wrote meanwhile
        if op == "update":
            world.ledger.put(replace(world.entry(ev1.email_hash), lease=None))

    world.commerce.before_call = take_over
    result = world.send(envelope(ev2))
    assert result.outcome is Outcome.RETRYING and result.failure.reason == "ledger_conflict"
    again, _ = world.last_requeued()
    assert again.attempt == 2


# --- email changes -----------------------------------------------------------------------------------


def test_an_email_change_updates_the_customer_and_moves_the_entry(world):
    ev1 = created(world)
    old = world.entry(ev1.email_hash)
    ev2 = event("evt-2", at(1), email=NEW_EMAIL, previousEmail=OLD_EMAIL, **FULL)
    result = world.send(envelope(ev2))
    assert result.outcome is Outcome.UPDATED and result.account_number == old.account_number
    # the new address first (it may have a customer of its own), then the old entry's account
    assert world.commerce.ops == ["search", "get", "update"]
    [customer] = world.commerce.customers.values()
    assert customer["Email"] == NEW_EMAIL and customer["ReceiptEmail"] == NEW_EMAIL
    assert [c["Value"] for c in customer["Contacts"] if c["AddressTypeValue"] == 2] == [NEW_EMAIL]

    new = world.entry(ev2.email_hash)
    assert new.state is State.APPLIED and new.account_number == old.account_number and new.lease is None
    assert new.last == OrderKey.of(ev2) and new.email_contact_record_id == old.email_contact_record_id
    tomb = world.entry(ev1.email_hash)
    assert tomb.state is State.MOVED and tomb.moved_to == ev2.email_hash and tomb.lease is None
    assert tomb.account_number is None and tomb.last == OrderKey.of(ev2)

    # older events for the old address are stale; the new address is updated blind
    world.commerce.log.clear()
    assert world.send(envelope(event("evt-1b", at(0.5), **FULL))).outcome is Outcome.STALE
    assert (
        world.send(envelope(event("evt-3", at(2), email=NEW_EMAIL, **{**FULL, "customerGroup": "50"}))).outcome
        is Outcome.UPDATED
    )
    assert world.commerce.ops == ["update"] and len(world.commerce.customers) == 1


def test_an_email_change_waits_for_a_lease_on_the_old_email(world):
    ev1 = created(world)
    busy = Lease("other", NOW + timedelta(seconds=60), OrderKey(at(3), "evt-3"))
    world.ledger.put(replace(world.entry(ev1.email_hash), lease=busy))
    ev2 = event("evt-2", at(1), email=NEW_EMAIL, previousEmail=OLD_EMAIL, **FULL)
    result = world.send(envelope(ev2))
    assert result.outcome is Outcome.DEFERRED and world.commerce.ops == []
    assert world.entry(ev2.email_hash).lease is None  # the new email's lease was let go
    assert world.entry(ev1.email_hash).lease == busy


def test_an_email_change_whose_final_ledger_write_fails_lets_go_of_the_old_email(world):
    ev1 = created(world)
    ev2 = event("evt-2", at(1), email=NEW_EMAIL, previousEmail=OLD_EMAIL, **FULL)

    def storage_down(op: str) -> None:  # the table fails once the customer is updated
        if op == "update":
            world.ledger.fail_next_write = HttpResponseError(message="server busy", response=None)

    world.commerce.before_call = storage_down
    result = world.send(envelope(ev2))
    assert result.outcome is Outcome.RETRYING and result.failure.reason == "storage_unavailable"
    old = world.entry(ev1.email_hash)
    assert old.lease is None  # the old email is free for the retry
    # Commerce has the new email but the ledger could not say so: the old entry is uncertain, so
    # older events for the old address are stale rather than written over the moved customer.
    assert old.state is State.UNCERTAIN and old.last == OrderKey.of(ev2) and old.hashes == {}
    world.commerce.before_call = lambda op: None
    again, _ = world.last_requeued()
    world.clock.advance(LEASE_SECONDS)  # the new email's lease could not be recorded as released
    world.commerce.log.clear()
    # the retry reads the customer by the account it had found: renamed already, nothing to write,
    # and the old entry moves
    assert world.send(again).outcome is Outcome.UNCHANGED and world.commerce.ops == ["get"]
    assert world.entry(ev1.email_hash).state is State.MOVED


def test_an_email_change_for_an_email_the_ledger_never_saw_searches_the_previous_email(world):
    seeded = world.commerce.create_customer({"Email": OLD_EMAIL, "Contacts": []})
    world.commerce.log.clear()
    ev = event("evt-1", at(0), email=NEW_EMAIL, previousEmail=OLD_EMAIL, firstName="Ada")
    result = world.send(envelope(ev))
    assert result.outcome is Outcome.UPDATED and result.account_number == seeded["AccountNumber"]
    assert world.commerce.ops == ["search", "search", "get", "update"]
    assert [entry[1] for entry in world.commerce.log[:2]] == [NEW_EMAIL, OLD_EMAIL]
    assert world.commerce.by_email(NEW_EMAIL) and not world.commerce.by_email(OLD_EMAIL)
    assert world.entry(ev.previous_email_hash).state is State.MOVED


# --- forced replays ----------------------------------------------------------------------------------


def test_force_reapplies_a_stale_event_without_moving_last_back(world):
    ev1 = created(world, "evt-1", 0, **{**FULL, "firstName": "Old"})
    ev2 = event("evt-2", at(5), **FULL)
    assert world.send(envelope(ev2)).outcome is Outcome.UPDATED
    world.commerce.log.clear()
    assert world.send(envelope(ev1)).outcome is Outcome.DUPLICATE
    assert world.commerce.ops == []

    result = world.send(envelope(ev1, force=True))
    assert result.outcome is Outcome.UPDATED
    assert world.commerce.ops == ["get", "update"]  # forced: read, then the minimal PATCH
    [customer] = world.commerce.by_email(OLD_EMAIL)
    assert customer["FirstName"] == "Old"
    entry = world.entry(ev1.email_hash)
    assert entry.last == OrderKey.of(ev2) and entry.state is State.APPLIED
    assert entry.hashes == group_hashes(ev1, KEY)  # what Commerce holds now
    # ev2's data differs from what Commerce holds: sending ev2-like data again is a change again
    world.commerce.log.clear()
    assert world.send(envelope(event("evt-3", at(6), **FULL))).outcome is Outcome.UPDATED
    assert world.commerce.customers[customer["AccountNumber"]]["FirstName"] == "Ada"


def test_force_on_a_new_stale_event_that_was_never_seen(world):
    created(world, minutes=10)
    stale = event("evt-0", at(1), **{**FULL, "lastName": "Byron"})
    assert world.send(envelope(stale)).outcome is Outcome.STALE
    assert world.send(envelope(stale, force=True)).outcome is Outcome.UPDATED
    assert world.entry(stale.email_hash).last.event_id == "evt-1"


# --- the sender's customerAccount hint ---------------------------------------------------------------


def test_the_senders_account_hint_is_used_when_its_email_matches(world):
    seeded = world.commerce.create_customer({"Email": OLD_EMAIL.upper(), "Contacts": []})
    world.commerce.log.clear()
    ev = event("evt-1", at(0), firstName="Ada", customerAccount=seeded["AccountNumber"])
    assert world.send(envelope(ev)).outcome is Outcome.UPDATED
    assert world.commerce.ops == ["get", "update"]  # no search


def test_an_account_hint_for_another_email_is_ignored(world):
    other = world.commerce.create_customer({"Email": "someone@example.com", "Contacts": []})
    world.commerce.log.clear()
    ev = event("evt-1", at(0), firstName="Ada", customerAccount=other["AccountNumber"])
    assert world.send(envelope(ev)).outcome is Outcome.CREATED
    assert world.commerce.ops == ["get", "search", "create"]
    assert world.commerce.customers[other["AccountNumber"]]["FirstName"] == ""


def test_a_newer_event_for_the_new_email_during_a_retried_email_change_does_not_duplicate(world):
    ev1 = created(world)
    world.commerce.fail("update", CommerceThrottledError("slow down", operation="update", status=429, retry_after=3))
    change = event("evt-2", at(1), email=NEW_EMAIL, previousEmail=OLD_EMAIL, **FULL)
    assert world.send(envelope(change)).outcome is Outcome.RETRYING
    retry, _ = world.last_requeued()
    # the sender's next event for the new address overtakes the retry (the retry waits >= 3 s)
    later = event("evt-3", at(2), email=NEW_EMAIL, **{**FULL, "customerGroup": "50"})
    world.send(envelope(later))
    world.send(retry)
    assert len(world.commerce.customers) == 1, [c["Email"] for c in world.commerce.customers.values()]
    [customer] = world.commerce.customers.values()
    assert customer["Email"] == NEW_EMAIL and customer["CustomerGroup"] == "50"
    assert world.entry(ev1.email_hash).state is State.MOVED


# --- many deliveries, faults, crashes and concurrent workers -----------------------------------------


@pytest.mark.parametrize("seed", range(40))
def test_random_deliveries_with_faults_crashes_and_races_end_in_the_latest_data(seed):
    simulate(seed)


@pytest.mark.parametrize("seed", range(40))
def test_random_partial_events_end_with_every_group_at_the_latest_event_that_carried_it(seed):
    simulate(seed, events_count=12, partial=True)


# --- email changes and uncertain writes: interleavings found in review -------------------------------


def _customers(world: World) -> list[tuple[str, str]]:
    return sorted((c["Email"], c.get("CustomerGroup", "")) for c in world.commerce.customers.values())


def test_an_email_change_that_may_have_committed_makes_the_old_entry_uncertain(world):
    ev1 = created(world, "evt-1", 0, **{**FULL, "customerGroup": "40"})
    change = event("evt-3", at(3), email=NEW_EMAIL, previousEmail=OLD_EMAIL, **{**FULL, "customerGroup": "60"})
    world.commerce.fail("update", CommerceTimeoutError("read timeout", operation="update"), commit=True)
    assert world.send(envelope(change)).outcome is Outcome.RETRYING
    old = world.entry(ev1.email_hash)
    assert old.state is State.UNCERTAIN and old.last == OrderKey.of(change) and old.hashes == {}
    # an older event for the old address, delivered late, must not write over the moved customer
    world.commerce.log.clear()
    late = event("evt-2", at(2), **{**FULL, "customerGroup": "50"})
    assert world.send(envelope(late)).outcome is Outcome.STALE and world.commerce.ops == []
    assert _customers(world) == [(NEW_EMAIL, "60")]


def test_a_failed_read_back_after_a_patch_counts_as_a_write_that_may_have_committed(world):
    ev1 = created(world, "evt-1", 0, **{**FULL, "customerGroup": "40"})
    real_update = world.commerce.update_customer

    def update_then_read_back_fails(account, changes):
        real_update(account, changes)  # 204: the client reads the customer back, and that fails
        raise CommerceServerError("busy", operation="get", status=503)

    world.commerce.update_customer = update_then_read_back_fails
    assert world.send(envelope(event("evt-3", at(3), **{**FULL, "customerGroup": "60"}))).outcome is Outcome.RETRYING
    world.commerce.update_customer = real_update
    assert world.entry(ev1.email_hash).state is State.UNCERTAIN
    assert world.send(envelope(event("evt-2", at(2), **{**FULL, "customerGroup": "50"}))).outcome is Outcome.STALE
    assert _customers(world) == [(OLD_EMAIL, "60")]


def test_an_email_change_to_an_address_with_its_own_customer_updates_that_one(world):
    created(world, "evt-1", 0)
    seeded = world.commerce.create_customer({"Email": NEW_EMAIL, "Contacts": []})  # not in the ledger
    change = event("evt-2", at(1), email=NEW_EMAIL, previousEmail=OLD_EMAIL, firstName="Bea")
    result = world.send(envelope(change))
    assert result.outcome is Outcome.UPDATED and result.account_number == seeded["AccountNumber"]
    assert sorted(c["Email"] for c in world.commerce.customers.values()) == [NEW_EMAIL, OLD_EMAIL]
    assert world.entry(change.previous_email_hash).state is State.APPLIED  # left alone, not moved


def test_a_404_on_the_new_address_account_during_a_change_never_takes_the_old_customer(world):
    ev_a = created(world, "evt-1", 0)
    ev_b = created(world, "evt-2", 1, **{**FULL, "email": NEW_EMAIL})
    account_b = world.entry(ev_b.email_hash).account_number
    renumbered = {**world.commerce.customers.pop(account_b), "AccountNumber": "Y2"}  # async number replaced
    world.commerce.customers["Y2"] = renumbered
    change = event("evt-3", at(3), email=NEW_EMAIL, previousEmail=OLD_EMAIL, **{**FULL, "firstName": "Bea"})
    result = world.send(envelope(change))
    assert result.outcome is Outcome.UPDATED and result.account_number == "Y2"
    assert sorted(c["Email"] for c in world.commerce.customers.values()) == [NEW_EMAIL, OLD_EMAIL]
    assert world.entry(ev_a.email_hash).state is State.APPLIED


def test_a_refused_change_is_not_adopted_once_the_old_address_has_newer_events(world):
    created(world, "evt-1", 0)
    world.commerce.fail("update", CommercePermanentError("refused", operation="update", status=400))
    change = event("evt-2", at(2), email=NEW_EMAIL, previousEmail=OLD_EMAIL, firstName="Bea")
    assert world.send(envelope(change)).outcome is Outcome.DEAD_LETTERED
    assert (
        world.send(envelope(event("evt-3", at(3), firstName="Ada", customerGroup="50"))).outcome is Outcome.UPDATED
    )  # the old address is still in use
    result = world.send(envelope(event("evt-4", at(4), email=NEW_EMAIL, firstName="Zed")))
    assert result.outcome is Outcome.CREATED  # a customer of its own, the old one keeps its email
    assert sorted(c["Email"] for c in world.commerce.customers.values()) == [NEW_EMAIL, OLD_EMAIL]


def test_a_deferral_past_the_maximum_age_is_dead_lettered(world):
    ev = event("evt-1", at(0), firstName="Ada")
    stuck = LedgerEntry(ev.email_hash, lease=Lease("someone-else", world.clock() + timedelta(days=30), None))
    world.ledger.write(stuck)
    old = envelope(ev).model_copy(update={"ingested_at": world.clock() - timedelta(days=2)})
    result = world.send(old)
    assert result.outcome is Outcome.DEAD_LETTERED and result.failure.reason == "retries_exhausted:lease_busy"
    assert world.commerce.ops == []


def test_an_event_for_the_new_address_that_overtakes_a_marked_change_adopts_the_customer(world):
    from shared.usecases.ingest import mark_expected_change

    ev1 = created(world, "evt-1", 0, **{**FULL, "customerGroup": "40"})
    change = event("evt-2", at(1), email=NEW_EMAIL, previousEmail=OLD_EMAIL, **{**FULL, "customerGroup": "50"})
    assert mark_expected_change(world.ledger, change, world.clock())  # ingest accepted the change
    later = event("evt-3", at(2), email=NEW_EMAIL, **{**FULL, "customerGroup": "60"})
    world.commerce.log.clear()
    assert world.send(envelope(later)).outcome is Outcome.UPDATED  # runs before the change
    assert world.commerce.ops == ["search", "get", "update"]  # the new address, then the old account
    assert world.send(envelope(change)).outcome is Outcome.STALE
    assert _customers(world) == [(NEW_EMAIL, "60")]
    tomb = world.entry(ev1.email_hash)
    assert tomb.state is State.MOVED and tomb.last == OrderKey.of(change)  # moved by the change's key


# --- ordering per field group: an older event still writes the groups nobody has written since ----------

NAME_ONLY = dict(firstName="Grace", middleName=None, lastName="Hopper")
NEW_ADDRESS = {"address": {**FULL["address"], "street": "Pine St", "streetNumber": "7"}}


class CountingLedger(RecordingLedger):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def read(self, email_hash):
        self.reads += 1
        return super().read(email_hash)


def test_a_throttled_name_change_overtaken_by_an_address_only_event_is_still_applied(world):
    ev1 = created(world)
    world.commerce.fail("update", CommerceThrottledError("slow down", operation="update", status=429, retry_after=3))
    e6 = event("evt-6", at(5), **NAME_ONLY)
    assert world.send(envelope(e6)).outcome is Outcome.RETRYING
    retry, _ = world.last_requeued()
    assert world.send(envelope(event("evt-7", at(6), **NEW_ADDRESS))).outcome is Outcome.UPDATED
    world.commerce.log.clear()
    assert world.send(retry).outcome is Outcome.UPDATED  # not stale: nobody wrote the name since
    [(op, (_, patch))] = world.commerce.log
    assert op == "update" and set(patch) == {"FirstName", "MiddleName", "LastName", "Name"}
    [customer] = world.commerce.by_email(OLD_EMAIL)
    assert (customer["Name"], customer["Addresses"][0]["Street"]) == ("Grace Hopper", "Pine St")
    entry = world.entry(ev1.email_hash)
    assert entry.last == key_of("evt-7", 6) and entry.state is State.APPLIED
    assert entry.group_keys["name"] == key_of("evt-6", 5) and entry.group_keys["address"] == key_of("evt-7", 6)
    assert world.send(retry).outcome is Outcome.DUPLICATE  # by its id, as before


def key_of(event_id: str, minutes: float) -> OrderKey:
    return OrderKey(at(minutes), event_id)


def test_an_older_event_patches_only_its_groups_that_no_newer_event_wrote(world):
    created(world)
    world.send(envelope(event("evt-3", at(3), **NEW_ADDRESS)))
    world.commerce.log.clear()
    writes = world.ledger.writes
    older = event("evt-2", at(2), address={**FULL["address"], "street": "Old St"}, customerGroup="50", language="da-DK")
    assert world.send(envelope(older)).outcome is Outcome.UPDATED
    [(op, (_, patch))] = world.commerce.log
    assert op == "update" and patch == {"Language": "da-dk", "CustomerGroup": "50"}  # no address
    assert world.ledger.writes == writes + 2  # lease, record: as for any update
    [customer] = world.commerce.by_email(OLD_EMAIL)
    assert (customer["Addresses"][0]["Street"], customer["CustomerGroup"]) == ("Pine St", "50")


def test_an_older_event_whose_groups_were_all_written_since_is_stale_with_one_ledger_read():
    world = World(ledger=CountingLedger())
    created(world)
    world.send(envelope(event("evt-3", at(3), **NEW_ADDRESS, isOptedInMarketing=False)))
    world.commerce.log.clear()
    reads, writes = world.ledger.reads, world.ledger.writes
    older = event("evt-2", at(2), address={**FULL["address"], "street": "Old St"}, isOptedInMarketing=True)
    assert world.send(envelope(older)).outcome is Outcome.STALE
    assert world.commerce.ops == [] and world.ledger.writes == writes and world.ledger.reads == reads + 1


@pytest.mark.parametrize("first", ["consent", "profile"])
def test_a_consent_and_a_profile_event_at_the_same_instant_both_apply(world, first):
    created(world)
    consent = event("evt-a", at(5), isOptedInMarketing=False)  # "evt-a" < "evt-b": ordered first
    profile = event("evt-b", at(5), customerGroup="50")
    for ev in [consent, profile] if first == "consent" else [profile, consent]:
        assert world.send(envelope(ev)).outcome is Outcome.UPDATED
    [customer] = world.commerce.by_email(OLD_EMAIL)
    assert customer["CustomerGroup"] == "50"
    assert {c["IsOptedInMarketing"] for c in customer["Contacts"]} == {False}


def test_an_uncertain_older_write_is_retried_for_its_groups_after_a_newer_event(world):
    ev1 = created(world)
    world.commerce.fail("update", CommerceTimeoutError("read timeout", operation="update"))  # did not land
    e2 = event("evt-2", at(2), isOptedInMarketing=False)
    assert world.send(envelope(e2)).outcome is Outcome.RETRYING
    retry, _ = world.last_requeued()
    entry = world.entry(ev1.email_hash)
    assert entry.state is State.UNCERTAIN and entry.uncertain_groups == {"consent"}
    world.commerce.log.clear()
    assert world.send(envelope(event("evt-3", at(3), **NAME_ONLY))).outcome is Outcome.UPDATED
    assert world.commerce.ops == ["get", "update"]  # what Commerce held was unknown: read first
    entry = world.entry(ev1.email_hash)
    assert entry.state is State.APPLIED and entry.last == key_of("evt-3", 3)
    assert entry.uncertain_groups == {"consent"}  # evt-3 did not write consent: still evt-2's to retry
    assert world.send(envelope(event("evt-1b", at(1), isOptedInMarketing=True))).outcome is Outcome.STALE
    assert world.send(retry).outcome is Outcome.UPDATED
    [customer] = world.commerce.by_email(OLD_EMAIL)
    assert {c["IsOptedInMarketing"] for c in customer["Contacts"]} == {False} and customer["Name"] == "Grace Hopper"
    entry = world.entry(ev1.email_hash)
    assert entry.uncertain_groups == frozenset() and entry.state is State.APPLIED


def test_a_customer_created_by_an_older_event_gets_only_its_fresh_groups(world):
    newer = event("evt-2", at(2), **NAME_ONLY, isOptedInMarketing=True, **NEW_ADDRESS)
    world.commerce.fail("create", _timeout("create", sent=True))  # the create never landed
    assert world.send(envelope(newer)).outcome is Outcome.RETRYING
    retry, _ = world.last_requeued()
    older = event("evt-1", at(1), firstName="Old", lastName="Name", phone="+1 202 555 0199", isOptedInMarketing=False)
    world.commerce.log.clear()
    assert world.send(envelope(older)).outcome is Outcome.CREATED
    assert world.commerce.ops == ["search", "create"]
    body = world.commerce.log[1][1]
    assert {"FirstName", "LastName", "Name"}.isdisjoint(body) and body["Addresses"] == []
    assert body["Phone"] == "+12025550199" and body["Email"] == OLD_EMAIL  # its phone, and what Commerce needs
    # consent was written by the newer event (its outcome unknown): the contacts do not take the older one
    assert {c["IsOptedInMarketing"] for c in body["Contacts"]} == {False}
    assert world.entry(older.email_hash).state is State.UNCERTAIN  # evt-2 still has to be retried
    assert world.send(retry).outcome is Outcome.UPDATED
    [customer] = world.commerce.by_email(OLD_EMAIL)
    assert (customer["Name"], customer["Phone"], customer["Addresses"][0]["Street"]) == (
        "Grace Hopper",
        "+12025550199",
        "Pine St",
    )
    assert {c["IsOptedInMarketing"] for c in customer["Contacts"]} == {True}
    assert world.entry(older.email_hash).state is State.APPLIED and len(world.commerce.customers) == 1


def test_a_phone_contact_an_older_event_adds_takes_the_latest_consent(world):
    created(world, firstName="Ada", isOptedInMarketing=True)  # no phone contact yet
    assert world.send(envelope(event("evt-3", at(3), isOptedInMarketing=False))).outcome is Outcome.UPDATED
    world.commerce.log.clear()
    older = event("evt-2", at(2), phone="+1 202 555 0199", isOptedInMarketing=True)
    assert world.send(envelope(older)).outcome is Outcome.UPDATED
    assert world.commerce.ops == ["get", "update"]  # the customer's consent is read, not taken from evt-2
    [customer] = world.commerce.by_email(OLD_EMAIL)
    assert customer["Phone"] == "+12025550199"
    assert [(c["AddressTypeValue"], c["IsOptedInMarketing"]) for c in customer["Contacts"]] == [(2, False), (1, False)]


def test_an_email_change_stays_ordered_as_a_whole(world):
    ev1 = created(world)
    change = event("evt-3", at(3), email=NEW_EMAIL, previousEmail=OLD_EMAIL, **FULL)
    assert world.send(envelope(change)).outcome is Outcome.UPDATED
    # an older event for the new address is stale in every group, even one the change did not write
    world.commerce.log.clear()
    assert (
        world.send(envelope(event("evt-2", at(2), email=NEW_EMAIL, phone="+1 202 555 0199"))).outcome is Outcome.STALE
    )
    # and an older change is stale as a whole, though its name group is fresh at the new address
    other = event("evt-5", at(5), email="ada.byron@example.org", customerGroup="50")
    assert world.send(envelope(other)).outcome is Outcome.CREATED
    late_change = event("evt-4", at(4), email="ada.byron@example.org", previousEmail=NEW_EMAIL, **NAME_ONLY)
    assert world.send(envelope(late_change)).outcome is Outcome.STALE
    assert world.commerce.ops == ["search", "create"] and world.entry(ev1.email_hash).state is State.MOVED


def test_an_entry_written_before_group_keys_works_and_gains_them(world):
    ev1 = created(world)
    entry = world.entry(ev1.email_hash)
    # as the previous version wrote it: no group keys, no uncertain groups
    world.ledger.put(replace(entry, group_keys=None, uncertain_groups=frozenset()))
    assert world.send(envelope(event("evt-0", at(-1), **NAME_ONLY))).outcome is Outcome.STALE
    assert world.send(envelope(event("evt-2", at(2), **NAME_ONLY))).outcome is Outcome.UPDATED
    entry = world.entry(ev1.email_hash)
    assert entry.group_keys == {**dict.fromkeys(ORDERED_GROUPS, key_of("evt-1", 0)), "name": key_of("evt-2", 2)}
    # from now on an event older than evt-2 writes what evt-1 wrote last
    assert world.send(envelope(event("evt-1b", at(1), customerGroup="50", **NAME_ONLY))).outcome is Outcome.UPDATED
    [customer] = world.commerce.by_email(OLD_EMAIL)
    assert customer["CustomerGroup"] == "50" and customer["Name"] == "Grace Hopper"


def test_a_worker_that_died_writing_an_older_events_groups_is_folded_for_those_groups_only(world):
    ev1 = created(world)
    world.send(envelope(event("evt-3", at(3), **NEW_ADDRESS)))
    e2 = event("evt-2", at(2), **NAME_ONLY, customerGroup="50")
    entry = world.entry(ev1.email_hash)
    dead = Lease("dead-worker", NOW - timedelta(seconds=1), OrderKey.of(e2), frozenset({"name", "profile"}))
    world.ledger.put(replace(entry, lease=dead))
    # an event between evt-1 and evt-2 writes its phone, not its name (evt-2's write may have landed)
    between = event("evt-1b", at(1), firstName="Ida", middleName=None, lastName="B", phone="+1 202 555 0199")
    world.commerce.log.clear()
    assert world.send(envelope(between)).outcome is Outcome.UPDATED
    entry = world.entry(ev1.email_hash)
    assert entry.state is State.APPLIED and entry.last == key_of("evt-3", 3)
    assert entry.uncertain_groups == {"name", "profile"}
    assert world.send(envelope(e2)).outcome is Outcome.UPDATED  # the dead worker's event, redelivered
    [customer] = world.commerce.by_email(OLD_EMAIL)
    assert (customer["Name"], customer["Phone"], customer["CustomerGroup"]) == ("Grace Hopper", "+12025550199", "50")
    assert world.entry(ev1.email_hash).uncertain_groups == frozenset()
