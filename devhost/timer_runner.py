"""One timer trigger: sleep until the next NCRONTAB occurrence (UTC), then invoke, one run at a time."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from azure.functions.timer import TimerRequest

from devhost.bindings import TimerFunction
from devhost.invoke import FunctionExecutor, describe_exception
from devhost.ncrontab import next_occurrence

log = logging.getLogger("devhost.timer")
# Waking a little late is normal; only a run this much behind its schedule counts as past due.
PAST_DUE_AFTER = timedelta(seconds=1)


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class TimerRunner:
    def __init__(self, function: TimerFunction, executor: FunctionExecutor, clock: Callable[[], datetime] = utc_now):
        self.function = function
        self.executor = executor
        self.clock = clock
        self.invocations = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: datetime | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"devhost-timer-{self.function.name}", daemon=True)
        self._thread.start()

    def stop(self, grace: float = 3.0) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=grace)

    def _run(self) -> None:
        if self.function.run_on_startup:
            self._invoke(self.clock(), past_due=False)
        due = next_occurrence(self.function.schedule, self.clock())
        while not self._stop.is_set():
            while (remaining := (due - self.clock()).total_seconds()) > 0:
                if self._stop.wait(remaining):
                    return
            self._invoke(due, past_due=self.clock() - due > PAST_DUE_AFTER)
            # Like the host, occurrences missed while the function ran are not caught up one by one.
            due = next_occurrence(self.function.schedule, max(due, self.clock()))

    def _invoke(self, scheduled: datetime, *, past_due: bool) -> None:
        following = next_occurrence(self.function.schedule, scheduled)
        request = TimerRequest(
            past_due=past_due,
            schedule_status={
                "Last": (self._last or scheduled).isoformat(),
                "Next": following.isoformat(),
                "LastUpdated": scheduled.isoformat(),
            },
            schedule={"AdjustForDST": True},
        )
        started = time.monotonic()
        try:
            self.function.invoker(request, self.executor)
        except Exception as error:  # noqa: BLE001 - as the Functions host: a failed run is logged, the next runs
            log.error(
                "Executed 'Functions.%s' (Failed, Duration=%dms): %s",
                self.function.name,
                (time.monotonic() - started) * 1000,
                describe_exception(error),
            )
        else:
            log.info(
                "Executed 'Functions.%s' (Succeeded, Reason='Timer fired at %s', PastDue=%s, Duration=%dms)",
                self.function.name,
                scheduled.isoformat(),
                past_due,
                (time.monotonic() - started) * 1000,
            )
        finally:
            self.invocations += 1
            self._last = scheduled
