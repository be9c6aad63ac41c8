"""``local.settings.json`` (or the committed sample) as environment values; real variables win."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

SETTINGS_FILE = "local.settings.json"
SAMPLE_FILE = "local.settings.sample.json"


def settings_path(root: Path) -> Path | None:
    for name in (SETTINGS_FILE, SAMPLE_FILE):
        if (root / name).is_file():
            return root / name
    return None


def read_settings(path: Path) -> tuple[dict[str, str], dict[str, object]]:
    """(Values, Host) sections of a local.settings file, values as strings."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    if raw.get("IsEncrypted"):
        raise ValueError(f"{path}: encrypted settings are not supported (IsEncrypted is true)")
    values = {str(k): "" if v is None else str(v) for k, v in (raw.get("Values") or {}).items()}
    return values, dict(raw.get("Host") or {})


def merged(file_values: Mapping[str, str], environ: Mapping[str, str]) -> dict[str, str]:
    """Pure: file values overlaid by the real environment, as Core Tools does."""
    return {**file_values, **environ}
