"""tools.duplicates on the Commerce emulator: emails of a file with several customers, ranked as the
processor ranks them, and nothing written."""

from __future__ import annotations

import csv
import io

import pytest

from tools import duplicates

pytestmark = pytest.mark.integration


def test_emails_with_several_customers_are_listed_for_the_data_steward(stack, tmp_path):
    stack.emulator.seed(
        [
            {"AccountNumber": "C-30", "RecordId": 30, "Email": "twice@example.com"},
            {"AccountNumber": "C-10", "RecordId": 10, "Email": "TWICE@example.com"},
            {
                "AccountNumber": "9f1c2d4e-0000-4000-8000-000000000001",
                "RecordId": 1,
                "IsAsyncCustomer": True,
                "Email": "twice@example.com",
            },
            {"AccountNumber": "C-40", "RecordId": 40, "Email": "once@example.com"},
            {"AccountNumber": "C-50", "RecordId": 50, "Email": "twice@example.com.au"},  # a prefix, not a match
        ]
    )
    export = tmp_path / "crm.csv"
    export.write_text(
        "Mail,Name\ntwice@example.com,A\nonce@example.com,B\nnew@example.com,C\nTwice@Example.com,D\nbroken,E\n",
        encoding="utf-8",
    )
    stack.emulator.reset_calls()
    out = io.StringIO()
    code = duplicates.main([str(export), "--map", "customer.email=Mail", "--no-progress"], out=out, err=io.StringIO())
    assert code == 0
    assert "5 record(s), 3 distinct valid email(s), 1 invalid; 1 email(s)" in out.getvalue()
    with (tmp_path / "crm.csv.duplicates.csv").open(newline="") as f:
        [row] = list(csv.DictReader(f))
    assert row["email"] == "twice@example.com" and row["customers"] == "3" and row["first_row"] == "1"
    # The processor's order: non-async first, then the lowest RecordId (the first is the one it updates).
    assert row["accounts"].split() == ["C-10", "C-30", "9f1c2d4e-0000-4000-8000-000000000001"]
    assert row["async"].split() == ["no", "no", "yes"]
    calls = stack.emulator.calls()
    assert calls["search"] == 3 and (calls["create"], calls["update"]) == (0, 0)
