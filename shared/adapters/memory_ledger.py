"""The sync ledger in this process's memory, with the table's conditional-write rules: an insert needs
no ETag and no entry, a replace the ETag of the entry it read, and every write returns a new ETag, else
``LedgerConflict``. It stands where ``LedgerStore`` does (the ledger port) when nothing must be stored:
the unit tests, and the bench's measure of what the processor costs without storage round trips."""

from __future__ import annotations

import itertools
import threading
from dataclasses import replace

from shared.core.ledger_rules import LedgerConflict, LedgerEntry


class MemoryLedger:
    def __init__(self) -> None:
        self.entries: dict[str, LedgerEntry] = {}
        self.writes = 0
        self._lock = threading.Lock()
        self._etags = itertools.count(1)

    def read(self, email_hash: str) -> LedgerEntry | None:
        with self._lock:
            return self.entries.get(email_hash)

    def write(self, entry: LedgerEntry) -> LedgerEntry:
        with self._lock:
            current = self.entries.get(entry.email_hash)
            if (current is None) != (entry.etag is None) or (current and current.etag != entry.etag):
                raise LedgerConflict("etag")
            stored = replace(entry, etag=f"e{next(self._etags)}")
            self.entries[entry.email_hash] = stored
            self.writes += 1
            return stored
