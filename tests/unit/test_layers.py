"""The import rules of pyproject.toml's [tool.importlinter] hold: shared/'s layers, and what the
deployed app, the emulator, the tools and the bench may import."""

from __future__ import annotations

import tomllib
from pathlib import Path

from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[2]


def test_the_layer_contracts_are_declared():
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layers = [c for c in contracts if c["type"] == "layers"]
    assert len(contracts) >= 5 and len(layers) == 1
    assert layers[0]["layers"] == ["runtime", "usecases | adapters", "core"]
    for name in ("runtime.py", "usecases", "adapters", "core"):  # the layers exist as named
        assert (ROOT / "shared" / name).exists(), name


def test_every_import_contract_is_kept(monkeypatch):
    monkeypatch.chdir(ROOT)
    assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True) == 0
