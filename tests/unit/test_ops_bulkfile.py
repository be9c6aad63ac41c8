"""Customer files for the operator tools: Shopify exports, JSON Lines, mapped CSVs, deterministic ids,
validation as ingest does it, and memory that does not grow with the file."""

from __future__ import annotations

import json
import tracemalloc
from datetime import UTC, datetime

import pytest

from shared.core.bulkfile import (
    FileFormatError,
    check,
    detect_format,
    event_id,
    file_digest,
    mapping_from_file,
    mapping_from_pairs,
    parse_as_of,
    read_records,
)
from shared.core.settings import load_settings
from tests.support.shopify_export import HEADER_LINE

AS_OF = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
NOW = datetime(2026, 12, 1, tzinfo=UTC)
SETTINGS = load_settings(json.loads(open("local.settings.sample.json").read())["Values"])
SHOPIFY = HEADER_LINE


def records(path, **kwargs):
    return list(read_records(path, as_of=AS_OF, digest=file_digest(path), **kwargs))


def checked(path, **kwargs):
    return [
        check(r, now=NOW, settings=SETTINGS.mapping, hash_key=SETTINGS.email_hash_key) for r in records(path, **kwargs)
    ]


def test_a_shopify_export_maps_to_the_contract(tmp_path):
    path = tmp_path / "customers_export.csv"
    path.write_text(
        SHOPIFY + '1,Ada,Lovelace,ADA@example.com,yes,Analytical Ltd,1 Main St,Apt 2,Ottawa,ON,CA,'
        "'K1A 0B1,'+16135550101,,no,12.00,3,\"a note, with a comma\",no,vip\n"
        "2,Bob,,bob@example.com,no,,,,,,,,,,no,0,0,,no,\n",
        encoding="utf-8",
    )
    assert detect_format(path) == "shopify"
    first, second = records(path)
    assert first.event["customer"] == {
        "email": "ADA@example.com",
        "firstName": "Ada",
        "lastName": "Lovelace",
        "isOptedInMarketing": True,
        "phone": "+16135550101",  # Phone empty: the default address's phone, its spreadsheet quote removed
        "address": {
            "name": "Analytical Ltd",
            "street": "1 Main St, Apt 2",
            "city": "Ottawa",
            "state": "ON",
            "country": "CA",
            "postalCode": "K1A 0B1",
        },
    }
    assert first.event["occurredAt"] == "2026-11-30T06:00:00+00:00" and first.event["source"] == "backfill"
    # Empty cells are absent (unchanged), never null: a backfill never clears what Commerce holds.
    assert second.event["customer"] == {"email": "bob@example.com", "firstName": "Bob", "isOptedInMarketing": False}
    ok = checked(path)
    assert all(c.ok for c in ok)
    assert ok[0].event.address.country == "CAN" and ok[0].event.email_match_key == "ada@example.com"


def test_event_ids_are_deterministic_per_file_content_and_row_and_order_rows_within_a_file(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text(SHOPIFY + "1,A,,a@example.com,no" + "," * 15 + "\n", encoding="utf-8")
    b.write_bytes(a.read_bytes())
    assert [r.event["eventId"] for r in records(a)] == [r.event["eventId"] for r in records(b)]
    digest = file_digest(a)
    assert records(a)[0].event["eventId"] == event_id(digest, 1)
    assert event_id(digest, 9) < event_id(digest, 10)  # a later row of the same email wins the tie
    b.write_text(SHOPIFY + "1,B,,a@example.com,no" + "," * 15 + "\n", encoding="utf-8")
    assert records(a)[0].event["eventId"] != records(b)[0].event["eventId"]


def test_rejected_records_name_the_column_the_reason_and_never_the_value(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text(
        SHOPIFY + "1,Ada,,not-an-email,maybe,,,,,,QQ,,,,no,,,,,\n\n" + ",,,,,,,,,,,,,,,,,,,\n", encoding="utf-8"
    )
    [bad, blank, empty] = checked(path)
    fields = {f for f, _, _ in bad.problems}
    assert {"Email", "Accepts Email Marketing"} <= fields
    assert all("not-an-email" not in m and "maybe" not in m for _, _, m in bad.problems)
    # Empty lines are records too, refused as such: nothing is dropped silently.
    assert [(r.row, r.problems[0][1]) for r in (blank, empty)] == [(2, "unreadable"), (3, "unreadable")]


def test_json_lines_get_the_backfill_id_and_time(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text(
        json.dumps(
            {
                "eventId": "theirs",
                "occurredAt": "2030-01-01T00:00:00Z",
                "customer": {"email": "a@example.com", "lastName": "Ng"},
            }
        )
        + "\n\nnot json\n[1]\n",
        encoding="utf-8",
    )
    one, two, three = records(path)
    assert one.event["eventId"] == event_id(file_digest(path), 1)
    assert one.event["occurredAt"] == "2026-11-30T06:00:00+00:00"
    assert (two.row, two.event, three.row, three.event) == (2, None, 3, None)
    assert checked(path)[0].ok


def test_any_csv_with_a_column_mapping(tmp_path):
    path = tmp_path / "crm.csv"
    path.write_text("E-mail,Given,Opt in,Town\nz@example.com,Zoe,Y,Oslo\n", encoding="utf-8")
    with pytest.raises(FileFormatError, match="column mapping"):
        records(path)
    by_flags = mapping_from_pairs(
        ["customer.email=E-mail", "customer.firstName=Given", "customer.isOptedInMarketing=Opt in"]
    )
    assert records(path, mapping=by_flags)[0].event["customer"] == {
        "email": "z@example.com",
        "firstName": "Zoe",
        "isOptedInMarketing": True,
    }
    by_file = mapping_from_file(
        json.dumps(
            {
                "signature": {"scheme": "shopify"},
                "fields": {
                    "eventId": "id",
                    "customer.email": "E-mail",
                    "customer.address.city": "Town",
                    "customer.isOptedInMarketing": {"path": "Opt in", "map": {"y": False}},
                },
                "defaults": {"customer.address.country": "NO", "eventType": "customer.updated"},
            }
        )
    )
    assert records(path, mapping=by_file)[0].event["customer"] == {
        "email": "z@example.com",
        "isOptedInMarketing": False,
        "address": {"city": "Oslo", "country": "NO"},
    }
    with pytest.raises(FileFormatError, match="not a contract field"):
        mapping_from_pairs(["customer.shoeSize=Size", "customer.email=E-mail"])
    with pytest.raises(FileFormatError, match="header"):
        records(path, mapping=mapping_from_pairs(["customer.email=Mail"]))


def test_as_of_without_an_offset_is_utc():
    assert parse_as_of("2026-11-30T06:00:00") == AS_OF
    assert parse_as_of("2026-11-30T07:00:00+01:00") == AS_OF
    assert parse_as_of("2026-11-30T06:00:00Z") == AS_OF


def test_memory_does_not_grow_with_the_file(tmp_path):
    line = "1,Ada,Lovelace,a{}@example.com,yes,,1 Main St,,Ottawa,ON,CA,K1A 0B1,,+16135550101,no,0,0,,no,\n"

    def peak(rows: int) -> int:
        path = tmp_path / f"m{rows}.csv"
        with path.open("w", encoding="utf-8") as f:
            f.write(SHOPIFY)
            for i in range(rows):
                f.write(line.format(i))
        digest = file_digest(path)
        tracemalloc.start()
        for record in read_records(path, as_of=AS_OF, digest=digest):
            check(record, now=NOW, settings=SETTINGS.mapping, hash_key=SETTINGS.email_hash_key)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    small, large = peak(200), peak(4000)
    assert large < small * 1.5 + 200_000, (small, large)
