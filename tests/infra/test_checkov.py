"""Checkov's Azure policies over infra/, when Checkov is available.

Checkov 3.3.30 pins pycep-parser==0.5.1 and packaging<24, which conflict with this project's pins
(pycep-parser 0.7.1, pytest's packaging>=24), so it is not installed into .venv. Install it into a
separate virtualenv and point CHECKOV at it (or put `checkov` on PATH):

    python3 -m venv /opt/checkov-venv && /opt/checkov-venv/bin/pip install checkov==3.3.30
    CHECKOV=/opt/checkov-venv/bin/checkov .venv/bin/python -m pytest tests/infra

Suppressions are `// checkov:skip=<id>: <reason>` comments inside the resource they apply to.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from tests.support import bicep_model as m


def checkov_command() -> str | None:
    explicit = os.environ.get("CHECKOV")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    return shutil.which("checkov")


@pytest.mark.integration
def test_checkov_bicep_policies_pass():
    cmd = checkov_command()
    if cmd is None:
        pytest.skip("checkov not installed (see this module's docstring: it needs its own virtualenv)")
    result = subprocess.run(
        [cmd, "--framework", "bicep", "-d", str(m.INFRA), "--skip-download", "--output", "json", "--quiet"],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"},
    )
    report = json.loads(result.stdout)
    report = report[0] if isinstance(report, list) else report
    summary = report["summary"]
    failed = [f"{r['check_id']} {r['resource']} ({r['file_path']})" for r in report["results"]["failed_checks"]]
    assert summary["parsing_errors"] == 0, report["results"].get("parsing_errors")
    assert failed == []
    assert summary["resource_count"] > 0
