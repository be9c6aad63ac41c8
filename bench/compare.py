"""bench.pipeline for two builds side by side: runs interleaved, figures as ranges over the runs.

    python -m bench.compare --before <commit> [--rounds 3]      # an earlier commit against this tree
    python -m bench.compare --before <commit> --after <commit>  # two commits, neither the work tree
    python -m bench.compare --python .venv-3.13/bin/python      # this tree on another interpreter

Each round runs ``python -m bench.pipeline`` once per build, alternating, so that load from the rest
of the machine falls on both alike. ``--before`` exports the commit with ``git archive`` into a
temporary folder and copies this tree's ``bench/`` into it (the same measurement of the older code;
bench.pipeline runs against releases without ``EntryPresence``). ``--after`` exports a second commit
the same way instead of using this tree, so that uncommitted work elsewhere in the tree is not
measured with it. Prints one JSON object: per build, each figure's values over the rounds and their
range, and the load average before and after each run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def export(commit: str, into: Path) -> Path:
    tree = into / f"tree-{commit}"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    for path in (ROOT / "bench").glob("*.py"):
        shutil.copy(path, tree / "bench" / path.name)
    (tree / "node_modules").symlink_to(ROOT / "node_modules")  # Azurite
    return tree


def figures(result: dict) -> dict[str, float]:
    t = result["throughput"]
    per = result["per_event"]
    out = {
        "ledger_ops_new": per["new"]["ledger_ops_total"],
        "ledger_ops_changed": per["changed"]["ledger_ops_total"],
        "ledger_ops_unchanged": per["unchanged_new_event_id"]["ledger_ops_total"],
        "ledger_ops_duplicate": per["duplicate_delivery"]["ledger_ops_total"],
        "ledger_ops_stale": per["stale"]["ledger_ops_total"],
        "azurite_events_per_s": t["ledger_azurite"]["events_per_s"],
        "azurite_share_of_bound": t["ledger_azurite"]["ratio"],
        "in_process_events_per_s": t["ledger_in_process"]["events_per_s"],
        "in_process_share_of_bound": t["ledger_in_process"]["ratio"],
        "cpu_ms_azurite": t["ledger_azurite"]["cpu_ms_per_event"]["bench"],
        "cpu_ms_in_process": t["ledger_in_process"]["cpu_ms_per_event"]["bench"],
        "cpu_ms_azurite_process": t["ledger_azurite"]["cpu_ms_per_event"]["azurite"],
    }
    out["cpu_azurite_over_in_process"] = round(out["cpu_ms_azurite"] / out["cpu_ms_in_process"], 2)
    per_call = result.get("commerce_cpu_per_call")
    if per_call:  # one thread, best round: the client, and Session.post for the same requests
        out["client_cpu_us_per_call"] = min(per_call["us_per_call"]["client"])
        out["session_post_cpu_us_per_call"] = min(per_call["us_per_call"]["session_post"])
        out["client_over_session_post"] = per_call["client_over_session_post"]
    if "naive" in t:
        out.update(
            {
                "naive_events_per_s": t["naive"]["events_per_s"],
                "naive_share_of_bound": t["naive"]["ratio"],
                "in_process_over_naive": round(t["ledger_in_process"]["events_per_s"] / t["naive"]["events_per_s"], 3),
                "cpu_ms_naive": t["naive"]["cpu_ms_per_event"]["bench"],
                "cpu_azurite_over_naive": t["ratios"]["cpu_azurite_over_naive"],
                "throughput_azurite_over_naive": t["ratios"]["throughput_azurite_over_naive"],
                "naive_duplicate_emails_of_200": result["naive"]["what_commerce_holds"]["new_concurrent"][
                    "emails_with_more_than_one"
                ],
                "ours_duplicate_emails_of_200": result["what_commerce_holds"]["new_concurrent"][
                    "emails_with_more_than_one"
                ],
            }
        )
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.compare")
    p.add_argument("--before", help="a commit to compare this tree with (same interpreter)")
    p.add_argument("--after", help="with --before: a commit to measure instead of this tree")
    p.add_argument("--python", help="another interpreter to run this tree with")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("pipeline_args", nargs="*", help="passed to bench.pipeline (after --)")
    a = p.parse_args(argv)
    if bool(a.before) == bool(a.python):
        p.error("give --before or --python")
    if a.after and not a.before:
        p.error("--after needs --before")
    with tempfile.TemporaryDirectory() as tmp:
        here = sys.executable
        builds = {"this tree": (here, ROOT)}
        if a.before:
            after = {f"commit {a.after}": (here, export(a.after, Path(tmp)))} if a.after else builds
            builds = {f"commit {a.before}": (here, export(a.before, Path(tmp))), **after}
        else:
            version = subprocess.run(
                [a.python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
            mine = ".".join(map(str, sys.version_info[:3]))
            builds = {f"Python {mine}": (here, ROOT), f"Python {version}": (a.python, ROOT)}
        values: dict[str, dict[str, list[float]]] = {name: {} for name in builds}
        loads = []
        for _ in range(a.rounds):
            for name, (python, cwd) in builds.items():
                run = subprocess.run(
                    [python, "-m", "bench.pipeline", *a.pipeline_args],
                    cwd=cwd,
                    capture_output=True,
                    text=True,
                    env={**os.environ, "PYTHONPATH": str(cwd)},
                )
                if run.returncode:
                    # Today's bench/ in an older tree can fail to import what moved since: say so.
                    sys.exit(f"bench.pipeline failed for {name} ({cwd}):\n{run.stderr[-4000:]}")
                result = json.loads(run.stdout)
                loads.append(result.get("load_average_before_after"))
                for key, value in figures(result).items():
                    values[name].setdefault(key, []).append(value)
        summary = {
            name: {k: {"runs": v, "range": [min(v), max(v)]} for k, v in figs.items()} for name, figs in values.items()
        }
        print(json.dumps({"rounds": a.rounds, "load_averages": loads, "builds": summary}, indent=1))


if __name__ == "__main__":
    main()
