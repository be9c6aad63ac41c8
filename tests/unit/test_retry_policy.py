"""When a failed event is tried again: Retry-After, exponential backoff with jitter, deferral, age limit."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared.core.retry_policy import (
    DEFER_MAX_SECONDS,
    DEFER_MIN_SECONDS,
    MAX_VISIBILITY_SECONDS,
    defer_delay,
    expired,
    retry_delay,
)
from shared.core.settings import RetrySettings

SETTINGS = RetrySettings(base_delay=5, max_delay=900, max_age=86400)


class FixedRandom(random.Random):
    """random() always returns ``value``: the extremes of the jitter, exactly."""

    def __init__(self, value: float):
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


LOW, HIGH = FixedRandom(0.0), FixedRandom(0.999999)


@pytest.mark.parametrize("retry_after", [1, 3, 2.5, 30, 120, 899, 5000])
def test_retry_after_is_honoured_never_less_at_most_20_percent_more(retry_after):
    rng = random.Random(1)
    delays = [retry_delay(1, retry_after, SETTINGS, rng) for _ in range(300)]
    assert min(delays) >= retry_after
    assert max(delays) <= math.ceil(retry_after * 1.2)
    assert retry_delay(1, retry_after, SETTINGS, LOW) == math.ceil(retry_after)
    assert retry_delay(1, retry_after, SETTINGS, HIGH) == math.ceil(retry_after * (1 + 0.2 * 0.999999))


def test_retry_after_does_not_depend_on_the_attempt():
    assert retry_delay(1, 3, SETTINGS, LOW) == retry_delay(12, 3, SETTINGS, LOW) == 3


def test_retry_after_spreads_a_burst():
    rng = random.Random(2)
    assert len({retry_delay(1, 100, SETTINGS, rng) for _ in range(50)}) > 5


def test_a_retry_after_longer_than_the_backoff_cap_is_still_honoured():
    assert retry_delay(1, 1200, SETTINGS, LOW) == 1200
    assert 1200 <= retry_delay(1, 1200, SETTINGS, random.Random(5)) <= 1440


def test_a_retry_after_is_capped_only_by_the_queues_visibility_limit():
    week = 7 * 24 * 3600
    assert MAX_VISIBILITY_SECONDS == week
    assert retry_delay(1, week - 10, SETTINGS, LOW) == week - 10
    assert retry_delay(1, week - 10, SETTINGS, HIGH) == week
    assert retry_delay(1, 30 * 24 * 3600, SETTINGS, LOW) == week


@pytest.mark.parametrize("retry_after", [None, 0, 0.0, -3])
def test_without_a_usable_retry_after_backoff_applies(retry_after):
    # attempt 1: step = base = 5 s; equal jitter -> 2.5 .. 5 s, rounded up
    assert retry_delay(1, retry_after, SETTINGS, LOW) == 3
    assert retry_delay(1, retry_after, SETTINGS, HIGH) == 5


def test_backoff_grows_exponentially_then_caps():
    lows = [retry_delay(a, None, SETTINGS, LOW) for a in range(1, 13)]
    highs = [retry_delay(a, None, SETTINGS, HIGH) for a in range(1, 13)]
    # step = 5 * 2^(a-1): 5, 10, 20, 40, 80, 160, 320, 640, 900 (capped), 900, ...
    assert highs == [5, 10, 20, 40, 80, 160, 320, 640, 900, 900, 900, 900]
    assert lows == [3, 5, 10, 20, 40, 80, 160, 320, 450, 450, 450, 450]
    assert all(b >= a for a, b in zip(lows, lows[1:], strict=False))


def test_backoff_stays_within_the_jitter_band():
    rng = random.Random(3)
    for attempt in range(1, 15):
        step = min(5 * 2 ** (attempt - 1), 900)
        for _ in range(50):
            delay = retry_delay(attempt, None, SETTINGS, rng)
            assert math.ceil(step / 2) <= delay <= step


def test_a_huge_attempt_number_does_not_overflow():
    assert retry_delay(10_000, None, SETTINGS, HIGH) == 900


@pytest.mark.parametrize("attempt, retry_after", [(1, None), (5, None), (1, 0.2), (1, 7.1), (30, None)])
def test_delays_are_whole_seconds_of_at_least_one(attempt, retry_after):
    tiny = RetrySettings(base_delay=0.1, max_delay=900, max_age=60)
    for settings in (SETTINGS, tiny):
        delay = retry_delay(attempt, retry_after, settings, random.Random(attempt))
        assert isinstance(delay, int) and delay >= 1


def test_zero_attempt_is_treated_as_the_first():
    assert retry_delay(0, None, SETTINGS, HIGH) == retry_delay(1, None, SETTINGS, HIGH)


def test_defer_delay_is_1_to_5_seconds_and_spread():
    rng = random.Random(4)
    delays = [defer_delay(rng) for _ in range(500)]
    assert (DEFER_MIN_SECONDS, DEFER_MAX_SECONDS) == (1, 5)
    assert set(delays) == {1, 2, 3, 4, 5}
    assert all(isinstance(d, int) for d in delays)


def test_expired():
    ingested = datetime(2026, 11, 26, 10, tzinfo=UTC)
    settings = RetrySettings(base_delay=5, max_delay=900, max_age=3600)
    assert not expired(ingested, ingested, settings)
    assert not expired(ingested, ingested + timedelta(seconds=3600), settings)
    assert expired(ingested, ingested + timedelta(seconds=3600, microseconds=1), settings)
    assert expired(ingested, ingested + timedelta(days=2), SETTINGS)
    # an offset is just another way to write the same instant
    plus2 = ingested.astimezone(timezone(timedelta(hours=2)))
    assert not expired(plus2, ingested + timedelta(seconds=3599), settings)
