"""The sim-only privileged ``object_state`` key: through the real graph on the sim cell, refused on a real robot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sim_collect import collect
from test_cli_errors import user_rl

from user_learner.bags.transition_bag import read_episodes
from user_robot.config_loader import write_config_copy

STATE = ["tcp_pose", "tcp_vel", "gripper", "wrench", "object_state"]
PRIVILEGED = {"tasks/pick_and_place": {"observation.state": STATE}}


def test_a_real_robot_config_refuses_the_privileged_key_before_any_node_starts(tmp_path: Path) -> None:
    config = write_config_copy(tmp_path / "cfg", PRIVILEGED)
    code, out = user_rl(["train", "--task", "pick_and_place", "--robot", "franka", "--side", "robot"], tmp_path,
                        {"USER_CONFIG_DIR": str(config)})
    assert code == 2 and "Traceback" not in out, out
    assert "'object_state' is the simulator's ground truth and robot 'franka' is a real cell" in out


@pytest.mark.slow
def test_expert_demos_on_the_sim_cell_carry_the_object_poses(tmp_path: Path) -> None:
    out = collect(tmp_path, PRIVILEGED, "pick_and_place", 2)
    actor_log = (tmp_path / "logs" / "collect" / "ros" / "robot_0.actor.log").read_text()
    assert "sim-only privileged key 'object_state'" in actor_log  # named in the logs
    episodes = list(read_episodes(out, images=False))
    assert len(episodes) == 2 and all(e.success for e in episodes)
    for episode in episodes:
        states = np.stack([s.state for s in episode.steps])
        assert states.shape[1] == 19 + 6  # the arm's 19 + the duck's position, yaw and in-the-bin flag
        duck = states[:, 19:22]
        assert np.linalg.norm(duck[-1] - duck[0]) > 0.5  # it moved (x10: decimetres) from the table into the bin
        assert states[0, 24] == 0.0 and states[-1, 24] == 1.0  # the in-the-bin flag turns on
