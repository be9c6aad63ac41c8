"""Every Bicep file parses, the parameters file matches the template, modules are pinned, every
resource names its API version."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from lark.exceptions import LarkError  # pycep-parser's parser

from tests.support import bicep_model as m

BICEP_FILES = m.bicep_files()
PARAM_FILES = m.bicepparam_files()
# Resources each template declares today (``existing`` references included): a parser change that
# loses them fails the per-resource checks instead of leaving them nothing to check.
RESOURCE_COUNTS = {"main.bicep": 4, "alerts.bicep": 3, "rbac.bicep": 15, "workbook.bicep": 2}


def test_infra_holds_the_expected_files():
    names = {p.relative_to(m.INFRA).as_posix() for p in BICEP_FILES + PARAM_FILES}
    assert {"main.bicep", "main.bicepparam", "app/rbac.bicep", "app/alerts.bicep"} <= names


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: p.name)
def test_bicep_file_parses(path: Path):
    tree = m.parse_bicep(path)
    assert tree.get("resources") or tree.get("modules")


@pytest.mark.parametrize("path", PARAM_FILES, ids=lambda p: p.name)
def test_bicepparam_file_parses_and_targets_an_existing_template(path: Path):
    params = m.parse_bicepparam(path)
    assert (path.parent / params.using).is_file()
    assert params.params


def test_a_syntax_error_is_reported(tmp_path: Path):
    broken = tmp_path / "broken.bicep"
    broken.write_text("param name string\nresource x 'Microsoft.Storage/storageAccounts@2025-01-01' = {\n  name: \n")
    with pytest.raises(LarkError):
        m.parse_bicep(broken)
    bad_params = tmp_path / "broken.bicepparam"
    bad_params.write_text("using './main.bicep'\nparam name = = 'x'\n")
    with pytest.raises(LarkError):
        m.parse_bicepparam(bad_params)


def test_parameters_file_sets_only_declared_parameters_and_every_required_one():
    declared = m.parse_bicep(m.MAIN_BICEP)["parameters"]
    given = m.parse_bicepparam(m.MAIN_BICEPPARAM).params
    assert set(given) <= set(declared), f"unknown parameters: {set(given) - set(declared)}"
    required = {name for name, p in declared.items() if p.get("default") is None}
    assert required <= set(given), f"required parameters missing from main.bicepparam: {required - set(given)}"


def test_parameters_file_takes_secrets_from_the_environment_not_from_literals():
    declared = m.parse_bicep(m.MAIN_BICEP)["parameters"]
    given = m.parse_bicepparam(m.MAIN_BICEPPARAM).params
    secure = {n for n, p in declared.items() if any(d["type"] == "secure" for d in p["decorators"])}
    assert {"emailHashKey", "commerceClientSecret"} <= secure
    for name in secure & set(given):
        fn = given[name]["function"]
        assert fn["type"] == "readEnvironmentVariable", f"{name} must come from an environment variable"
        default = list(fn["parameters"].values())[1:]
        assert default in ([], [""]), f"{name} must not have a non-empty default in the parameters file"


def test_secure_parameters_have_no_default_value():
    declared = m.parse_bicep(m.MAIN_BICEP)["parameters"]
    checked = 0
    for name, p in declared.items():
        if any(d["type"] == "secure" for d in p["decorators"]):
            assert p.get("default") in (None, ""), name
            checked += 1
    assert checked >= 3  # commerceClientSecret, webhookSecrets, emailHashKey


def _modules():
    for path in BICEP_FILES:
        for name, module in m.parse_bicep(path).get("modules", {}).items():
            yield path, name, module


def test_registry_modules_are_azure_verified_modules_pinned_to_a_version():
    registry = [(p, n, mod) for p, n, mod in _modules() if mod["type"] != "local"]
    assert registry, "main.bicep should use Azure Verified Modules"
    for path, name, module in registry:
        detail = module["detail"]
        assert detail["full"].startswith("public:avm/res/"), f"{path.name}:{name} is not an AVM resource module"
        assert re.fullmatch(r"\d+\.\d+\.\d+", detail["tag"]), f"{path.name}:{name} is not pinned: {detail['tag']}"


def test_pinned_module_versions_are_the_reviewed_ones():
    # Parameter names of each module were checked against the main.bicep of exactly this version.
    # Changing a version means checking them again: update this table in the same change.
    reviewed = {
        "avm/res/managed-identity/user-assigned-identity": "0.6.0",
        "avm/res/storage/storage-account": "0.33.0",
        "avm/res/key-vault/vault": "0.14.0",
        "avm/res/operational-insights/workspace": "0.16.1",
        "avm/res/insights/component": "0.8.0",
        "avm/res/web/serverfarm": "0.7.0",
        "avm/res/web/site": "0.24.0",
    }
    used = {mod["detail"]["path"]: mod["detail"]["tag"] for _, _, mod in _modules() if mod["type"] != "local"}
    assert used == reviewed


def test_local_modules_exist():
    checked = 0
    for path, name, module in _modules():
        if module["type"] == "local":
            assert (path.parent / module["detail"]["path"]).is_file(), f"{path.name}:{name}"
            checked += 1
    assert checked >= 3  # rbac, alerts, workbook


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: p.name)
def test_every_resource_has_an_explicit_api_version(path: Path):
    resources = m.resources(m.parse_bicep(path))
    assert len(resources) >= RESOURCE_COUNTS.get(path.name, 1), f"{path.name}: resources missing from the parse"
    for name, resource in resources.items():
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}(-preview)?", resource.get("api_version") or ""), (
            f"{path.name}:{name} has no explicit API version"
        )
        assert not (resource.get("api_version") or "").endswith("-preview"), f"{path.name}:{name} uses a preview API"


def test_no_new_guid_or_utc_now_anywhere():
    # A value generated per deployment (e.g. a hash key from newGuid()) would change on every deploy.
    def walk(node):
        if isinstance(node, dict):
            if node.get("type") in ("new_guid", "utc_now"):
                yield node["type"]
            for v in node.values():
                yield from walk(v)
        elif isinstance(node, list):
            for v in node:
                yield from walk(v)

    assert len(BICEP_FILES) >= 4
    for path in BICEP_FILES:
        assert not list(walk(m.parse_bicep(path))), path.name
