"""Run a benchmark against a copy of config/ with some algorithm keys changed; run ``user-rl`` commands.

``--set sac.num_critics=2 --set utd=0`` style overrides (values parsed as YAML) are written into a
temporary copy of the config directory, which the graph's processes read through
``$USER_CONFIG_DIR``; the checkout's config/ is never touched.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from user_robot.config_loader import CONFIG_DIR_ENV, write_config_copy


def parse_sets(items: list[str]) -> dict[str, Any]:
    """``["sac.num_critics=2", "utd=0"]`` → ``{"sac.num_critics": 2, "utd": 0}``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set expects KEY=VALUE, got {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


@contextlib.contextmanager
def algorithm_overrides(workdir: Path, algo: str, sets: Mapping[str, Any]) -> Iterator[None]:
    """Within the block, ``config/algorithms/<algo>.yaml`` has the dotted keys ``sets`` replaced."""
    with config_overrides(workdir, {f"algorithms/{algo}": dict(sets)} if sets else {}):
        yield


@contextlib.contextmanager
def config_overrides(workdir: Path, changes: Mapping[str, Mapping[str, Any]]) -> Iterator[None]:
    """Within the block, every ``config/<file>.yaml`` named in ``changes`` has its dotted keys replaced."""
    if not any(changes.values()):
        yield
        return
    config = write_config_copy(workdir / "config", {name: dict(keys) for name, keys in changes.items()})
    before = os.environ.get(CONFIG_DIR_ENV)
    os.environ[CONFIG_DIR_ENV] = str(config)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(CONFIG_DIR_ENV)
        else:
            os.environ[CONFIG_DIR_ENV] = before


def task_changes(task: str, sets: list[str], privileged: bool) -> dict[str, Any]:
    """``--set-task`` style keys of ``task``'s YAML; ``privileged`` appends the sim-only ``object_state`` key
    (object poses from the simulator's ground truth) to its state (as ``sets`` has it, else its YAML's): for
    CPU-scale runs that cannot learn from images."""
    from user_robot.task_config import load_task

    changes = parse_sets(sets)
    if privileged:
        state = changes.get("observation.state") or list(load_task(task).observation.state)
        changes["observation.state"] = [*state, "object_state"]
    return changes


def user_rl(*args: str, env: Mapping[str, str] | None = None) -> str:
    """Run one ``user-rl`` command in its own process; its last output line (the summary). Exits on failure."""
    out = subprocess.run([sys.executable, "-m", "user_learner.cli.main", *args], capture_output=True, text=True,
                         env=None if env is None else dict(env), check=False)
    if out.returncode != 0:
        raise SystemExit(f"user-rl {args[0]} failed ({out.returncode}):\n{out.stdout[-2000:]}{out.stderr[-3000:]}")
    return out.stdout.strip().splitlines()[-1]
