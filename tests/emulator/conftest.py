"""Fixtures of the emulator tests: ``api`` is a Commerce client bound to the session's (reset) emulator."""

from __future__ import annotations

import pytest

from tests.support.emulator_client import CommerceApi


@pytest.fixture
def api(emulator):
    client = CommerceApi(emulator.base_url, emulator.token)
    yield client
    client.session.close()
