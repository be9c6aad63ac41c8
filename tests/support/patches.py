"""PATCHes over a customer an earlier event created: the blind one built from the field groups'
hashes in the ledger (no read), the one built by reading the customer and diffing, and what each
leaves in Commerce by the emulator's own PATCH rules."""

from __future__ import annotations

import copy

from commerce_emulator.documents import apply_patch
from shared.core.commerce_bodies.groups import blind_patch, changed_groups, group_hashes
from shared.core.commerce_bodies.patch import build_patch
from tests.support.builders import KEY, event, known_entry, mapping
from tests.support.commerce_documents import FakeIds, stored_customer


def patch_for(before: dict, after: dict, customer: dict | None = None, **overrides):
    """blind_patch for an event ``after`` over a customer created by an event ``before``."""
    ev0, ev1 = event("evt-0", **before), event("evt-1", **after)
    customer = customer if customer is not None else stored_customer(ev0)
    entry = known_entry(customer, ev0, **overrides)
    groups = changed_groups(entry.hashes, group_hashes(ev1, KEY))
    return blind_patch(ev1, entry, groups, mapping()), customer, groups


NEW_IDS = 9_000_000_000_000  # above any id the stored customer has


def after_patch(customer: dict, patch: dict) -> dict:
    """The customer after ``patch`` (the emulator's pure PATCH semantics), new items' ids blanked:
    they depend only on the order the items were sent in."""
    doc, problems = apply_patch(
        copy.deepcopy(customer), {**patch, "AccountNumber": customer["AccountNumber"]}, FakeIds(NEW_IDS)
    )
    assert problems == []
    for item in doc["Addresses"] + doc["Contacts"]:
        if item["RecordId"] >= NEW_IDS:
            item["RecordId"] = "new"
    return doc


def same_result(before: dict, after: dict) -> tuple[dict | None, dict | None]:
    """(blind patch, read-then-diff patch) for ``after`` over the customer ``before`` created; asserts
    they leave the same customer whenever the blind one could be built."""
    ev0, ev1 = event("evt-0", **before), event("evt-1", **after)
    customer = stored_customer(ev0)
    entry = known_entry(customer, ev0)
    blind = blind_patch(ev1, entry, changed_groups(entry.hashes, group_hashes(ev1, KEY)), mapping())
    read = build_patch(copy.deepcopy(customer), ev1, mapping())
    if blind is not None:
        assert after_patch(customer, blind) == after_patch(customer, read or {}), (before, after, blind, read)
    return blind, read
