"""The in-memory customer store: one lock around everything, documents replaced (never mutated) on write.

Because a stored document is never changed in place, a reference handed out under the lock can be serialised
after the lock is released without a copy.
"""

from __future__ import annotations

import bisect
import math
import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from . import documents
from .api_errors import CUSTOMER_NOT_FOUND, DUPLICATE_OBJECT, ApiError, from_problems
from .search import is_prefix_term, matches, word_matches, words

FIRST_RECORD_ID = 5637144576  # where AX/Commerce RecIds typically start
FIRST_ACCOUNT = 4001
FIRST_PARTY = 1001


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def not_found() -> ApiError:
    return ApiError(404, CUSTOMER_NOT_FOUND, "The customer was not found.", ["AccountNumber"])


class CustomerStore:
    def __init__(self, clock: Callable[[], str] = utc_now, new_guid: Callable[[], str] = lambda: str(uuid.uuid4())):
        self._lock = threading.Lock()
        self._clock = clock
        self._new_guid = new_guid
        self.reset()

    # --- Ids (documents.Ids), always called with the lock held ----------------------------------------
    def record_id(self) -> int:
        self._next_record += 1
        return self._next_record

    def account_number(self) -> str:
        while True:
            self._next_account += 1
            number = f"{self._next_account:06d}"
            if number not in self._by_account:
                return number

    def async_account_number(self) -> str:
        return self._new_guid()

    def party_number(self) -> str:
        self._next_party += 1
        return f"{self._next_party:09d}"

    def now(self) -> str:
        return self._clock()

    # --- index ---------------------------------------------------------------------------------------------
    def _put(self, doc: dict[str, Any], old: Mapping[str, Any] | None = None) -> None:
        if old is not None:
            self._by_account.pop(old["AccountNumber"], None)
            _remove(self._emails, (old["Email"].lower(), old["RecordId"]))
            for position, word in enumerate(self._words_of.pop(old["RecordId"], ())):
                _remove(self._words, (word, old["RecordId"], position))
        self._by_account[doc["AccountNumber"]] = doc
        self._by_record[doc["RecordId"]] = doc
        email = doc["Email"].lower()
        bisect.insort(self._emails, (email, doc["RecordId"]))
        self._words_of[doc["RecordId"]] = email_words = words(email)
        for position, word in enumerate(email_words):
            bisect.insort(self._words, (word, doc["RecordId"], position))

    # --- operations ----------------------------------------------------------------------------------------
    def reset(self) -> None:
        with self._lock:
            self._by_account: dict[str, dict[str, Any]] = {}
            self._by_record: dict[int, dict[str, Any]] = {}
            self._emails: list[tuple[str, int]] = []  # sorted (lower-cased email, RecordId): prefix search
            self._words: list[tuple[str, int, int]] = []  # sorted (word, RecordId, position): word search
            self._words_of: dict[int, tuple[str, ...]] = {}  # RecordId -> the words of its email
            self._next_record = FIRST_RECORD_ID
            self._next_account = FIRST_ACCOUNT - 1
            self._next_party = FIRST_PARTY - 1

    def get(self, account: str) -> dict[str, Any]:
        with self._lock:
            doc = self._by_account.get(account)
        if doc is None:
            raise not_found()
        return doc

    def all(self) -> list[dict[str, Any]]:
        with self._lock:
            return sorted(self._by_account.values(), key=lambda d: d["RecordId"])

    def create(self, body: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            doc = documents.build_customer(body, config, self)
            self._put(doc)
            return doc

    def update(self, account: str, body: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            stored = self._by_account.get(account)
            if stored is None:
                raise not_found()
            doc, problems = documents.apply_patch(stored, body, self)
            if problems:
                raise from_problems(problems)
            self._put(doc, old=stored)
            return doc

    def seed(self, bodies: list[Mapping[str, Any]], config: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Store customers as if created, keeping given AccountNumber/RecordIds/IsAsyncCustomer. All or none."""
        with self._lock:
            saved = (
                dict(self._by_account),
                dict(self._by_record),
                list(self._emails),
                list(self._words),
                dict(self._words_of),
                self._next_record,
                self._next_account,
                self._next_party,
            )
            try:
                return [self._seed_one(body, config) for body in bodies]
            except ApiError:
                (
                    self._by_account,
                    self._by_record,
                    self._emails,
                    self._words,
                    self._words_of,
                    self._next_record,
                    self._next_account,
                    self._next_party,
                ) = saved
                raise

    def _seed_one(self, body: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
        given = [body.get("RecordId") or 0] + [
            item.get("RecordId") or 0 for key in ("Addresses", "Contacts") for item in body.get(key) or []
        ]
        self._next_record = max(self._next_record, *given)
        doc = documents.build_customer(body, config, self, seed=True)
        if doc["AccountNumber"] in self._by_account or doc["RecordId"] in self._by_record:
            raise ApiError(
                400,
                DUPLICATE_OBJECT,
                "A customer with this AccountNumber or RecordId already exists.",
                ["AccountNumber"],
            )
        self._put(doc)
        return doc

    def search(self, terms: list[str], top: int, skip: int, mode: str = "word_prefix") -> list[dict[str, Any]]:
        """Customers matching every term (search.matches), ordered by RecordId, paged; as GlobalCustomers."""
        first, rest = terms[0], terms[1:]
        with self._lock:
            candidates = self._by_email_prefix(first) if mode == "email_prefix" else self._by_words(first)
            found = sorted(
                r for r in candidates if all(matches(term, self._by_record[r]["Email"].lower(), mode) for term in rest)
            )
            docs = [self._by_record[r] for r in found[skip : skip + top]]
        return [documents.global_customer(doc) for doc in docs]

    def _by_email_prefix(self, term: str) -> list[int]:
        i = bisect.bisect_left(self._emails, (term,))
        found: list[int] = []
        while i < len(self._emails):
            email, record_id = self._emails[i]
            if not (email.startswith(term) if is_prefix_term(term) else email == term):
                break
            found.append(record_id)
            i += 1
        return found

    def _by_words(self, term: str) -> set[int]:
        """Full-text phrase match through the word index, anchored on the term's rarest word."""
        term_words, prefix = words(term), is_prefix_term(term)
        if not term_words:
            return set()
        anchor, lo, hi = min(
            ((i, *self._word_range(w, prefix)) for i, w in enumerate(term_words)), key=lambda t: t[2] - t[1]
        )
        found: set[int] = set()
        for _, record_id, position in self._words[lo:hi]:
            if record_id not in found and word_matches(
                term_words, prefix, self._words_of[record_id], position - anchor
            ):
                found.add(record_id)
        return found

    def _word_range(self, word: str, prefix: bool) -> tuple[int, int]:
        lo = bisect.bisect_left(self._words, (word,))
        hi = (
            bisect.bisect_left(self._words, (word + "\U0010ffff",))
            if prefix
            else bisect.bisect_right(self._words, (word, math.inf))
        )
        return lo, hi

    def sync_async(self) -> dict[str, str]:
        """Headquarters' async sync: each async customer gets a real account number; its GUID is gone."""
        with self._lock:
            renumbered: dict[str, str] = {}
            for old in sorted(self._by_account.values(), key=lambda d: d["RecordId"]):
                if old["IsAsyncCustomer"]:
                    doc = {**old, "AccountNumber": self.account_number(), "IsAsyncCustomer": False}
                    self._put(doc, old=old)
                    renumbered[old["AccountNumber"]] = doc["AccountNumber"]
            return renumbered


def _remove(index: list, entry: tuple) -> None:
    i = bisect.bisect_left(index, entry)
    if i < len(index) and index[i] == entry:
        del index[i]
