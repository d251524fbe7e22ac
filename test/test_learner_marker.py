"""A learner restarted after a crash resumes by itself; a second learner on the same log dir is refused.

Real learner processes over real DDS (the respawn that ``ros2 launch`` or ``user-rl train`` does).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from user_learner.learner_core import LearnerCore
from user_learner.nodes.learner import RUNNING_MARKER
from user_robot.task_config import load_task


def learner_args(log_dir: Path) -> list[str]:
    return ["-m", "user_learner.nodes.learner", "--ros-args", "-p", "algo:=sac", "-p", f"log_dir:={log_dir}"]


def test_a_crashed_learner_is_resumed_and_a_live_one_is_not_doubled(spawn, tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    core = LearnerCore(load_task("peg_insertion"), "sac", "state", ["franka_panda"], log_dir, tensorboard=False)
    core.save()
    (log_dir / RUNNING_MARKER).write_text("999999999\n")  # a learner that died without shutting down

    learner = spawn(learner_args(log_dir))
    deadline = time.monotonic() + 60
    while not any("learner ready" in line for line in learner.lines):
        assert time.monotonic() < deadline and learner.popen.poll() is None, "\n".join(learner.lines[-20:])
        time.sleep(0.1)
    lines = "\n".join(learner.lines)
    assert "did not shut down cleanly; resuming" in lines and "resumed from checkpoint" in lines, lines
    assert (log_dir / RUNNING_MARKER).read_text().strip() == str(learner.popen.pid)

    second = spawn(learner_args(log_dir))
    assert second.popen.wait(timeout=60) == 1
    assert any(f"another learner (pid {learner.popen.pid}) runs on" in line for line in second.output())

    assert learner.stop() == 0
    assert not (log_dir / RUNNING_MARKER).exists()  # a clean shutdown leaves no marker
    assert os.path.isdir(log_dir / "checkpoints")
