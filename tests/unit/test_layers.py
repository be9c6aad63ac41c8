"""The import rules of pyproject.toml's [tool.importlinter] hold: shared/'s layers, and what the
deployed app, the emulator, the tools and the bench may import."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_layer_contracts_are_declared():
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layers = [c for c in contracts if c["type"] == "layers"]
    assert len(contracts) >= 5 and len(layers) == 1
    assert layers[0]["layers"] == ["runtime", "usecases | adapters", "core"]
    for name in ("runtime.py", "usecases", "adapters", "core"):  # the layers exist as named
        assert (ROOT / "shared" / name).exists(), name


def test_every_import_contract_is_kept():
    # In a process of its own: import-linter reconfigures logging, which would break the log capture of
    # the tests that run after it in this one.
    run = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "BROKEN" not in run.stdout and run.stdout.count("KEPT") >= 5
