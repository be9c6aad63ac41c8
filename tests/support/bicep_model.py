"""A read-only model of the Bicep in ``infra/``, built from pycep-parser's parse tree.

No Bicep compiler can run here, so the infrastructure tests parse the files with pycep (the parser
Checkov uses) and evaluate the small part of the expression language our templates use: literals,
string interpolation, parameters and their defaults, variables, ``loadJsonContent``, property and
index access, the logical/comparison operators, the ternary and a handful of functions. Anything known
only at deployment time (a module output, ``resourceGroup().id``...) evaluates to an ``Unresolved``
placeholder that keeps the expression's text, so tests can still see *what* a value refers to.

Helpers the end-to-end telemetry test uses besides the infrastructure tests:

- ``alert_queries() -> dict[str, str]``: alert name -> KQL query, fully resolved.
- ``telemetry_names_used_by_alerts() -> set[str]``: the telemetry names (the emitted strings, e.g.
  ``"CustomerEventDeadLettered"``) that the alert queries depend on.

``python -m tests.support.bicep_model write-telemetry-names`` regenerates ``infra/telemetry-names.json``
from ``shared/core/telemetry_names.py`` (a test fails until it is regenerated after a rename).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from pycep import BicepParser
from pycep.models import BicepElement

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
MAIN_BICEP = INFRA / "main.bicep"
MAIN_BICEPPARAM = INFRA / "main.bicepparam"
ALERTS_BICEP = INFRA / "app" / "alerts.bicep"
RBAC_BICEP = INFRA / "app" / "rbac.bicep"
TELEMETRY_JSON = INFRA / "telemetry-names.json"

# Built-in role definition ids (identical in every tenant).
ROLES = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
}


# --------------------------------------------------------------------------------------------------
# parsing
# --------------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _parser() -> BicepParser:
    return BicepParser(cache=False)


@cache
def _parse_text(text: str) -> dict[str, Any]:
    return _parser().parse(text=text)


def parse_bicep(path: Path) -> dict[str, Any]:
    """The pycep tree of a .bicep file. Raises on a syntax error."""
    return _parse_text(path.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class BicepParams:
    """A parsed .bicepparam file: the template it is for, and each parameter's value expression."""

    using: str
    params: dict[str, Any]


_USING = re.compile(r"^\s*using\s+'([^']+)'\s*$", re.MULTILINE)
_PARAM_LINE = re.compile(r"^(\s*)param(\s+[A-Za-z_]\w*\s*=)", re.MULTILINE)


def parse_bicepparam(path: Path) -> BicepParams:
    """Parse a .bicepparam file. Raises on a syntax error.

    pycep's grammar has no ``using`` statement and requires a type on ``param``. A parameters file is
    otherwise a list of ``param <name> = <expression>``: the ``using`` line is checked on its own and
    each ``param`` is parsed as a ``var`` with the same expression, so every value still goes through
    the real Bicep expression grammar.
    """
    text = path.read_text(encoding="utf-8")
    usings = _USING.findall(text)
    if len(usings) != 1:
        raise ValueError(f"{path}: expected exactly one using '<template>' statement, found {len(usings)}")
    body = _USING.sub("", text)
    if re.search(r"^\s*(resource|module|output|targetScope)\b", body, re.MULTILINE):
        raise ValueError(f"{path}: a parameters file may only hold param/var statements")
    tree = _parse_text(_PARAM_LINE.sub(r"\1var\2", body))
    return BicepParams(using=usings[0], params={k: v["value"] for k, v in tree.get("variables", {}).items()})


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


def bicepparam_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicepparam"))


# --------------------------------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Unresolved:
    """A value known only at deployment time; ``expr`` is a readable rendering of the expression."""

    expr: str

    def __str__(self) -> str:
        return f"<{self.expr}>"


def _is_ref(node: Any) -> bool:
    return isinstance(node, BicepElement)


def _key(k: str) -> str:
    return k[1:-1] if len(k) >= 2 and k[0] == k[-1] == "'" else k


def _unescape(s: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "r": "\r"}.get(m.group(1), m.group(1)), s)


def _split_interpolation(s: str) -> Iterator[tuple[str, str]]:
    """Yield ("text", ...) and ("expr", ...) parts of a Bicep single-quoted string body."""
    i, start, n = 0, 0, len(s)
    while i < n:
        if s[i] == "\\":
            i += 2
            continue
        if s.startswith("${", i):
            if i > start:
                yield "text", s[start:i]
            depth, j = 1, i + 2
            while j < n and depth:
                if s[j] == "{":
                    depth += 1
                elif s[j] == "}":
                    depth -= 1
                elif s[j] == "'":  # skip a nested string literal
                    j += 1
                    while j < n and s[j] != "'":
                        j += 2 if s[j] == "\\" else 1
                j += 1
            yield "expr", s[i + 2 : j - 1]
            i = start = j
            continue
        i += 1
    if start < n:
        yield "text", s[start:]


def _render(v: Any) -> str:
    if isinstance(v, Unresolved):
        return str(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


@dataclass
class Evaluator:
    """Evaluates expressions of one parsed template.

    ``param_values`` overrides parameter defaults. ``on_access`` is called with (variable, path) for
    every property path read from a variable, so callers can see which telemetry names a query uses.
    """

    tree: dict[str, Any]
    path: Path
    param_values: Mapping[str, Any] = field(default_factory=dict)
    on_access: Callable[[str, tuple[str, ...]], None] | None = None
    locals: dict[str, Any] = field(default_factory=dict)

    # --- symbols -----------------------------------------------------------------------------
    def symbol(self, name: str) -> Any:
        if name in self.locals:
            return self.locals[name]
        params = self.tree.get("parameters", {})
        if name in params:
            if name in self.param_values:
                return self.param_values[name]
            default = params[name].get("default")
            if default is None:
                return Unresolved(f"param {name}")
            return self.eval(default)
        variables = self.tree.get("variables", {})
        if name in variables:
            return self.eval(variables[name]["value"])
        if name in self.tree.get("resources", {}) or name in self.tree.get("modules", {}):
            return Unresolved(name)
        if name in ("true", "false"):
            return name == "true"
        return Unresolved(name)

    def with_locals(self, **values: Any) -> Evaluator:
        return Evaluator(self.tree, self.path, self.param_values, self.on_access, {**self.locals, **values})

    # --- expressions -------------------------------------------------------------------------
    def eval(self, node: Any) -> Any:
        if _is_ref(node):
            return self.symbol(str(node))
        if isinstance(node, str):
            return self._string(node)
        if node is None or isinstance(node, (bool, int, float)):
            return node
        if isinstance(node, list):
            return [self.eval(x) for x in node]
        if isinstance(node, dict):
            if set(node) == {"function"}:
                return self._function(node["function"])
            if set(node) == {"operator"}:
                return self._operator(node["operator"])
            if "loop_type" in node:
                return self._loop(node)
            return {_key(k): self.eval(v) for k, v in node.items()}
        raise TypeError(f"unexpected node {node!r}")

    def _string(self, s: str) -> Any:
        parts = list(_split_interpolation(s))
        if not any(kind == "expr" for kind, _ in parts):
            return _unescape(s)
        values = [(_unescape(text) if kind == "text" else self.eval(parse_expression(text))) for kind, text in parts]
        if len(values) == 1 and not isinstance(values[0], str):
            return values[0] if not isinstance(values[0], Unresolved) else Unresolved(values[0].expr)
        rendered = "".join(_render(v) for v in values)
        return Unresolved(rendered) if any(isinstance(v, Unresolved) for v in values) else rendered

    def _path(self, node: Any) -> list[Any]:
        """Flatten pycep's right-nested property accessors (a.(b.c)) into a path of names/indexes."""
        if isinstance(node, dict) and set(node) == {"operator"} and node["operator"]["type"] == "property_accessor":
            ops = node["operator"]["operands"]
            return self._path(ops["operand_1"]) + self._path(ops["operand_2"])
        if _is_ref(node) or isinstance(node, str):
            return [str(node)]
        return [self.eval(node)]

    def _access(self, base_node: Any, path: list[Any]) -> Any:
        base = self.eval(base_node)
        if self.on_access and _is_ref(base_node):
            self.on_access(str(base_node), tuple(str(p) for p in path))
        for i, step in enumerate(path):
            if isinstance(base, Unresolved):
                return Unresolved(".".join([base.expr, *map(str, path[i:])]))
            if isinstance(base, dict) and step in base:
                base = base[step]
            elif isinstance(base, list) and isinstance(step, int):
                base = base[step]
            else:
                raise KeyError(f"{self.path.name}: no {step!r} in {base!r}")
        return base

    def _operator(self, op: dict[str, Any]) -> Any:
        kind, ops = op["type"], op["operands"]
        if kind == "property_accessor":
            return self._access(ops["operand_1"], self._path(ops["operand_2"]))
        if kind == "index_accessor":
            base, index = self.eval(ops["operand_1"]), self.eval(ops["operand_2"])
            if isinstance(base, Unresolved) or isinstance(index, Unresolved):
                return Unresolved(f"{_render(base)}[{_render(index)}]")
            return base[index]
        if kind == "conditional":
            cond = self.eval(ops["condition"])
            if isinstance(cond, Unresolved):
                return Unresolved(f"{cond.expr} ? ...")
            return self.eval(ops["true_value"] if cond else ops["false_value"])
        if kind == "not":
            v = self.eval(ops["bool_value"])
            return Unresolved(f"!{v.expr}") if isinstance(v, Unresolved) else not v
        values = [self.eval(v) for v in ops.values()]
        if any(isinstance(v, Unresolved) for v in values):
            return Unresolved(f"{kind}({', '.join(_render(v) for v in values)})")
        a, b = values[0], values[-1]
        binary: dict[str, Callable[[Any, Any], Any]] = {
            "equals": lambda x, y: x == y,
            "not_equals": lambda x, y: x != y,
            "equals_case_insens": lambda x, y: str(x).lower() == str(y).lower(),
            "greater_than": lambda x, y: x > y,
            "greater_than_or_equals": lambda x, y: x >= y,
            "less_than": lambda x, y: x < y,
            "less_than_or_equals": lambda x, y: x <= y,
            "and": lambda x, y: x and y,
            "or": lambda x, y: x or y,
            "add": lambda x, y: x + y,
            "substract": lambda x, y: x - y,
            "multiply": lambda x, y: x * y,
            "divide": lambda x, y: x // y,
            "modulo": lambda x, y: x % y,
            "coalesce": lambda x, y: x if x is not None else y,
        }
        if kind == "minus":
            return -a
        if kind in binary:
            return binary[kind](a, b)
        raise NotImplementedError(f"{self.path.name}: operator {kind}")

    def _function(self, fn: dict[str, Any]) -> Any:
        name = fn["type"]
        raw = list(fn.get("parameters", {}).values())
        if name == "load_json_content":
            file_path = self.eval(raw[0])
            return json.loads((self.path.parent / file_path).read_text(encoding="utf-8"))
        args = [self.eval(a) for a in raw if a is not None]  # pycep pads optional arguments with None
        if name in (
            "resource_group",
            "subscription",
            "tenant",
            "deployment",
            "environment",
            "unique_string",
            "guid",
            "subscription_resource_id",
            "resource_id",
            "utc_now",
            "new_guid",
        ):
            return Unresolved(f"{name}({', '.join(_render(a) for a in args)})")
        if any(isinstance(a, Unresolved) for a in args):
            return Unresolved(f"{name}({', '.join(_render(a) for a in args)})")
        simple: dict[str, Callable[..., Any]] = {
            "concat": lambda *xs: [y for x in xs for y in x] if isinstance(xs[0], list) else "".join(map(str, xs)),
            "union": lambda *xs: (
                list(dict.fromkeys(y for x in xs for y in x))
                if isinstance(xs[0], list)
                else {k: v for x in xs for k, v in x.items()}
            ),
            "empty": lambda x: not x,
            "contains": lambda x, y: y in x,
            "length": len,
            "string": lambda x: json.dumps(x) if isinstance(x, (dict, list)) else _render(x),
            "int": int,
            "to_lower": str.lower,
            "to_upper": str.upper,
            "take": lambda x, n: x[:n],
            "skip": lambda x, n: x[n:],
            "split": lambda x, sep: x.split(sep),
            "join": lambda xs, sep: sep.join(xs),
            "format": lambda f, *xs: re.sub(r"\{(\d+)\}", lambda m: _render(xs[int(m.group(1))]), f),
            "replace": lambda x, a, b: x.replace(a, b),
            "readEnvironmentVariable": lambda name, *default: Unresolved(f"env {name}"),
        }
        if name in simple:
            return simple[name](*args)
        raise NotImplementedError(f"{self.path.name}: function {name}")

    def _loop(self, node: dict[str, Any]) -> Any:
        detail = node["loop_type"]["detail"]
        items = self.eval(detail.get("array_name"))
        if isinstance(items, Unresolved):
            return Unresolved(f"for {detail['item_name']} in {items.expr}")
        out = []
        for i, item in enumerate(items):
            scope = {detail["item_name"]: item}
            if "index_name" in detail:
                scope[detail["index_name"]] = i
            ev = self.with_locals(**scope)
            if node.get("condition") is not None and not ev.eval(node["condition"]):
                continue
            out.append(ev.eval(node["config"]))
        return out


def parse_expression(text: str) -> Any:
    """Parse one Bicep expression (the inside of ``${...}``) with the real grammar."""
    return _parse_text(f"var __expr = {text}\n")["variables"]["__expr"]["value"]


def evaluator(path: Path, **param_values: Any) -> Evaluator:
    return Evaluator(parse_bicep(path), path, param_values)


# --------------------------------------------------------------------------------------------------
# the model of infra/main.bicep and its modules
# --------------------------------------------------------------------------------------------------

# Required parameters (no default) given representative values so the model can be evaluated.
EXAMPLE_PARAMS: dict[str, Any] = {
    "commerceBaseUrl": "https://example-csu.example.invalid/Commerce",
    "commerceOun": "052",
    "commerceClientId": Unresolved("param commerceClientId"),
    "commerceServerResourceId": "api://retail-server.example.invalid",
    "alertEmails": ["oncall@example.invalid"],
}


def main_evaluator(**overrides: Any) -> Evaluator:
    return evaluator(MAIN_BICEP, **{**EXAMPLE_PARAMS, **overrides})


def app_settings(**overrides: Any) -> dict[str, Any]:
    """The Function App's app settings as main.bicep passes them (the ``appsettings`` config)."""
    ev = main_evaluator(**overrides)
    site = ev.tree["modules"]["functionApp"]["config"]["params"]
    configs = ev.eval(site["configs"])
    (settings,) = [c["properties"] for c in configs if c["name"] == "appsettings"]
    return settings


def module_params(name: str, **overrides: Any) -> dict[str, Any]:
    ev = main_evaluator(**overrides)
    return ev.eval(ev.tree["modules"][name]["config"]["params"])


def _resource_config(resource: dict[str, Any]) -> Any:
    """A resource's body, whether plain, conditional (``if``) or a loop (``for``)."""
    body = resource["config"]
    while isinstance(body, dict) and set(body) >= {"config"} and ("condition" in body or "loop_type" in body):
        body = body["config"]
    return body


def resources(tree: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return tree.get("resources", {})


# --------------------------------------------------------------------------------------------------
# role assignments
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoleAssignment:
    principal: str  # the parameter that holds the principal id (principalId / operatorPrincipalId)
    role_definition_id: str  # the built-in role's GUID
    scope_type: str  # resource type of the scope, e.g. Microsoft.Storage/storageAccounts/queueServices/queues
    for_each: str  # the array a loop iterates ('' when the assignment is a single resource)


def _loop_array(resource: dict[str, Any]) -> str:
    config = resource["config"]
    if isinstance(config, dict) and "loop_type" in config:
        return str(config["loop_type"]["detail"]["array_name"])
    return ""


def role_assignments(path: Path = RBAC_BICEP) -> list[RoleAssignment]:
    tree = parse_bicep(path)
    ev = Evaluator(tree, path, {name: Unresolved(name) for name in tree["parameters"]})
    found = []
    for name, resource in resources(tree).items():
        if resource["type"] != "Microsoft.Authorization/roleAssignments":
            continue
        body = _resource_config(resource)
        role_fn = body["properties"]["roleDefinitionId"]["function"]
        if role_fn["type"] != "subscription_resource_id" or role_fn["parameters"]["resource_type"] != (
            "Microsoft.Authorization/roleDefinitions"
        ):
            raise AssertionError(f"{name}: roleDefinitionId must be subscriptionResourceId(roleDefinitions, <id>)")
        role_id = ev.eval(role_fn["parameters"]["resource_name_1"])
        scope = body.get("scope")
        if isinstance(scope, dict) and scope.get("operator", {}).get("type") == "index_accessor":
            scope = scope["operator"]["operands"]["operand_1"]
        if not _is_ref(scope) or str(scope) not in resources(tree):
            raise AssertionError(f"{name}: scope must be a resource declared in {path.name}, got {scope!r}")
        found.append(
            RoleAssignment(
                principal=str(body["properties"]["principalId"]),
                role_definition_id=role_id,
                scope_type=resources(tree)[str(scope)]["type"],
                for_each=_loop_array(resource),
            )
        )
    return found


# --------------------------------------------------------------------------------------------------
# alerts
# --------------------------------------------------------------------------------------------------


def _alert_definitions(on_access: Callable[[str, tuple[str, ...]], None] | None = None) -> list[dict[str, Any]]:
    tree = parse_bicep(ALERTS_BICEP)
    # Thresholds are main.bicep parameters passed straight through: use main.bicep's defaults, so the
    # queries are the ones a default deployment creates.
    main_defaults = parse_bicep(MAIN_BICEP)["parameters"]
    thresholds = {
        name: main_defaults[name]["default"]
        for name, p in tree["parameters"].items()
        if p.get("default") is None and p["type"] == "int"
    }
    # Values main.bicep computes itself (not parameters), e.g. the ingest path shared with its output.
    from_main = {
        name: value
        for name, value in module_params("alerts").items()
        if name in tree["parameters"]
        and name not in thresholds
        and isinstance(value, str)
        and tree["parameters"][name]["type"] == "string"
        and name != "location"
    }
    ev = Evaluator(
        tree,
        ALERTS_BICEP,
        {
            "namePrefix": "custsync",
            "location": "westeurope",
            "appInsightsName": "appi",
            "alertEmails": [],
            **from_main,
            **thresholds,
        },
        on_access,
    )
    return ev.eval(tree["variables"]["alertDefinitions"]["value"])


def alert_queries() -> dict[str, str]:
    """Alert name (its key, e.g. ``dead-lettered``) -> KQL query with every telemetry name resolved."""
    return {a["key"]: a["query"] for a in _alert_definitions()}


def telemetry_keys_used_by_alerts() -> set[str]:
    """Constant names of shared/core/telemetry_names.py read by the alert queries (e.g. ``EVENT_DEAD_LETTERED``)."""
    used: set[str] = set()
    tree = parse_bicep(ALERTS_BICEP)
    queries = [a["query"] for a in tree["variables"]["alertDefinitions"]["value"]]

    def record(var: str, path: tuple[str, ...]) -> None:
        if var == "telemetry":
            used.add(path[0])

    placeholders = {q: "/x" if p["type"] == "string" else 1 for q, p in tree["parameters"].items()}
    ev = Evaluator(tree, ALERTS_BICEP, placeholders, record)
    for q in queries:
        ev.eval(q)
    return used


def telemetry_names_used_by_alerts() -> set[str]:
    """The telemetry names (emitted strings: custom event, metric and function names) that alert queries
    depend on. Dimension values such as an outcome (``OUTCOME_*``) are not names: see
    ``telemetry_values_used_by_alerts``."""
    names = telemetry_names_from_code()
    return {names[k] for k in telemetry_keys_used_by_alerts() if not k.startswith(OUTCOME_PREFIX)}


def telemetry_values_used_by_alerts() -> dict[str, str]:
    """Dimension values the alert queries compare with (``OUTCOME_RETRYING`` -> ``"retrying"``)."""
    names = telemetry_names_from_code()
    return {k: names[k] for k in telemetry_keys_used_by_alerts() if k.startswith(OUTCOME_PREFIX)}


# --------------------------------------------------------------------------------------------------
# telemetry names: shared/core/telemetry_names.py -> infra/telemetry-names.json
# --------------------------------------------------------------------------------------------------

OUTCOME_PREFIX = "OUTCOME_"


def telemetry_names_from_code() -> dict[str, str]:
    """Every upper-case string constant of shared/core/telemetry_names.py, plus each ``Outcome`` value as
    ``OUTCOME_<MEMBER>`` (the ``outcome`` dimension of ``CustomerSyncOutcome``, which an alert filters on)."""
    if str(REPO) not in sys.path:  # when run as a script from elsewhere
        sys.path.insert(0, str(REPO))
    from shared.core import telemetry_names

    found = {k: v for k, v in vars(telemetry_names).items() if k.isupper() and isinstance(v, str)}
    found.update({f"{OUTCOME_PREFIX}{member.name}": member.value for member in telemetry_names.Outcome})
    return found


def telemetry_names_document() -> str:
    return json.dumps(dict(sorted(telemetry_names_from_code().items())), indent=2) + "\n"


def _main(argv: list[str]) -> int:
    if argv == ["write-telemetry-names"]:
        TELEMETRY_JSON.write_text(telemetry_names_document(), encoding="utf-8")
        print(f"wrote {TELEMETRY_JSON.relative_to(REPO)}")
        return 0
    if argv == ["alerts"]:
        for name, query in alert_queries().items():
            print(f"{name}: {query}")
        return 0
    print("usage: python -m tests.support.bicep_model write-telemetry-names | alerts", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
