"""A minimal six-field NCRONTAB evaluator: ``sec min hour day month day-of-week``.

Each field accepts ``*``, ``*/n``, ``a``, ``a-b``, ``a-b/n``, ``a/n`` and comma lists of those; months and
days of the week also accept three-letter English names. As in NCrontab (the library the Functions
host uses) a time matches only when *every* field matches, day-of-month and day-of-week included.
Times are evaluated in UTC, the host's default (WEBSITE_TIME_ZONE is not reproduced).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

_MONTHS = {
    n: i
    for i, n in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1)
}
_DAYS = {n: i for i, n in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}

# (name, low, high, names)
_FIELDS = (
    ("second", 0, 59, {}),
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 0, 6, _DAYS),
)


class CronError(ValueError):
    pass


@dataclass(frozen=True)
class CronSchedule:
    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday

    def matches(self, t: datetime) -> bool:
        return (
            t.second in self.seconds
            and t.minute in self.minutes
            and t.hour in self.hours
            and t.day in self.days
            and t.month in self.months
            and _weekday(t) in self.weekdays
        )


def _weekday(t: datetime) -> int:
    return (t.weekday() + 1) % 7  # Python: Monday=0; cron: Sunday=0


def _value(text: str, low: int, high: int, names: dict[str, int], field: str) -> int:
    key = text.strip().lower()
    if key in names:
        return names[key]
    if not key.isdigit():
        raise CronError(f"{field}: {text!r} is not a number")
    value = int(key)
    if field == "day-of-week" and value == 7:  # 7 is Sunday too, as in most cron dialects
        value = 0
    if not low <= value <= high:
        raise CronError(f"{field}: {value} is outside {low}-{high}")
    return value


def _parse_field(text: str, low: int, high: int, names: dict[str, int], field: str) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise CronError(f"{field}: empty list element in {text!r}")
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"{field}: bad step in {part!r}")
            step = int(step_text)
        if base == "*":
            start, end = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            start, end = _value(a, low, high, names, field), _value(b, low, high, names, field)
            if field == "day-of-week" and b.strip() == "7":
                end = 6  # "a-7": through Sunday, which 0 already covers when a is 0
                values.add(0)
            if start > end:
                raise CronError(f"{field}: range {part!r} runs backwards")
        else:
            start = _value(base, low, high, names, field)
            end = high if step_text else start  # "a/n": from a to the top, every n
        values.update(range(start, end + 1, step))
    return frozenset(values)


def parse(expression: str) -> CronSchedule:
    fields = expression.split()
    if len(fields) != 6:
        raise CronError(
            f"NCRONTAB needs six fields (sec min hour day month day-of-week), got {len(fields)} in {expression!r}"
        )
    parsed = [
        _parse_field(text, low, high, names, name)
        for text, (name, low, high, names) in zip(fields, _FIELDS, strict=False)
    ]
    return CronSchedule(expression, *parsed)


def next_occurrence(schedule: CronSchedule, after: datetime, *, horizon_years: int = 5) -> datetime:
    """First time strictly after ``after`` (to the second) that matches ``schedule``."""
    t = after.replace(microsecond=0) + timedelta(seconds=1)
    limit = (
        t.replace(year=t.year + horizon_years)
        if not (t.month == 2 and t.day == 29)
        else t + timedelta(days=365 * horizon_years)
    )
    while t < limit:
        # Coarse-to-fine: jump whole months, days, hours and minutes that cannot match.
        if t.month not in schedule.months:
            t = _next_month(t)
            continue
        if t.day not in schedule.days or _weekday(t) not in schedule.weekdays:
            t = (t + timedelta(days=1)).replace(hour=0, minute=0, second=0)
            continue
        if t.hour not in schedule.hours:
            t = (t + timedelta(hours=1)).replace(minute=0, second=0)
            continue
        if t.minute not in schedule.minutes:
            t = (t + timedelta(minutes=1)).replace(second=0)
            continue
        if t.second not in schedule.seconds:
            t += timedelta(seconds=1)
            continue
        return t
    raise CronError(f"{schedule.expression!r} has no occurrence within {horizon_years} years")


def _next_month(t: datetime) -> datetime:
    year, month = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
    return t.replace(year=year, month=month, day=1, hour=0, minute=0, second=0)
