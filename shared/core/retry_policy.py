"""When to try an event again: pure arithmetic over the failure, the attempt number and the settings.

A transiently failed event is not handed back to the host (that would spend one of its
``maxDequeueCount`` attempts and wait host.json's fixed ``visibilityTimeout``): the processor sends it
again with a visibility delay chosen here and completes the current message.
- Commerce's ``Retry-After`` is honoured when sent, in full (never less; a little more to spread a
  burst), up to the 7 days a queue message can stay invisible.
- Otherwise exponential backoff with "equal jitter": half the step fixed, half random, so that
  throttled workers do not come back in lockstep.
- An event queued longer ago than the maximum age is given up (dead-lettered with its last error).
Queue visibility delays are whole seconds, hence the rounding up.
"""

from __future__ import annotations

import math
import random
from datetime import datetime

from shared.core.settings import RetrySettings

MAX_VISIBILITY_SECONDS = 7 * 24 * 3600  # the queue service's limit
DEFER_MIN_SECONDS = 1  # another worker holds the email's lease: come back shortly,
DEFER_MAX_SECONDS = 5  # at a random moment so deferred events do not collide again


def retry_delay(attempt: int, retry_after: float | None, settings: RetrySettings, rng: random.Random) -> int:
    """Seconds until attempt ``attempt + 1`` of an event whose attempt ``attempt`` just failed."""
    if retry_after is not None and retry_after > 0:
        return max(1, min(math.ceil(retry_after * (1 + 0.2 * rng.random())), MAX_VISIBILITY_SECONDS))
    # Annotated: typeshed types int ** int as Any (a negative exponent gives a float); here it never is.
    step: float = min(settings.base_delay * 2 ** max(attempt - 1, 0), settings.max_delay)
    delay = step / 2 + rng.random() * step / 2
    return max(1, min(math.ceil(delay), math.ceil(settings.max_delay)))


def defer_delay(rng: random.Random) -> int:
    return rng.randint(DEFER_MIN_SECONDS, DEFER_MAX_SECONDS)


def expired(ingested_at: datetime, now: datetime, settings: RetrySettings) -> bool:
    return (now - ingested_at).total_seconds() > settings.max_age
