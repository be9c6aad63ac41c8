"""Fixtures of the integration tests: ``stack`` (and ``stack_factory`` for several, or other settings)
is the whole product on real parts, stopped after the test (see tests.support.stack)."""

from __future__ import annotations

import logging

import pytest

import function_app
from tests.support.stack import PRODUCT_LOGGERS, Stack, make_stack


@pytest.fixture
def stack_factory(azurite, emulator, tmp_path, monkeypatch):
    made: list[Stack] = []

    def factory(**kwargs) -> Stack:
        s = make_stack(azurite, emulator, tmp_path, monkeypatch, **kwargs)
        made.append(s)
        return s

    yield factory
    for s in made:
        s.host.stop()
        for name in PRODUCT_LOGGERS:
            logging.getLogger(name).removeHandler(s.telemetry)
    function_app.use_runtime(None)


@pytest.fixture
def stack(stack_factory) -> Stack:
    return stack_factory()
