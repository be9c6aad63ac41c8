"""Timer triggers fire on their NCRONTAB schedule with a TimerRequest-like argument."""

import time
from datetime import datetime, timedelta

import pytest

from devhost.bindings import discover
from devhost.invoke import FunctionExecutor
from devhost.timer_runner import TimerRunner, utc_now
from tests.support.fixture_app import app


def wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


@pytest.mark.integration
def test_every_second_timer_fires_repeatedly(make_host, recorder):
    make_host(http=False, queues=False, env={"TICK_SCHEDULE": "* * * * * *"})
    wait_for(lambda: len(recorder.ticks) >= 2, timeout=5)
    first, second = recorder.ticks[:2]
    assert first["past_due"] is False and second["past_due"] is False
    assert second["at"] - first["at"] >= 0.9  # one occurrence per second, not a busy loop


def test_late_run_is_past_due(recorder):
    (timer,) = discover(app, {"WORK_QUEUE": "unused", "TICK_SCHEDULE": "* * * * * *"}).timers
    calls = []

    def clock() -> datetime:
        # The first reading schedules the next second; from then on time has jumped ten seconds ahead,
        # so the run starts well after its occurrence.
        calls.append(1)
        return utc_now() + (timedelta(0) if len(calls) == 1 else timedelta(seconds=10))

    runner = TimerRunner(timer, FunctionExecutor(), clock=clock)
    runner.start()
    try:
        wait_for(lambda: recorder.ticks, timeout=5)
    finally:
        runner.stop()
    assert recorder.ticks[0]["past_due"] is True
