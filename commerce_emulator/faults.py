"""Deciding, per request, which fault (if any) to inject and how long to delay.

A script of one-shot faults is consumed first; otherwise each rate is drawn independently. Every decision
draws the same number of random numbers whatever the outcome, so a given seed and a given sequence of
requests always give the same faults.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Any

from .config import DEFAULT_FAULTS, RATE_FAULTS

# When several independent draws hit, the first in this order wins (the one a client sees soonest).
_PRECEDENCE = ("drop", "hang", "unavailable", "server_error", "throttle", "commit_then_fail")


@dataclass(frozen=True)
class Decision:
    delay_seconds: float = 0.0
    fault: str | None = None  # one of config.SCRIPT_FAULTS, or None


class FaultInjector:
    """Holds the current faults document, its random generator and what is left of its script."""

    def __init__(self, faults: dict[str, Any] | None = None):
        self._lock = threading.Lock()
        self.replace(faults or DEFAULT_FAULTS)

    def replace(self, faults: dict[str, Any]) -> None:
        with self._lock:
            self._faults = faults
            self._script = list(faults["script"])
            self._random = random.Random(faults["seed"])

    def current(self) -> dict[str, Any]:
        with self._lock:
            return {**self._faults, "script": list(self._script)}

    def decide(self, operation: str) -> Decision:
        with self._lock:
            f = self._faults
            for i, entry in enumerate(self._script):
                if entry["operation"] in ("any", operation):
                    del self._script[i]
                    return Decision(self._delay(f, operation), entry["fault"])
            applies = operation in f["operations"]
            delay = self._delay(f, operation)
            draws = {name: self._random.random() for name in RATE_FAULTS}
            with_retry_after = self._random.random() < f["throttle_retry_after_ratio"]
        if not applies:
            return Decision(0.0, None)
        for name in _PRECEDENCE:
            if draws[name] < f["rates"][name]:
                if name == "throttle" and not with_retry_after:
                    return Decision(delay, "throttle_no_retry_after")
                return Decision(delay, name)
        return Decision(delay, None)

    def _delay(self, f: dict[str, Any], operation: str) -> float:
        jitter = self._random.random() * f["latency_jitter_ms"]
        if operation not in f["operations"]:
            return 0.0
        return (f["latency_ms"] + jitter) / 1000.0
