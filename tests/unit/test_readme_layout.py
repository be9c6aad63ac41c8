"""README.md's layout tree names every folder of the app and of the repository, and nothing that is
not there: a partner who forks the project reads the architecture from it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIP = {"__pycache__", "data"}  # generated or data-only folders are described by their parent's line


def tree() -> dict[str, str]:
    """Path -> description from the fenced block under '## Layout'."""
    section = README.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```text\n", 1)[1].split("```", 1)[0]
    paths: dict[str, str] = {}
    stack: list[str] = []
    for line in block.splitlines():
        match = re.match(r"^( *)(\S+)\s{2,}(\S.*)$", line)
        assert match, f"layout line without a description: {line!r}"
        depth = len(match.group(1)) // 2
        del stack[depth:]
        stack.append(match.group(2).rstrip("/"))
        paths["/".join(stack)] = match.group(3)
    return paths


README = (ROOT / "README.md").read_text(encoding="utf-8")


def tracked_folders() -> set[str]:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    return {str(Path(f).parent) for f in files if "/" in f}


def test_every_path_in_the_tree_exists():
    paths = tree()
    assert len(paths) >= 20
    missing = [p for p in paths if not (ROOT / p).exists()]
    assert missing == []


def test_every_folder_of_the_app_and_every_top_level_folder_is_in_the_tree():
    paths = set(tree())
    folders = tracked_folders()
    app = {f for f in folders if f.startswith("shared") and not SKIP & set(Path(f).parts)}
    top = {f.split("/")[0] for f in folders if not f.startswith(".")}
    assert {"shared/core", "shared/adapters", "shared/usecases"} <= app
    assert app - paths == set()
    assert top - paths == set()
