"""What ``func azure functionapp publish`` leaves out of the package: the patterns of ``.funcignore``,
and whether a repository path matches one."""

from __future__ import annotations

import fnmatch

from tests.support.repo import ROOT

FUNCIGNORE = ROOT / ".funcignore"


def ignore_patterns() -> list[str]:
    lines = FUNCIGNORE.read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def ignored(path: str, patterns: list[str]) -> bool:
    """gitignore-style enough for our patterns: a slash-free pattern matches any path component."""
    parts = path.split("/")
    for pattern in patterns:
        p = pattern.rstrip("/")
        if "/" in p:
            if fnmatch.fnmatch(path, p) or path.startswith(p + "/"):
                return True
        elif any(fnmatch.fnmatch(part, p) for part in parts):
            return True
    return False
