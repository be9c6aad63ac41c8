"""The ledger's pure transitions: judge, settle, leases, uncertain, applied, moved, learn."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from shared.core.ledger_rules import (
    RECENT_EVENT_IDS,
    Lease,
    LedgerEntry,
    OrderKey,
    State,
    Verdict,
    applied,
    judge,
    learn,
    moved,
    release,
    renew_lease,
    settle,
    take_lease,
    uncertain,
)
from shared.core.validation import validate_event
from tests.support.builders import FULL, KEY, NOW, T0, event, full_entry, mapping
from tests.support.commerce_documents import stored_customer


def key(event_id: str, at: datetime = T0) -> OrderKey:
    return OrderKey(at, event_id)


def applied_entry(
    last: OrderKey, *, state: State = State.APPLIED, recent: tuple[str, ...] | None = None, **kw
) -> LedgerEntry:
    return LedgerEntry(
        "h" * 64,
        state=state,
        account_number="004000",
        last=last,
        recent_event_ids=recent if recent is not None else (last.event_id,),
        hashes={"email": "e1", "name": "n1"},
        **kw,
    )


# --- judge -------------------------------------------------------------------------------------------


def test_no_entry_or_no_last_event_applies():
    assert judge(None, event()) is Verdict.APPLY
    assert judge(LedgerEntry("h" * 64), event()) is Verdict.APPLY


def test_the_last_event_again_is_a_duplicate():
    entry = applied_entry(key("evt-1"))
    assert judge(entry, event("evt-1")) is Verdict.DUPLICATE


def test_an_event_id_among_the_recent_ones_is_a_duplicate_even_when_not_the_last():
    entry = applied_entry(key("evt-9", T0 + timedelta(minutes=5)), recent=("evt-1", "evt-9"))
    assert judge(entry, event("evt-1", T0)) is Verdict.DUPLICATE
    # the same age but an id never seen: stale, not duplicate
    assert judge(entry, event("evt-2", T0)) is Verdict.STALE


def test_an_older_event_is_stale():
    entry = applied_entry(key("evt-9", T0 + timedelta(seconds=1)))
    assert judge(entry, event("evt-2", T0)) is Verdict.STALE


def test_same_time_orders_by_event_id():
    entry = applied_entry(key("evt-5"))
    assert judge(entry, event("evt-4", T0)) is Verdict.STALE  # same instant, smaller id
    assert judge(entry, event("evt-6", T0)) is Verdict.APPLY  # same instant, larger id


def test_offsets_are_compared_in_utc():
    entry = applied_entry(key("evt-1", T0))
    # 11:30+02:00 is 09:30Z: older than 10:00Z even though the wall clock reads later
    raw = {"eventId": "evt-2", "occurredAt": "2026-11-26T11:30:00+02:00", "customer": {"email": "ada@example.com"}}
    ev = validate_event(raw, now=NOW, settings=mapping(), hash_key=KEY).event
    assert judge(entry, ev) is Verdict.STALE


def test_a_newer_event_applies():
    entry = applied_entry(key("evt-5"))
    assert judge(entry, event("evt-1", T0 + timedelta(milliseconds=1))) is Verdict.APPLY


def test_the_uncertain_last_event_is_applied_again():
    entry = applied_entry(key("evt-1"), state=State.UNCERTAIN)
    assert judge(entry, event("evt-1")) is Verdict.APPLY
    assert judge(entry, event("evt-0", T0 - timedelta(seconds=1))) is Verdict.STALE


def test_force_applies_duplicates_and_stale_events():
    entry = applied_entry(key("evt-9", T0 + timedelta(hours=1)), recent=("evt-1", "evt-9"))
    assert judge(entry, event("evt-1"), force=True) is Verdict.APPLY
    assert judge(entry, event("evt-9", T0 + timedelta(hours=1)), force=True) is Verdict.APPLY


# --- settle and leases -------------------------------------------------------------------------------


def test_settle_keeps_a_live_lease_untouched():
    pending = key("evt-2", T0 + timedelta(minutes=1))
    entry = applied_entry(key("evt-1"), lease=Lease("w1", NOW + timedelta(seconds=1), pending))
    assert settle(entry, NOW) is entry


def test_settle_without_lease_is_identity():
    entry = applied_entry(key("evt-1"))
    assert settle(entry, NOW) is entry


def test_settle_drops_an_expired_lease_without_pending():
    entry = applied_entry(key("evt-1"), lease=Lease("w1", NOW, None))  # "until" is exclusive
    settled = settle(entry, NOW)
    assert settled.lease is None
    assert settled == replace(entry, lease=None)


def test_settle_of_an_expired_lease_with_a_pending_event_marks_it_uncertain():
    pending = key("evt-2", T0 + timedelta(minutes=1))
    entry = applied_entry(key("evt-1"), lease=Lease("w1", NOW - timedelta(seconds=1), pending))
    settled = settle(entry, NOW)
    assert settled.lease is None
    assert settled.state is State.UNCERTAIN and settled.last == pending and settled.hashes == {}
    assert settled.account_number == "004000"  # what it knows about the customer stays
    # the dead owner's event is retried; older ones are now stale
    assert judge(settled, event("evt-2", T0 + timedelta(minutes=1))) is Verdict.APPLY
    assert judge(settled, event("evt-1b", T0 + timedelta(seconds=30))) is Verdict.STALE


def test_lease_take_renew_release_and_liveness():
    entry = LedgerEntry("h" * 64)
    held = take_lease(entry, "me", NOW, 120, key("evt-1"))
    assert held.lease == Lease("me", NOW + timedelta(seconds=120), key("evt-1"))
    assert held.lease.live(NOW + timedelta(seconds=119)) and not held.lease.live(NOW + timedelta(seconds=120))
    assert held.leased_by_other("you", NOW) and not held.leased_by_other("me", NOW)
    assert not held.leased_by_other("you", NOW + timedelta(seconds=121))
    renewed = renew_lease(held, NOW + timedelta(seconds=100), 120)
    assert renewed.lease.until == NOW + timedelta(seconds=220) and renewed.lease.pending == key("evt-1")
    assert renewed.lease.owner == "me"
    assert release(renewed).lease is None and release(renewed).state is State.NEW


def test_knows_customer():
    assert not LedgerEntry("h" * 64).knows_customer
    assert applied_entry(key("e")).knows_customer
    assert not applied_entry(key("e"), state=State.MOVED).knows_customer


# --- uncertain ---------------------------------------------------------------------------------------


def test_uncertain_with_a_newer_event_drops_hashes_and_becomes_last():
    entry = applied_entry(key("evt-1"), lease=Lease("w", NOW, key("evt-2", T0 + timedelta(minutes=1))))
    after = uncertain(entry, key("evt-2", T0 + timedelta(minutes=1)))
    assert after.state is State.UNCERTAIN and after.hashes == {} and after.lease is None
    assert after.last == key("evt-2", T0 + timedelta(minutes=1))
    assert after.account_number == entry.account_number


def test_uncertain_with_an_older_event_keeps_the_last_but_drops_the_hashes():
    # A forced replay of an older event may have written its data: what Commerce holds is unknown.
    entry = applied_entry(key("evt-9", T0 + timedelta(hours=1)))
    after = uncertain(entry, key("evt-1"))
    assert after.last == entry.last and after.state is State.APPLIED and entry.hashes and after.hashes == {}
    assert after.lease is None


def test_uncertain_on_a_new_entry():
    after = uncertain(LedgerEntry("h" * 64), key("evt-1"))
    assert after.state is State.UNCERTAIN and after.last == key("evt-1") and after.hashes == {}


# --- applied -----------------------------------------------------------------------------------------


def test_applied_records_the_event_and_the_customer():
    ev = event("evt-1", **FULL)
    customer = stored_customer(ev)
    entry = take_lease(LedgerEntry("h" * 64), "me", NOW, 120, OrderKey.of(ev))
    after = applied(entry, ev, customer=customer, account_number="004000", hashes={"name": "x"})
    assert after.state is State.APPLIED and after.lease is None and after.account_number == "004000"
    assert after.last == OrderKey.of(ev) and after.recent_event_ids == ("evt-1",)
    assert after.hashes == {"name": "x"}
    (address,) = customer["Addresses"]
    email_contact, phone_contact = customer["Contacts"]
    assert after.address_record_id == str(address["RecordId"])
    assert after.email_contact_record_id == str(email_contact["RecordId"])
    assert after.phone_contact_record_id == str(phone_contact["RecordId"])
    assert after.empty_fields == {"PhoneExt"}  # FULL sets every part but a phone extension


def test_applied_never_moves_last_backwards():
    entry = applied_entry(key("evt-9", T0 + timedelta(hours=1)))
    after = applied(entry, event("evt-1", T0), customer=None, account_number="004000", hashes={})
    assert after.last == key("evt-9", T0 + timedelta(hours=1))
    assert after.recent_event_ids == ("evt-9", "evt-1")


def test_applied_without_a_customer_keeps_the_known_ids():
    entry = applied_entry(
        key("evt-1"),
        address_record_id="11",
        email_contact_record_id="12",
        phone_contact_record_id="13",
        empty_fields=frozenset({"MiddleName"}),
    )
    after = applied(
        entry, event("evt-2", T0 + timedelta(minutes=1)), customer=None, account_number="004000", hashes={"email": "e2"}
    )
    assert (after.address_record_id, after.email_contact_record_id, after.phone_contact_record_id) == ("11", "12", "13")
    assert after.empty_fields == {"MiddleName"} and after.hashes == {"email": "e2"}


def test_applied_keeps_at_most_the_latest_recent_ids_without_repeats():
    entry = LedgerEntry("h" * 64)
    for i in range(RECENT_EVENT_IDS + 5):
        entry = applied(
            entry, event(f"evt-{i:02d}", T0 + timedelta(seconds=i)), customer=None, account_number="1", hashes={}
        )
    assert len(entry.recent_event_ids) == RECENT_EVENT_IDS == 16
    assert entry.recent_event_ids[-1] == f"evt-{RECENT_EVENT_IDS + 4:02d}"
    assert entry.recent_event_ids[0] == "evt-05"
    again = applied(
        entry,
        event("evt-10", T0 + timedelta(seconds=10)),
        customer=None,
        account_number="1",
        hashes={},
    )
    assert again.recent_event_ids.count("evt-10") == 1 and again.recent_event_ids[-1] == "evt-10"
    assert len(again.recent_event_ids) == 16


def test_applied_clears_a_tombstone():
    entry = LedgerEntry("h" * 64, state=State.MOVED, moved_to="b" * 64, last=key("evt-1"))
    after = applied(entry, event("evt-2", T0 + timedelta(minutes=1)), customer=None, account_number="7", hashes={})
    assert after.state is State.APPLIED and after.moved_to is None and after.knows_customer


# --- learn -------------------------------------------------------------------------------------------


def test_learn_from_a_customer_with_missing_parts():
    ev = event(
        "evt-1", firstName="Ada", lastName="Lovelace", address={"street": "Main St", "city": "Aarhus", "country": "DK"}
    )
    customer = stored_customer(ev)
    learned = learn(customer)
    assert learned["empty_fields"] == {"MiddleName", "StreetNumber", "State", "ZipCode", "PhoneExt"}
    assert learned["phone_contact_record_id"] is None
    assert learned["email_contact_record_id"] == str(customer["Contacts"][0]["RecordId"])
    assert learned["address_record_id"] == str(customer["Addresses"][0]["RecordId"])
    assert learned["is_async"] is False


def test_learn_without_address_knows_no_address_parts():
    learned = learn(stored_customer(event("evt-1")))
    assert learned["address_record_id"] is None
    assert learned["empty_fields"] == {"FirstName", "MiddleName", "LastName", "PhoneExt"}


def test_learn_an_async_customer():
    learned = learn(stored_customer(event("evt-1"), async_mode=True))
    assert learned["is_async"] is True


def test_learn_picks_primary_items_by_type():
    customer = {
        "FirstName": "A",
        "MiddleName": "",
        "LastName": "B",
        "IsAsyncCustomer": False,
        "Addresses": [
            {"RecordId": 1, "IsPrimary": False, "Street": "x"},
            {
                "RecordId": 2,
                "IsPrimary": True,
                "Street": "y",
                "StreetNumber": "",
                "City": "c",
                "State": "s",
                "ZipCode": "z",
            },
        ],
        "Contacts": [
            {"RecordId": 10, "AddressTypeValue": 1, "IsPrimary": False},
            {"RecordId": 11, "AddressTypeValue": 2, "IsPrimary": False},
            {"RecordId": 12, "AddressTypeValue": 1, "IsPrimary": True},
            {"RecordId": 0, "AddressTypeValue": 2, "IsPrimary": True},
        ],
    }
    learned = learn(customer)
    assert learned["address_record_id"] == "2"
    assert learned["phone_contact_record_id"] == "12"
    assert learned["email_contact_record_id"] is None  # the primary email contact has no id yet
    assert learned["empty_fields"] == {"MiddleName", "StreetNumber", "PhoneExt"}


# --- moved -------------------------------------------------------------------------------------------


def test_moved_leaves_a_tombstone_that_makes_older_events_stale():
    entry = applied_entry(key("evt-1"), address_record_id="11", lease=Lease("me", NOW, key("evt-2")), etag="e7")
    move = event("evt-2", T0 + timedelta(minutes=1), email="new@example.com", previousEmail="ada@example.com")
    tomb = moved(entry, OrderKey.of(move), move.email_hash)
    assert tomb.state is State.MOVED and tomb.moved_to == move.email_hash and tomb.etag == "e7"
    assert tomb.account_number is None and tomb.address_record_id is None and tomb.hashes == {}
    assert tomb.lease is None and tomb.last == OrderKey.of(move) and not tomb.knows_customer
    assert tomb.email_hash == entry.email_hash
    assert judge(tomb, event("evt-0", T0 + timedelta(seconds=30))) is Verdict.STALE


def test_moved_never_moves_last_backwards():
    entry = applied_entry(key("evt-9", T0 + timedelta(hours=1)))
    move = event("evt-2", T0, email="new@example.com", previousEmail="ada@example.com")
    assert moved(entry, OrderKey.of(move), move.email_hash).last == entry.last


def test_order_key_orders_by_time_then_id():
    a, b = key("a"), key("b")
    assert a < b and key("z", T0 - timedelta(minutes=1)) < a and OrderKey.of(event("a")) == a


# --- the table entity (shared.adapters.ledger_table's pure half) --------------------------------------------------


def test_entity_round_trip_keeps_every_field():
    from shared.adapters.ledger_table import from_entity, to_entity

    for entry in (
        full_entry(),
        LedgerEntry("d" * 64),
        replace(full_entry(), lease=Lease("w", NOW, None), state=State.MOVED),
        applied_entry(key("evt-1")),
    ):
        entity = to_entity(entry)
        assert entity["PartitionKey"] == entry.email_hash and entity["RowKey"] == "ledger"
        assert all(isinstance(v, (str, bool)) for v in entity.values())  # no Int64 / datetime typing
        back = from_entity(entity)
        assert back == entry
        assert back.etag is None


def test_entity_holds_no_personal_data():
    from shared.adapters.ledger_table import to_entity

    ev = event("evt-1", **FULL)
    customer = stored_customer(ev)
    entry = applied(
        LedgerEntry(ev.email_hash), ev, customer=customer, account_number="004000", hashes={"name": "x" * 32}
    )
    text = repr(to_entity(entry)).lower()
    for value in ("ada", "lovelace", "example.com", "2025550142", "seattle", "98101"):
        assert value not in text


def test_entity_of_an_older_row_without_pending_or_state_reads():
    from shared.adapters.ledger_table import from_entity

    entry = from_entity(
        {"PartitionKey": "e" * 64, "RowKey": "ledger", "LeaseOwner": "w", "LeaseUntil": NOW.isoformat()}
    )
    assert entry.state is State.NEW and entry.lease == Lease("w", NOW, None) and entry.last is None
    assert entry.hashes == {} and entry.recent_event_ids == () and entry.empty_fields == frozenset()


def test_expect_change_marks_only_where_the_change_can_still_matter():
    from shared.core.ledger_rules import expect_change

    change = key("evt-c", T0 + timedelta(minutes=5))
    fresh = expect_change(None, "b" * 64, "a" * 64, change, NOW)
    assert (fresh.moved_from, fresh.moved_from_at, fresh.etag) == ("a" * 64, change, None)
    # a customer of its own, a newer event applied, a live lease, an equal or newer mark: no write
    assert expect_change(applied_entry(key("evt-1")), "b" * 64, "a" * 64, change, NOW) is None
    newer = LedgerEntry("b" * 64, state=State.UNCERTAIN, last=key("evt-9", T0 + timedelta(hours=1)))
    assert expect_change(newer, "b" * 64, "a" * 64, change, NOW) is None
    leased = LedgerEntry("b" * 64, lease=Lease("w", NOW + timedelta(seconds=30), change))
    assert expect_change(leased, "b" * 64, "a" * 64, change, NOW) is None
    assert expect_change(fresh, "b" * 64, "a" * 64, change, NOW) is None
    # an older, uncertain entry without a customer is marked, keeping its ETag for the conditional write
    older = LedgerEntry("b" * 64, state=State.UNCERTAIN, last=key("evt-0"), etag="e3")
    marked = expect_change(older, "b" * 64, "a" * 64, change, NOW)
    assert marked.moved_from == "a" * 64 and marked.etag == "e3" and marked.last == older.last


# --- ordering per field group ------------------------------------------------------------------------

from shared.core.ledger_rules import ORDERED_GROUPS, Judgement, assess, carried_groups  # noqa: E402


def grouped_entry(keys: dict[str, OrderKey], *, state: State = State.APPLIED, unsure=frozenset(), **kw) -> LedgerEntry:
    """An entry written since groups are ordered on their own: ``keys`` per group, last = the newest,
    the events of the groups not ``unsure`` among the recent ids (an uncertain write adds none)."""
    return LedgerEntry(
        "h" * 64,
        state=state,
        account_number="004000",
        last=max(keys.values()),
        recent_event_ids=tuple(sorted({k.event_id for g, k in keys.items() if g not in unsure})),
        group_keys=keys,
        uncertain_groups=frozenset(unsure),
        **kw,
    )


NAME = dict(firstName="Grace", middleName=None, lastName="Hopper")
ADDRESS = dict(address={"street": "Pine St", "city": "Seattle", "country": "US"})


def test_carried_groups_never_include_the_email():
    assert carried_groups(event()) == frozenset()
    assert carried_groups(event(middleName=None, isOptedInMarketing=True)) == {"name", "consent"}
    assert carried_groups(event(**FULL)) == set(ORDERED_GROUPS) == {"name", "phone", "profile", "consent", "address"}


def test_an_older_event_applies_only_the_groups_no_newer_event_wrote():
    # e1 (10:00) wrote every group, e7 (10:06) the address only; e6 (10:05) was throttled meanwhile
    e1, e7 = key("evt-1"), key("evt-7", T0 + timedelta(minutes=6))
    entry = grouped_entry({**dict.fromkeys(ORDERED_GROUPS, e1), "address": e7})
    late = event("evt-6", T0 + timedelta(minutes=5), **NAME, **ADDRESS)
    assert assess(entry, late) == Judgement(Verdict.APPLY, frozenset({"name"}))
    assert judge(entry, late) is Verdict.APPLY


def test_an_older_event_whose_groups_were_all_written_since_is_stale():
    e7 = key("evt-7", T0 + timedelta(minutes=6))
    entry = grouped_entry({**dict.fromkeys(ORDERED_GROUPS, key("evt-1")), "address": e7})
    assert assess(entry, event("evt-6", T0 + timedelta(minutes=5), **ADDRESS)) == Judgement(Verdict.STALE)
    # an event carrying no group but its email has nothing left to write either
    assert judge(entry, event("evt-6", T0 + timedelta(minutes=5))) is Verdict.STALE


def test_a_group_never_written_is_fresh_for_any_event():
    entry = grouped_entry({"name": key("evt-9", T0 + timedelta(hours=1))})
    assert assess(entry, event("evt-1", T0, isOptedInMarketing=True, **NAME)) == Judgement(
        Verdict.APPLY, frozenset({"consent"})
    )


def test_same_instant_events_touching_different_groups_both_apply():
    consent = event("evt-a", T0, isOptedInMarketing=False)
    profile = event("evt-b", T0, customerGroup="50")
    # whichever comes first, the other still applies: the tie only orders events of the same group
    after_profile = grouped_entry({"profile": OrderKey.of(profile)})
    assert assess(after_profile, consent) == Judgement(Verdict.APPLY, frozenset({"consent"}))
    after_consent = grouped_entry({"consent": OrderKey.of(consent)})
    assert assess(after_consent, profile) == Judgement(Verdict.APPLY, frozenset({"profile"}))
    # the same group at the same instant: the larger event id wins, as before
    assert judge(after_profile, event("evt-a", T0, customerGroup="60")) is Verdict.STALE


def test_duplicates_stay_per_event_id():
    e1, e7 = key("evt-1"), key("evt-7", T0 + timedelta(minutes=6))
    entry = grouped_entry({"name": e1, "address": e7})
    assert judge(entry, event("evt-1", T0, **NAME)) is Verdict.DUPLICATE  # in RecentEventIds
    assert judge(entry, event("evt-7", T0 + timedelta(minutes=6), **ADDRESS)) is Verdict.DUPLICATE  # the last


def test_an_email_change_is_ordered_as_a_whole():
    entry = grouped_entry(
        {"address": key("evt-7", T0 + timedelta(minutes=6))},
    )
    change = event("evt-6", T0 + timedelta(minutes=5), email="ada@example.com", previousEmail="old@example.com", **NAME)
    assert assess(entry, change) == Judgement(Verdict.STALE)  # its name group is fresh, but it moves the entry
    newer = event("evt-8", T0 + timedelta(minutes=8), previousEmail="old@example.com", **NAME)
    assert assess(entry, newer) == Judgement(Verdict.APPLY, frozenset({"name"}))


def test_force_applies_every_group_the_event_carries():
    entry = grouped_entry(dict.fromkeys(ORDERED_GROUPS, key("evt-9", T0 + timedelta(hours=1))))
    assert assess(entry, event("evt-1", **FULL), force=True) == Judgement(Verdict.APPLY, frozenset(ORDERED_GROUPS))


def test_an_uncertain_write_counts_for_the_groups_it_carried_and_only_its_event_retries_them():
    e1, e7 = key("evt-1"), key("evt-7", T0 + timedelta(minutes=6))
    entry = grouped_entry({**dict.fromkeys(ORDERED_GROUPS, e1), "address": e7})
    e6 = event("evt-6", T0 + timedelta(minutes=5), **NAME, isOptedInMarketing=False)
    after = uncertain(
        take_lease(entry, "w", NOW, 120, OrderKey.of(e6), groups=frozenset({"name", "consent"})),
        OrderKey.of(e6),
        frozenset({"name", "consent"}),
    )
    assert after.state is State.APPLIED and after.last == e7 and after.hashes == {}  # e7 is still the last
    assert after.group_keys == {
        **dict.fromkeys(ORDERED_GROUPS, e1),
        "address": e7,
        "name": OrderKey.of(e6),
        "consent": OrderKey.of(e6),
    }
    assert after.uncertain_groups == {"name", "consent"}
    # e6 itself retries both; an older event for those groups is stale, for the others it still applies
    assert assess(after, e6) == Judgement(Verdict.APPLY, frozenset({"name", "consent"}))
    assert judge(after, event("evt-5", T0 + timedelta(minutes=4), **NAME)) is Verdict.STALE
    assert assess(after, event("evt-5", T0 + timedelta(minutes=4), **NAME, phone="+1 202 555 0199")) == Judgement(
        Verdict.APPLY, frozenset({"phone"})
    )
    # once e6 is applied, its groups are certain and it is a duplicate
    done = applied(after, e6, customer=None, account_number="004000", hashes={}, groups=frozenset({"name", "consent"}))
    assert done.uncertain_groups == frozenset() and done.last == e7 and done.state is State.APPLIED
    assert judge(done, e6) is Verdict.DUPLICATE


def test_a_newer_write_of_an_uncertain_group_makes_it_certain():
    e3 = key("evt-3", T0 + timedelta(minutes=3))
    entry = grouped_entry({"consent": e3, "name": e3}, state=State.UNCERTAIN, unsure={"consent", "name"})
    e4 = event("evt-4", T0 + timedelta(minutes=4), isOptedInMarketing=True)
    after = applied(
        entry, e4, customer=None, account_number="004000", hashes={"consent": "c"}, groups=frozenset({"consent"})
    )
    assert after.state is State.APPLIED and after.uncertain_groups == {"name"}
    assert after.group_keys["consent"] == OrderKey.of(e4) and after.group_keys["name"] == e3
    # evt-3 is retried for its name only
    assert assess(after, event("evt-3", T0 + timedelta(minutes=3), isOptedInMarketing=False, **NAME)) == Judgement(
        Verdict.APPLY, frozenset({"name"})
    )


def test_an_older_event_applied_while_the_last_write_is_unknown_leaves_the_entry_uncertain():
    e3 = key("evt-3", T0 + timedelta(minutes=3))
    entry = grouped_entry({"consent": e3}, state=State.UNCERTAIN, unsure={"consent"})
    older = event("evt-1", T0, **NAME)
    after = applied(
        entry, older, customer=None, account_number="004000", hashes={"name": "n"}, groups=frozenset({"name"})
    )
    assert after.state is State.UNCERTAIN and after.last == e3 and after.hashes == {}
    assert after.group_keys == {"consent": e3, "name": OrderKey.of(older)}
    assert judge(after, event("evt-3", T0 + timedelta(minutes=3), isOptedInMarketing=True)) is Verdict.APPLY


def test_settle_folds_a_pending_event_for_the_groups_it_writes():
    e1 = key("evt-1")
    entry = grouped_entry(dict.fromkeys(ORDERED_GROUPS, e1))
    pending = key("evt-2", T0 + timedelta(minutes=1))
    dead = replace(entry, lease=Lease("w", NOW - timedelta(seconds=1), pending, frozenset({"phone"})))
    settled = settle(dead, NOW)
    assert settled.state is State.UNCERTAIN and settled.last == pending and settled.lease is None
    assert settled.group_keys == {**dict.fromkeys(ORDERED_GROUPS, e1), "phone": pending}
    assert settled.uncertain_groups == {"phone"}
    # an event between the two still writes its name, not its phone
    between = event("evt-1b", T0 + timedelta(seconds=30), **NAME, phone="+1 202 555 0199")
    assert assess(settled, between) == Judgement(Verdict.APPLY, frozenset({"name"}))


def test_a_lease_without_groups_folds_every_group():
    entry = grouped_entry({"name": key("evt-1")})
    pending = key("evt-2", T0 + timedelta(minutes=1))
    settled = settle(replace(entry, lease=Lease("w", NOW - timedelta(seconds=1), pending)), NOW)
    assert settled.group_keys == dict.fromkeys(ORDERED_GROUPS, pending)
    assert settled.uncertain_groups == set(ORDERED_GROUPS)


def test_an_entry_written_before_group_keys_reads_every_group_at_its_last_event():
    from shared.adapters.ledger_table import from_entity

    last = OrderKey(T0 + timedelta(minutes=5), "evt-5")
    # an entity exactly as the previous version stored it: no GroupKeys, UncertainGroups, PendingGroups
    old = {
        "PartitionKey": "f" * 64,
        "RowKey": "ledger",
        "State": "applied",
        "AccountNumber": "004000",
        "IsAsync": False,
        "AddressRecordId": "11",
        "EmailContactRecordId": "12",
        "PhoneContactRecordId": "",
        "LastOccurredAt": last.occurred_at.isoformat(),
        "LastEventId": "evt-5",
        "RecentEventIds": '["evt-1", "evt-5"]',
        "Hashes": '{"email": "e", "name": "n"}',
        "EmptyFields": "",
        "LeaseOwner": "",
        "LeaseUntil": "",
        "PendingOccurredAt": "",
        "PendingEventId": "",
        "MovedTo": "",
        "MovedFrom": "",
        "MovedFromOccurredAt": "",
        "MovedFromEventId": "",
    }
    entry = from_entity(old)
    assert entry.group_keys is None and entry.keys() == dict.fromkeys(ORDERED_GROUPS, last)
    assert entry.unsure() == frozenset()
    # so an older event is stale as a whole, exactly as before, and a newer one applies
    assert judge(entry, event("evt-4", T0 + timedelta(minutes=4), **FULL)) is Verdict.STALE
    newer = event("evt-6", T0 + timedelta(minutes=6), **NAME)
    after = applied(entry, newer, customer=None, account_number="004000", hashes={"email": "e", "name": "n2"})
    assert after.group_keys == {**dict.fromkeys(ORDERED_GROUPS, last), "name": OrderKey.of(newer)}
    assert assess(
        after, event("evt-5b", T0 + timedelta(minutes=5, seconds=1), **NAME, phone="+1 202 555 0199")
    ) == Judgement(Verdict.APPLY, frozenset({"phone"}))
    # an old uncertain entry: every group is uncertain at its last event, which retries them all
    old_uncertain = from_entity({**old, "State": "uncertain", "Hashes": "{}"})
    assert old_uncertain.unsure() == set(ORDERED_GROUPS)
    assert assess(old_uncertain, event("evt-5", last.occurred_at, **FULL)) == Judgement(
        Verdict.APPLY, frozenset(ORDERED_GROUPS)
    )
    assert judge(old_uncertain, event("evt-4", T0 + timedelta(minutes=4), **FULL)) is Verdict.STALE
    # a lease taken by the previous version (no PendingGroups) folds every group
    leased = from_entity(
        {
            **old,
            "LeaseOwner": "w",
            "LeaseUntil": NOW.isoformat(),
            "PendingOccurredAt": (T0 + timedelta(minutes=6)).isoformat(),
            "PendingEventId": "evt-6",
        }
    )
    assert leased.lease.groups is None and settle(leased, NOW).unsure() == set(ORDERED_GROUPS)


def test_applied_records_the_groups_it_wrote_and_never_moves_a_group_back():
    e9 = key("evt-9", T0 + timedelta(hours=1))
    entry = grouped_entry({"name": e9})
    ev = event("evt-1", T0, **NAME, isOptedInMarketing=True)
    after = applied(entry, ev, customer=None, account_number="004000", hashes={})  # a forced replay: both
    assert after.group_keys == {"name": e9, "consent": OrderKey.of(ev)} and after.last == e9


def test_an_applied_email_change_and_a_tombstone_order_every_group_at_the_change():
    change = event("evt-5", T0 + timedelta(minutes=5), email="new@example.com", previousEmail="ada@example.com", **NAME)
    key5 = OrderKey.of(change)
    new = applied(
        LedgerEntry(change.email_hash), change, customer=None, account_number="004000", hashes={}, moved_at=key5
    )
    assert new.group_keys == dict.fromkeys(ORDERED_GROUPS, key5)
    assert judge(new, event("evt-4", T0 + timedelta(minutes=4), email="new@example.com", **FULL)) is Verdict.STALE
    old = grouped_entry({"address": key("evt-1")})
    tomb = moved(old, key5, change.email_hash)
    assert tomb.group_keys == dict.fromkeys(ORDERED_GROUPS, key5)
    assert judge(tomb, event("evt-4", T0 + timedelta(minutes=4), **FULL)) is Verdict.STALE


def test_entity_round_trip_keeps_group_keys_uncertain_groups_and_pending_groups():
    from shared.adapters.ledger_table import from_entity, to_entity

    keys = {
        "name": OrderKey(datetime(2026, 11, 26, 10, 0, 0, 123456, tzinfo=UTC), "évt/1 ?#"),
        "consent": key("evt-2", T0 + timedelta(minutes=1)),
    }
    for entry in (
        grouped_entry(keys, unsure={"consent"}),
        LedgerEntry("d" * 64, group_keys={}),
        replace(full_entry(), group_keys=keys, lease=Lease("w", NOW, key("evt-3"), frozenset())),
        replace(full_entry(), lease=Lease("w", NOW, key("evt-3"), frozenset({"phone", "name"}))),
    ):
        entity = to_entity(entry)
        assert all(isinstance(v, (str, bool)) for v in entity.values())
        assert from_entity(entity) == entry
    assert to_entity(LedgerEntry("d" * 64))["GroupKeys"] == ""  # None and {} differ on the table too
    assert to_entity(LedgerEntry("d" * 64, group_keys={}))["GroupKeys"] == "{}"
