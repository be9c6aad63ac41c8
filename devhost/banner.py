"""The startup banner of ``python -m devhost`` (pure: text from what the host discovered)."""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from devhost.bindings import AppFunctions
from devhost.ncrontab import next_occurrence

# The app's ingest route, shown in the "try it" line when the app has it.
SAMPLE_ROUTE = "customers/events"
FALLBACK_EVENT = {
    "specVersion": "1.0",
    "eventId": "demo-0001",
    "eventType": "customer.created",
    "occurredAt": "2026-01-01T09:00:00+00:00",
    "customer": {"email": "jane.doe@example.com", "firstName": "Jane", "lastName": "Doe"},
}


@dataclass(frozen=True)
class BannerFacts:
    functions: AppFunctions
    http_base: str | None  # http://localhost:7071/api, None without HTTP
    settings_file: str | None
    processes: Sequence[str]  # one line per started/used process
    sample_event: Path | None  # samples/event.json when it exists
    emulator_url: str | None  # http://127.0.0.1:7075 when the emulator serves this run
    now: datetime
    queues_enabled: bool = True
    timers_enabled: bool = True


def banner(facts: BannerFacts) -> str:
    lines = ["", "Local Functions host (devhost): a stand-in for Azure Functions Core Tools", ""]
    lines.append(f"Settings: {facts.settings_file or '(none)'} (real environment variables win)")
    lines += [f"  {p}" for p in facts.processes]
    lines += ["", "Functions:"]
    for f in facts.functions.http:
        url = f"{facts.http_base}/{f.route.text}" if facts.http_base else "(HTTP disabled)"
        lines.append(f"  {f.name}: [{','.join(sorted(f.methods))}] {url}  (authLevel {f.auth_level})")
    for q in facts.functions.queues:
        state = "" if facts.queues_enabled else " (disabled)"
        lines.append(f"  {q.name}: queueTrigger on '{q.queue_name}'{state}")
    for t in facts.functions.timers:
        state = (
            f", next {next_occurrence(t.schedule, facts.now).isoformat()}Z" if facts.timers_enabled else " (disabled)"
        )
        lines.append(f"  {t.name}: timerTrigger '{t.schedule.expression}' (UTC{state})")
    if facts.http_base and facts.functions.http:
        lines += ["", "Function keys are NOT enforced locally (as with Core Tools): any authLevel is open."]
        target = _sample_target(facts)
        if target:
            data = (
                f"@{facts.sample_event.as_posix()}"
                if facts.sample_event
                else json.dumps(FALLBACK_EVENT, separators=(",", ":"))
            )
            lines += [
                "",
                "Try it:",
                f"  curl -i -X POST -H 'Content-Type: application/json' --data {shlex.quote(data)} {target}",
            ]
    if facts.emulator_url:
        lines += [
            "",
            "See the resulting customer in the Commerce emulator:",
            f"  curl {facts.emulator_url}/_emulator/customers",
        ]
    lines += ["", "Ctrl-C stops the host and everything it started.", ""]
    return "\n".join(lines)


def _sample_target(facts: BannerFacts) -> str | None:
    posts = [f for f in facts.functions.http if "POST" in f.methods]
    preferred = [f for f in posts if f.route.text.strip("/") == SAMPLE_ROUTE]
    chosen = (preferred or [f for f in posts if all(s.literal is not None for s in f.route.segments)] or [None])[0]
    return f"{facts.http_base}/{chosen.route.text.strip('/')}" if chosen else None
