"""The ``last_action`` state key through the real graph: each recorded state carries the action the
previous tick sent to the arm (zero at an episode's first)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from user_learner.bags.transition_bag import read_episodes
from user_robot.config_loader import write_config_copy


@pytest.mark.slow
def test_each_recorded_state_carries_the_previous_ticks_action(tmp_path: Path) -> None:
    config = write_config_copy(tmp_path / "cfg", {"tasks/pick_and_place": {
        "observation.state": ["gripper", "last_action"]}})
    out = tmp_path / "demos.mcap"
    run = subprocess.run(
        [sys.executable, "-m", "user_learner.cli.main", "collect", "--task", "pick_and_place", "--episodes", "1",
         "--out", str(out), "--log-dir", str(tmp_path / "logs")],
        capture_output=True, text=True, timeout=300, env={**os.environ, "USER_CONFIG_DIR": str(config)},
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    (episode,) = read_episodes(out, images=False)
    states = np.stack([s.state for s in episode.steps])
    actions = np.stack([s.action for s in episode.steps[:-1]])
    assert states.shape[1] == 1 + 7 and np.abs(actions).max() > 0.1  # the expert moved
    np.testing.assert_array_equal(states[0, 1:], 0.0)
    np.testing.assert_allclose(states[1:, 1:], actions, atol=1e-6)
