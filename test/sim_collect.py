"""``user-rl collect`` on the sim cell with a changed copy of the config, in its own process (tests' helper)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from user_robot.config_loader import write_config_copy


def collect(tmp_path: Path, changes: Mapping[str, Mapping[str, Any]], task: str, episodes: int) -> Path:
    """Record ``episodes`` scripted-expert episodes of ``task`` with the config ``changes``; the recording."""
    config = write_config_copy(tmp_path / "cfg", {name: dict(keys) for name, keys in changes.items()})
    out = tmp_path / "demos.mcap"
    run = subprocess.run(
        [sys.executable, "-m", "user_learner.cli.main", "collect", "--task", task, "--episodes", str(episodes),
         "--out", str(out), "--log-dir", str(tmp_path / "logs")],
        capture_output=True, text=True, timeout=300, env={**os.environ, "USER_CONFIG_DIR": str(config)},
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    summary = run.stdout.strip().splitlines()[-1]
    assert summary.startswith("collect ") and f" episodes={episodes} " in summary, summary  # (all it recorded)
    return out
