"""The operator commands against real services: preflight and replay listings."""

from __future__ import annotations

import io

import pytest

from tools import preflight

pytestmark = pytest.mark.integration


def run_preflight(stack, monkeypatch) -> tuple[int, str]:
    out = io.StringIO()
    code = preflight.main(["--credential", "managed-identity"], out=out)
    return code, out.getvalue()


def test_preflight_passes_on_a_working_deployment_and_creates_nothing(stack, monkeypatch):
    code, text = run_preflight(stack, monkeypatch)
    assert code == 0, text
    assert "FAIL" not in text
    assert text.count("PASS") >= 9
    assert f"PASS  table {stack.runtime.settings.ledger_table}" in text
    assert f"PASS  queue {stack.runtime.settings.backfill_queue}" in text
    assert stack.emulator.customers() == []
    assert stack.emulator.calls()["create"] == 0 and stack.emulator.calls()["search"] == 1


def test_preflight_names_the_fix_for_each_failure(stack, monkeypatch):
    stack.emulator.configure(token="rotated")
    monkeypatch.setenv("CUSTOMER_DEFAULT_CURRENCY", "XXY")
    monkeypatch.setenv("EVENTS_QUEUE_NAME", "missing-queue-for-preflight")
    code, text = run_preflight(stack, monkeypatch)
    assert code == 1
    assert "FAIL  commerce search" in text and "relying party" in text and "job 1110" in text
    assert "FAIL  default currency" in text
    assert "FAIL  queue missing-queue-for-preflight" in text and "does not exist" in text


def test_preflight_refuses_the_emulator_token_against_a_real_host(stack, monkeypatch):
    from shared.core.settings import load_settings
    from tools.preflight import run_checks

    env = {**stack.env, "COMMERCE_BASE_URL": "https://csu.example.com/Commerce"}
    checks = run_checks(load_settings(env), env, make_client=lambda *a, **k: _NoCalls())
    [mode] = [c for c in checks if c.name == "auth mode"]
    assert mode.ok is False and "emulator only" in mode.fix


class _NoCalls:
    def search_customers_by_email(self, email):
        return []
