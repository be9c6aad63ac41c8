"""Fixtures of the Commerce client tests (their helpers are in tests.support.commerce_client_fakes)."""

from __future__ import annotations

import pytest

from tests.support.commerce_client_fakes import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
