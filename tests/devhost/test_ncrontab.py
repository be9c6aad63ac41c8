from datetime import datetime

import pytest

from devhost.ncrontab import CronError, next_occurrence, parse


def test_every_five_minutes_on_the_minute():
    s = parse("0 */5 * * * *")
    assert s.seconds == {0}
    assert s.minutes == set(range(0, 60, 5))
    assert next_occurrence(s, datetime(2026, 1, 1, 10, 3, 17)) == datetime(2026, 1, 1, 10, 5, 0)
    # strictly after: an exact match moves on to the next one
    assert next_occurrence(s, datetime(2026, 1, 1, 10, 5, 0)) == datetime(2026, 1, 1, 10, 10, 0)


def test_every_second():
    s = parse("* * * * * *")
    assert next_occurrence(s, datetime(2026, 1, 1, 23, 59, 59, 500)) == datetime(2026, 1, 2, 0, 0, 0)


@pytest.mark.parametrize(
    "field,expected",
    [
        ("5", {5}),
        ("1-3", {1, 2, 3}),
        ("1,4,9", {1, 4, 9}),
        ("10-20/5", {10, 15, 20}),
        ("*/20", {0, 20, 40}),
        ("50/5", {50, 55}),
        ("1-2,30-31", {1, 2, 30, 31}),
    ],
)
def test_field_forms(field, expected):
    assert parse(f"0 {field} * * * *").minutes == expected


def test_names_and_sunday_as_seven():
    s = parse("0 0 9 * jan,Mar mon-fri")
    assert s.months == {1, 3}
    assert s.weekdays == {1, 2, 3, 4, 5}
    assert parse("0 0 0 * * 7").weekdays == {0}


def test_day_of_week_and_month_must_both_match():
    # 13th that is a Friday: NCrontab requires every field to match.
    s = parse("0 0 0 13 * 5")
    assert next_occurrence(s, datetime(2026, 1, 1)) == datetime(2026, 2, 13, 0, 0, 0)


def test_weekday_skips_weekend():
    s = parse("0 30 9 * * 1-5")
    # Saturday 2026-01-03 -> Monday 2026-01-05 09:30
    assert next_occurrence(s, datetime(2026, 1, 3, 12, 0)) == datetime(2026, 1, 5, 9, 30)


def test_month_and_year_rollover_and_leap_day():
    assert next_occurrence(parse("0 0 0 1 1 *"), datetime(2026, 6, 1)) == datetime(2027, 1, 1)
    assert next_occurrence(parse("0 0 12 29 2 *"), datetime(2026, 3, 1)) == datetime(2028, 2, 29, 12)


@pytest.mark.parametrize(
    "expression",
    [
        "*/5 * * * *",  # five fields: NCRONTAB in Functions needs six
        "60 * * * * *",
        "0 0 24 * * *",
        "0 0 0 0 * *",
        "0 0 0 * 13 *",
        "0 */0 * * * *",
        "0 5-1 * * * *",
        "0 a * * * *",
        "0 1,,2 * * * *",
    ],
)
def test_invalid_expressions(expression):
    with pytest.raises(CronError):
        parse(expression)


def test_impossible_date_has_no_occurrence():
    with pytest.raises(CronError):
        next_occurrence(parse("0 0 0 30 2 *"), datetime(2026, 1, 1))
