"""No secret in the files that describe deployments, and a publish package without test/dev files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from shared.core.settings import APP_SETTINGS
from tests.support import bicep_model as m
from tests.support.bicep_model import ROLES
from tests.support.funcignore import ignore_patterns, ignored

REPO = m.REPO
SCANNED_ROOTS = [REPO / "infra", REPO / "samples"]
SCANNED_FILES = [REPO / "local.settings.sample.json"]

# Values that look like secrets but are not, each with the reason.
ALLOWED_LITERALS: dict[str, str] = {
    "UseDevelopmentStorage=true": "Azurite's well-known development storage shortcut",
    **{guid: f"built-in role definition id: {name}" for guid, name in ROLES.items()},
}
ALLOWED_PREFIXES = ("local-dev",)  # placeholders for local runs only (local.settings.sample.json)

# Azurite's published development account key: public, but still never wanted in these files.
SECRET_PATTERNS: dict[str, re.Pattern[str]] = {
    "storage account key": re.compile(r"AccountKey\s*=\s*[^;\"'\s]+", re.I),
    "shared access signature": re.compile(r"(SharedAccessSignature|[?&]sig=)[A-Za-z0-9%+/=]{10,}", re.I),
    "connection string with a key": re.compile(r"(SharedAccessKey|InstrumentationKey)\s*=\s*[0-9a-zA-Z+/=-]{8,}", re.I),
    "Standard Webhooks secret": re.compile(r"whsec_[A-Za-z0-9+/=]{8,}"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "Entra client secret": re.compile(r"\b[A-Za-z0-9_\-.]{3}\dQ~[A-Za-z0-9_~.\-]{31,34}\b|\b[A-Za-z0-9_\-.]{3}8Q~"),
    "GUID (client secret, key or tenant-specific id)": re.compile(
        r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
    ),
    "function key in a URL": re.compile(r"[?&]code=[A-Za-z0-9_\-=%]{20,}"),
    "JWT": re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),
}
BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{32,}={0,2}")


def looks_like_base64_key(token: str) -> bool:
    """Long, mixed-case, with digits: a key, not an identifier or a path."""
    return (
        len(token) >= 32
        and sum(c.isdigit() for c in token) >= 4
        and sum(c.isupper() for c in token) >= 4
        and sum(c.islower() for c in token) >= 4
    )


def allowed(value: str) -> bool:
    return value in ALLOWED_LITERALS or value.startswith(ALLOWED_PREFIXES)


def findings(text: str) -> list[str]:
    found = []
    for kind, pattern in SECRET_PATTERNS.items():
        for match in pattern.finditer(text):
            if not allowed(match.group(0)):
                found.append(f"{kind}: {match.group(0)[:12]}...")
    for match in BASE64_RUN.finditer(text):
        if looks_like_base64_key(match.group(0)) and not allowed(match.group(0)):
            found.append(f"long base64-like value: {match.group(0)[:12]}...")
    return found


def scanned_files() -> list[Path]:
    files = [f for root in SCANNED_ROOTS if root.exists() for f in root.rglob("*") if f.is_file()]
    return sorted(files + [f for f in SCANNED_FILES if f.exists()])


@pytest.mark.parametrize(
    "leak",
    [
        "DefaultEndpointsProtocol=https;AccountName=x;AccountKey=abc123==;EndpointSuffix=core.windows.net",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "abc8Q~Zx0yP2qKJf.Lm3N4oP5qR6sT7uV8wX9yZ0a",
        "client secret 7f1d2c3b-4a5e-6f70-8192-a3b4c5d6e7f8",
        "key: q83vEjqP2dWw8aG5Xc3H0ZlrJ9TbYvK1nQ7mFo2RsU4=",
        "https://func.azurewebsites.net/api/customers/events?code=AbCdEfGhIjKlMnOpQrStUvWx12==",
        "-----BEGIN RSA PRIVATE KEY-----",
        "InstrumentationKey=00000000-0000-0000-0000-000000000000",
    ],
)
def test_scanner_finds_planted_secrets(leak):
    assert findings(f"value = '{leak}'\n")


@pytest.mark.parametrize(
    "harmless",
    [
        "Microsoft.Storage/storageAccounts/queueServices/queues@2025-01-01",
        "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
        "local-dev-only-email-hash-key",
        "UseDevelopmentStorage=true",
        "@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/email-hash-key/)",
    ],
)
def test_scanner_passes_known_harmless_values(harmless):
    assert findings(harmless) == []


def test_scanned_files_exist():
    names = {f.relative_to(REPO).as_posix() for f in scanned_files()}
    assert {"infra/main.bicep", "infra/main.bicepparam", "local.settings.sample.json"} <= names


@pytest.mark.parametrize("path", scanned_files(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_no_secret_looking_literal(path: Path):
    assert findings(path.read_text(encoding="utf-8", errors="replace")) == []


def _secret_texts(value: str) -> list[str]:
    """A secret setting's secrets: the value, or each string of a JSON object of secrets
    (WEBHOOK_SECRETS: {"<source>": ["<secret>", ...]})."""
    if value.startswith("{"):
        parsed = json.loads(value)
        return [v for values in parsed.values() for v in ([values] if isinstance(values, str) else values)]
    return [value]


def test_local_sample_secrets_are_empty_or_local_dev_placeholders():
    values = json.loads((REPO / "local.settings.sample.json").read_text())["Values"]
    checked = 0
    for s in APP_SETTINGS:
        if s.secret and s.name in values:
            for secret in _secret_texts(values[s.name]):
                assert secret == "" or secret.startswith(ALLOWED_PREFIXES), s.name
            checked += 1
    assert checked >= 4  # the secret settings the sample holds


# --- .funcignore ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        ".git/config",
        ".gitignore",
        ".venv/bin/python",
        "node_modules/azurite/package.json",
        "tests/infra/x.py",
        "bench/__main__.py",
        "commerce_emulator/app.py",
        "devhost/cli.py",
        "docs/deploy.md",
        "samples/event.json",
        "infra/main.bicep",
        "local.settings.json",
        "__azurite_db_queue__.json",
        "__blobstorage__/x",
        "__queuestorage__/x",
        ".pytest_cache/v",
        ".hypothesis/x",
        "Makefile",
        "package.json",
        "package-lock.json",
        ".ci/run",
        "requirements-dev.txt",
        "requirements-checkov.txt",
        "tools/replay.py",
        "tools/preflight.py",
    ],
)
def test_funcignore_excludes_dev_and_test_files(path):
    assert ignored(path, ignore_patterns()), path


@pytest.mark.parametrize(
    "path",
    [
        "function_app.py",
        "host.json",
        "requirements.txt",
        "shared/core/settings.py",
        "shared/core/telemetry_names.py",
        "shared/adapters/commerce/client.py",
        "shared/core/logcontext.py",
    ],
)
def test_funcignore_keeps_what_the_app_needs(path):
    assert not ignored(path, ignore_patterns()), path
