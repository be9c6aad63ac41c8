"""An in-memory ledger with the table's conditional-write rules, for fast tests of the processor.
Integration tests use the real ``LedgerStore`` on Azurite; this one keeps unit tests free of I/O."""

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
