"""The Commerce side of applying an event: find the email's customer (the ledger's account, the sender's
hint, an exact search by email), then PATCH the difference or create it.

Runs only under the email's lease (``shared.usecases.processor.lease``): every create or PATCH is
preceded by the lease's ``before_write``, which makes sure the write ends before the lease can pass to
another worker.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from shared.core import privacy
from shared.core.commerce_bodies.create import build_create_body
from shared.core.commerce_bodies.groups import blind_patch, changed_groups, group_hashes
from shared.core.commerce_bodies.patch import build_patch
from shared.core.commerce_errors import CommerceNotFoundError
from shared.core.contract import NormalisedEvent
from shared.core.ledger_rules import LedgerEntry, State
from shared.core.telemetry_names import Outcome

if TYPE_CHECKING:  # the processor's dependencies, defined where a delivery starts
    from shared.usecases.processor.delivery import ProcessorDeps


log = logging.getLogger("customer_sync.processor")


class CommercePort(Protocol):
    def search_customers_by_email(self, email: str) -> list[dict[str, Any]]: ...
    def get_customer(self, account_number: str) -> dict[str, Any]: ...
    def create_customer(self, body: dict[str, Any]) -> dict[str, Any]: ...
    def update_customer(self, account_number: str, changes: dict[str, Any]) -> dict[str, Any]: ...


class WriteGuard(Protocol):
    """The lease a Commerce write relies on: its entry (kept current across renewals) and the check
    that must pass before any create or PATCH is sent."""

    entry: LedgerEntry

    def before_write(self) -> None: ...


SyncResult = tuple[Outcome, dict[str, Any] | None, str, dict[str, str], bool]


def sync_customer(
    event: NormalisedEvent, lease: WriteGuard, previous: LedgerEntry | None, deps: ProcessorDeps, *, force: bool
) -> SyncResult:
    """Create or update the customer. Returns the outcome, the last customer document Commerce sent,
    the account, the group hashes to record, and whether the previous address's customer was adopted.
    ``previous``: the previous address's entry, leased too, during an email change."""
    entry, commerce = lease.entry, deps.commerce
    hashes = group_hashes(event, deps.hash_key)
    if entry.knows_customer and entry.state is State.APPLIED and entry.hashes and not force:
        account = entry.account_number or ""  # knows_customer: never empty here
        changed = changed_groups(entry.hashes, hashes)
        known = {**entry.hashes, **hashes}
        if not changed:
            return Outcome.UNCHANGED, None, account, known, False
        patch = blind_patch(event, entry, changed, deps.mapping)
        if patch == {}:
            return Outcome.UNCHANGED, None, account, known, False
        if patch is not None:
            lease.before_write()
            try:
                return Outcome.UPDATED, commerce.update_customer(account, patch), account, known, False
            except CommerceNotFoundError:
                log.info("stored account not found in Commerce; resolving by email")
                return _resolve_and_write(event, lease, None, deps, hashes, skip_account=True)
    return _resolve_and_write(event, lease, previous, deps, hashes, skip_account=False)


def _resolve_and_write(
    event: NormalisedEvent,
    lease: WriteGuard,
    previous: LedgerEntry | None,
    deps: ProcessorDeps,
    hashes: dict[str, str],
    *,
    skip_account: bool,
) -> SyncResult:
    commerce = deps.commerce
    customer, adopted = _find(
        event,
        lease.entry,
        previous,
        commerce,
        skip_account=skip_account,
        hash_key=deps.hash_key,
    )
    if customer is None:
        lease.before_write()
        created = commerce.create_customer(build_create_body(event, deps.mapping))
        return Outcome.CREATED, created, str(created.get("AccountNumber", "")), hashes, False
    account = customer["AccountNumber"]
    patch = build_patch(customer, event, deps.mapping)
    if patch is None:
        return Outcome.UNCHANGED, customer, account, hashes, adopted
    # Kept if the PATCH ends uncertain: the next attempt (or a later event adopting this customer
    # after an email change) reads it by account; the email check in _get still guards it.
    lease.entry = replace(lease.entry, account_number=account)
    lease.before_write()
    return Outcome.UPDATED, commerce.update_customer(account, patch), account, hashes, adopted


def _get(
    commerce: CommercePort,
    account: str | None,
    *emails: str | None,
    email_hash: str | None = None,
    hash_key: bytes = b"",
) -> dict[str, Any] | None:
    """The customer with this account number if its email is one of ``emails`` (or, for an email
    known only by its hash, hashes to ``email_hash``); else None."""
    if not account:
        return None
    try:
        candidate = commerce.get_customer(account)
    except CommerceNotFoundError:
        log.info("account not found in Commerce; resolving by email")
        return None
    found = (candidate.get("Email") or "").strip().lower()
    if found in {e.lower() for e in emails if e}:
        return candidate
    return candidate if email_hash and found and privacy.email_hash(found, hash_key) == email_hash else None


def _search(commerce: CommercePort, email: str) -> dict[str, Any] | None:
    matches = commerce.search_customers_by_email(email)
    if not matches:
        return None
    chosen = pick_customer(matches)
    if len(matches) > 1:
        log.warning(
            "%d Commerce customers share this email; updating %s (lowest RecordId, non-async "
            "first) - merge the duplicates in headquarters",
            len(matches),
            chosen.get("AccountNumber"),
        )
    return commerce.get_customer(chosen["AccountNumber"])


def _find(
    event: NormalisedEvent,
    entry: LedgerEntry,
    previous: LedgerEntry | None,
    commerce: CommercePort,
    *,
    skip_account: bool,
    hash_key: bytes,
) -> tuple[dict[str, Any] | None, bool]:
    """The Commerce customer this event is about, read in full (None when there is none yet), and
    whether it is the previous address's customer taken over by an email change.

    Sources, in order: the ledger's account; the sender's ``customerAccount`` hint; an exact search
    by the email. The previous address is looked at only while its entry is leased (``previous``),
    and only after the new address: the new address may have a customer of its own (it is updated
    and the previous one left alone), or a change that already went through may have renamed it."""
    if not skip_account and entry.knows_customer:
        found = _get(commerce, entry.account_number, event.email_match_key)
        if found is not None:  # (after an uncertain change, the one it renamed)
            return found, bool(
                previous and previous.knows_customer and found.get("AccountNumber") == previous.account_number
            )
    if previous is None:
        found = _get(commerce, event.customer_account, event.email_match_key)
        return (found if found is not None else _search(commerce, event.email)), False
    found = _search(commerce, event.email)
    if found is not None:
        return found, previous.knows_customer and found.get("AccountNumber") == previous.account_number
    both = (event.email_match_key, event.previous_email_match_key)
    if previous.knows_customer:
        found = _get(commerce, previous.account_number, *both, email_hash=previous.email_hash, hash_key=hash_key)
        if found is not None:
            return found, True
    found = _get(commerce, event.customer_account, *both)
    if found is None and event.previous_email:
        found = _search(commerce, event.previous_email)
    return found, found is not None


def pick_customer(matches: list[dict[str, Any]]) -> dict[str, Any]:
    """Deterministic choice among exact matches: non-async before async, then the lowest RecordId."""
    return min(
        matches,
        key=lambda c: (bool(c.get("IsAsyncCustomer")), int(c.get("RecordId") or 0), str(c.get("AccountNumber"))),
    )
