"""HTTP route templates as the Functions host reads them (ASP.NET-style, the subset apps use).

Segments: literals (case-insensitive), ``{name}``, ``{name?}`` (optional, last segments only),
``{name:constraint}`` (``int``, ``long``, ``bool``, ``guid``, ``alpha``, ``double``, ``decimal`` are
checked; others accepted) and ``{*name}`` (catch-all, the rest of the path).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

_PARAM = re.compile(
    r"^\{(?P<star>\*)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::(?P<constraint>[^}?=]+))?"
    r"(?P<optional>\?)?\}$"
)
_CONSTRAINTS = {
    "int": re.compile(r"^-?\d+$"),
    "long": re.compile(r"^-?\d+$"),
    "bool": re.compile(r"^(?i:true|false)$"),
    "guid": re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"),
    "alpha": re.compile(r"^[A-Za-z]+$"),
    "double": re.compile(r"^-?\d+(\.\d+)?$"),
    "decimal": re.compile(r"^-?\d+(\.\d+)?$"),
}


@dataclass(frozen=True)
class Segment:
    literal: str | None = None
    name: str | None = None
    constraint: str | None = None
    optional: bool = False
    catch_all: bool = False


@dataclass(frozen=True)
class RouteTemplate:
    text: str
    segments: tuple[Segment, ...]

    @property
    def specificity(self) -> tuple[int, int, int]:
        """Sort key: more literal segments first, then fewer catch-alls, then longer templates."""
        literals = sum(1 for s in self.segments if s.literal is not None)
        catch = sum(1 for s in self.segments if s.catch_all)
        return (-literals, catch, -len(self.segments))


def compile_route(text: str) -> RouteTemplate:
    segments = []
    parts = [p for p in text.strip("/").split("/")] if text.strip("/") else []
    for index, part in enumerate(parts):
        match = _PARAM.match(part)
        if match:
            segment = Segment(
                name=match["name"],
                constraint=(match["constraint"] or None),
                optional=bool(match["optional"]),
                catch_all=bool(match["star"]),
            )
            if segment.catch_all and index != len(parts) - 1:
                raise ValueError(f"route {text!r}: a catch-all parameter must be the last segment")
            segments.append(segment)
        elif "{" in part or "}" in part:
            raise ValueError(f"route {text!r}: unsupported segment {part!r} (use one parameter per segment)")
        else:
            segments.append(Segment(literal=part))
    return RouteTemplate(text, tuple(segments))


def match_route(template: RouteTemplate, path: str) -> dict[str, str] | None:
    """Route parameters when ``path`` (below the route prefix, still percent-encoded) matches."""
    parts = [p for p in path.strip("/").split("/")] if path.strip("/") else []
    params: dict[str, str] = {}
    for index, segment in enumerate(template.segments):
        if segment.catch_all:
            rest = "/".join(unquote(p) for p in parts[index:])
            params[segment.name] = rest  # a catch-all may be empty
            return params
        if index >= len(parts):
            if segment.optional:
                continue
            return None
        value = unquote(parts[index])
        if segment.literal is not None:
            if value.lower() != segment.literal.lower():
                return None
            continue
        check = _CONSTRAINTS.get((segment.constraint or "").lower())
        if check is not None and not check.match(value):
            return None
        params[segment.name] = value
    if len(parts) > len(template.segments):
        return None
    return params
