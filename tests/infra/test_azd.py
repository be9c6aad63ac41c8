"""azure.yaml (what `azd up` reads) against the Bicep it provisions and the folder it deploys."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.support import bicep_model as m

AZURE_YAML = m.REPO / "azure.yaml"
# Variables azd sets in every environment itself (azd env new / azd provision).
AZD_VARIABLES = {
    "AZURE_ENV_NAME",
    "AZURE_LOCATION",
    "AZURE_SUBSCRIPTION_ID",
    "AZURE_RESOURCE_GROUP",
    "AZURE_PRINCIPAL_ID",
    "AZURE_TENANT_ID",
}
README = m.REPO / "README.md"


@pytest.fixture(scope="module")
def azd() -> dict:
    return yaml.safe_load(AZURE_YAML.read_text(encoding="utf-8"))


def _references(value) -> set[str]:
    if isinstance(value, dict):
        return set().union(*(_references(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_references(v) for v in value)) if value else set()
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", value)) if isinstance(value, str) else set()


def _environment_reads(expression) -> list[tuple[str, bool]]:
    """(variable, has a default) for every readEnvironmentVariable in a bicepparam value."""
    found = []
    if isinstance(expression, dict):
        function = expression.get("function")
        if isinstance(function, dict) and function.get("type") == "readEnvironmentVariable":
            args = list(function["parameters"].values())
            found.append((args[0], len(args) > 1))
        for value in expression.values():
            found += _environment_reads(value)
    return found


def test_azure_yaml_names_the_app_as_azd_requires(azd):
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", azd["name"])


def test_infra_is_the_bicep_and_its_parameters_file(azd):
    infra = azd["infra"]
    assert infra.get("provider", "bicep") == "bicep"
    folder = m.REPO / infra.get("path", "infra")
    module = infra.get("module", "main")
    assert (folder / f"{module}.bicep").resolve() == m.MAIN_BICEP.resolve()
    # azd prefers <module>.bicepparam when it exists; a main.parameters.json beside it would be ignored
    assert (folder / f"{module}.bicepparam").resolve() == m.MAIN_BICEPPARAM.resolve()
    assert not (folder / f"{module}.parameters.json").exists()
    assert m.parse_bicepparam(m.MAIN_BICEPPARAM).using == f"./{module}.bicep"


def test_the_template_is_resource_group_scoped(azd):
    # azd then deploys into AZURE_RESOURCE_GROUP, as `az deployment group create -g` does
    assert m.parse_bicep(m.MAIN_BICEP)["globals"]["scope"]["value"] == "resourceGroup"


def test_the_one_service_is_this_folder_deployed_to_the_function_app(azd):
    [(name, service)] = azd["services"].items()
    assert (service["host"], service["language"]) == ("function", "python")
    project = m.REPO / service["project"]
    for needed in ("function_app.py", "host.json", "requirements.txt", ".funcignore"):
        assert (project / needed).is_file(), needed  # azd packages like Core Tools: .funcignore applies
    assert service.get("remoteBuild", True) is True  # requirements.txt is built on the runtime's Python
    ignored = (project / ".funcignore").read_text(encoding="utf-8").split()
    assert ".azure" in ignored  # azd's environment files (values, secrets) are never deployed
    outputs = m.parse_bicep(m.MAIN_BICEP)["outputs"]
    [reference] = _references(service["resourceName"])
    assert service["resourceName"] == "${" + reference + "}"
    assert reference in outputs, f"resourceName refers to {reference}, not an output of main.bicep"
    value = outputs[reference]["value"]["operator"]["operands"]
    assert value["operand_1"] == "functionApp" and value["operand_2"]["operator"]["operands"]["operand_2"] == "name"


def test_every_variable_azure_yaml_uses_is_an_output_or_set_by_azd(azd):
    outputs = set(m.parse_bicep(m.MAIN_BICEP)["outputs"])
    unknown = _references(azd) - outputs - AZD_VARIABLES
    assert not unknown, f"azure.yaml uses {unknown}: neither a Bicep output nor set by azd"


def test_provisioning_needs_no_prompt_and_the_readme_names_what_to_set():
    # azd does not prompt for parameters of a .bicepparam: every required parameter must be given there
    declared = m.parse_bicep(m.MAIN_BICEP)["parameters"]
    given = m.parse_bicepparam(m.MAIN_BICEPPARAM).params
    required = {n for n, p in declared.items() if p.get("default") is None}
    assert required <= set(given)
    needed = {var for value in given.values() for var, has_default in _environment_reads(value) if not has_default}
    assert needed >= {"COMMERCE_BASE_URL", "COMMERCE_OUN", "COMMERCE_CLIENT_ID", "ALERT_EMAILS"}
    readme = README.read_text(encoding="utf-8")
    section = readme[readme.index("azd up") :]
    missing = {var for var in needed if f"azd env set {var}" not in section}
    assert not missing, f"README's azd steps do not set {missing}"


def test_the_python_version_reaches_the_flex_runtime():
    given = m.parse_bicepparam(m.MAIN_BICEPPARAM).params
    assert _environment_reads(given["pythonVersion"]) == [("CUSTSYNC_PYTHON_VERSION", True)]
    allowed = next(
        d["argument"]
        for d in m.parse_bicep(m.MAIN_BICEP)["parameters"]["pythonVersion"]["decorators"]
        if d["type"] == "allowed"
    )
    assert allowed == ["3.11", "3.12", "3.13"]
    for version in allowed:
        site = m.module_params("functionApp", pythonVersion=version)
        assert site["functionAppConfig"]["runtime"] == {"name": "python", "version": version}
