"""Fixtures shared by every test folder: real Azurite and a real Commerce emulator process."""

from __future__ import annotations

import pytest

from devhost.azurite import start_azurite


@pytest.fixture(scope="session")
def azurite():
    az = start_azurite()
    yield az
    az.stop()


@pytest.fixture(scope="session")
def emulator_process():
    from commerce_emulator.testing import start_emulator_process

    handle = start_emulator_process()
    yield handle
    handle.stop()


@pytest.fixture
def emulator(emulator_process):
    """The session's emulator, reset to its defaults (no customers, no faults, zeroed counters)."""
    emulator_process.reset()
    yield emulator_process
    emulator_process.reset()
