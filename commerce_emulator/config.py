"""The emulator's switches (config) and its fault plan (faults): defaults, validation and merging.

Pure functions over plain dicts: the server holds the current values and swaps them whole under its lock.
"""

from __future__ import annotations

import copy
from typing import Any

from .schema import CUSTOMER, type_ok
from .search import MATCH_MODES

DEFAULT_TOKEN = "local-dev-emulator-token"  # the value in local.settings.sample.json
DEFAULT_PORT = 7075

DEFAULT_CONFIG: dict[str, Any] = {
    "envelope": "odata",
    "require_oun": True,
    "require_auth": True,
    "token": DEFAULT_TOKEN,
    "strict_properties": True,
    "required_on_create": ["Email"],
    "create_defaults": {"CustomerTypeValue": 1, "CustomerGroup": "30", "CurrencyCode": "USD", "Language": "en-us"},
    "async_mode": False,
    "create_status": 201,  # the real status of a create is unknown (200 or 201)
    "max_top": 1000,
    # SearchByFields: "word_prefix" (full-text phrase, each word a prefix: ann@x.com finds anna@x.com, as the
    # doc says: docs/commerce-api.md, "Search: SearchByFields") or "email_prefix" (the whole address as one prefix).
    "search_match": "word_prefix",
    # Validation errors quote the submitted values (email raw and encoded, names, phone, address) in their
    # message text, as a careless real server might: for tests that nothing Commerce echoes is logged or kept.
    "echo_input_in_errors": False,
}

OPERATIONS = ("search", "get", "create", "update")
RATE_FAULTS = ("throttle", "server_error", "unavailable", "hang", "drop", "commit_then_fail")
SCRIPT_FAULTS = (
    "throttle",
    "throttle_no_retry_after",
    "throttle_http_date",
    "server_error",
    "unavailable",
    "hang",
    "drop",
    "commit_then_fail",
    "commit_then_hang",
    "not_found",
)

DEFAULT_FAULTS: dict[str, Any] = {
    "seed": None,
    "latency_ms": 0,
    "latency_jitter_ms": 0,
    "operations": list(OPERATIONS),
    "rates": {name: 0.0 for name in RATE_FAULTS},
    "throttle_retry_after_ratio": 1.0,
    "retry_after_seconds": 1,
    "hang_seconds": 30,
    "script": [],
}


class ConfigError(ValueError):
    """A config or faults document the emulator cannot use; the message names the key."""


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_config_value(key: str, value: Any) -> None:
    ok = {
        "envelope": lambda v: v in ("odata", "flat"),
        "require_oun": lambda v: isinstance(v, bool),
        "require_auth": lambda v: isinstance(v, bool),
        "token": lambda v: isinstance(v, str) and v != "",
        "strict_properties": lambda v: isinstance(v, bool),
        "required_on_create": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
        "create_defaults": lambda v: (
            isinstance(v, dict) and all(k in CUSTOMER and type_ok(CUSTOMER[k], d) for k, d in v.items())
        ),
        "async_mode": lambda v: isinstance(v, bool),
        "create_status": lambda v: v in (200, 201),
        "max_top": lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0,
        "search_match": lambda v: v in MATCH_MODES,
        "echo_input_in_errors": lambda v: isinstance(v, bool),
    }.get(key)
    if ok is None:
        raise ConfigError(f"unknown config key '{key}' (known: {', '.join(DEFAULT_CONFIG)})")
    if not ok(value):
        raise ConfigError(f"invalid value for config key '{key}'")


def merge_config(current: dict[str, Any], patch: Any) -> dict[str, Any]:
    """``current`` with ``patch`` merged in (JSON merge patch: nested create_defaults merge, null removes)."""
    if not isinstance(patch, dict):
        raise ConfigError("config must be a JSON object")
    merged = copy.deepcopy(current)
    for key, value in patch.items():
        if key == "create_defaults" and isinstance(value, dict):
            defaults = merged["create_defaults"]
            for name, default in value.items():
                if default is None:
                    defaults.pop(name, None)
                else:
                    defaults[name] = default
            value = defaults
        _check_config_value(key, value)
        merged[key] = value
    return merged


def parse_faults(body: Any) -> dict[str, Any]:
    """A complete faults document from ``body`` (PUT semantics: what is not given is back at its default)."""
    if not isinstance(body, dict):
        raise ConfigError("faults must be a JSON object")
    faults = copy.deepcopy(DEFAULT_FAULTS)
    for key, value in body.items():
        if key not in DEFAULT_FAULTS:
            raise ConfigError(f"unknown faults key '{key}' (known: {', '.join(DEFAULT_FAULTS)})")
        if key == "rates":
            if not isinstance(value, dict):
                raise ConfigError("'rates' must be an object")
            for name, rate in value.items():
                if name not in RATE_FAULTS:
                    raise ConfigError(f"unknown rate '{name}' (known: {', '.join(RATE_FAULTS)})")
                if not _is_number(rate) or not 0 <= rate <= 1:
                    raise ConfigError(f"rate '{name}' must be a probability between 0 and 1")
                faults["rates"][name] = float(rate)
        elif key == "script":
            faults["script"] = [_script_entry(entry) for entry in _list(key, value)]
        elif key == "operations":
            ops = _list(key, value)
            if any(op not in OPERATIONS for op in ops):
                raise ConfigError(f"'operations' items must be among {', '.join(OPERATIONS)}")
            faults["operations"] = list(ops)
        elif key == "seed":
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise ConfigError("'seed' must be an integer or null")
            faults["seed"] = value
        elif key == "throttle_retry_after_ratio":
            if not _is_number(value) or not 0 <= value <= 1:
                raise ConfigError("'throttle_retry_after_ratio' must be between 0 and 1")
            faults[key] = float(value)
        else:  # latency_ms, latency_jitter_ms, retry_after_seconds, hang_seconds
            if not _is_number(value) or value < 0:
                raise ConfigError(f"'{key}' must be a non-negative number")
            faults[key] = value
    return faults


def _list(key: str, value: Any) -> list:
    if not isinstance(value, list):
        raise ConfigError(f"'{key}' must be a list")
    return value


def _script_entry(entry: Any) -> dict[str, str]:
    if not isinstance(entry, dict) or set(entry) - {"operation", "fault"}:
        raise ConfigError("a script entry is {\"operation\": ..., \"fault\": ...}")
    operation, fault = entry.get("operation", "any"), entry.get("fault")
    if operation not in OPERATIONS + ("any",):
        raise ConfigError(f"script operation must be one of {', '.join(OPERATIONS)}, any")
    if fault not in SCRIPT_FAULTS:
        raise ConfigError(f"script fault must be one of {', '.join(SCRIPT_FAULTS)}")
    return {"operation": operation, "fault": fault}
