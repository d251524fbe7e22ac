"""The learner node under ``torchrun`` with two ranks (gloo, real DDS): rank 0 talks ROS, forwards what it receives,
publishes weights and checkpoints; rank 1 follows; Ctrl-C stops both cleanly, rank 0 checkpointing."""

from __future__ import annotations

from pathlib import Path

import driver_standins as standins
import numpy as np
import pytest

from user_interfaces.msg import PolicyWeights, Transition
from user_policies.observation import state_dim
from user_robot.contracts import TRANSITIONS_TOPIC, WEIGHTS_TOPIC
from user_robot.nodes.qos import TRANSITIONS, WEIGHTS
from user_robot.task_config import load_task


@pytest.fixture
def harness():
    h = standins.Harness()
    yield h
    h.close()


def human_episode(steps: int) -> list[Transition]:
    """One peg-insertion episode the human drove throughout, ending in success."""
    task, rng = load_task("peg_insertion"), np.random.default_rng(0)
    out = []
    for step in range(steps + 1):
        last = step == steps
        msg = Transition(robot_id="robot_0", embodiment="franka_panda", task=task.name, episode_id="ep0", step=step)
        msg.state = rng.normal(size=state_dim(task)).astype(np.float32).tolist()
        msg.action = [] if last else rng.uniform(-1, 1, task.action.dims).astype(np.float32).tolist()
        msg.intervened, msg.terminated, msg.end_reason = not last, last, 1 if last else 0
        out.append(msg)
    return out


def test_two_ranks_train_one_policy_and_rank_0_publishes_it(spawn, harness, tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    learner = spawn(["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                     "-m", "user_learner.nodes.learner", "--ros-args", "-p", "algo:=hg_dagger",
                     "-p", f"log_dir:={log_dir}"], {"OMP_NUM_THREADS": "1", "RCUTILS_LOGGING_BUFFERED_STREAM": "0"})
    learner.wait_for("learner rank 1 of 2 following rank 0", timeout=120)
    probe = harness.node("probe")
    weights = standins.Recorder(probe, PolicyWeights, WEIGHTS_TOPIC, WEIGHTS)
    publisher = probe.create_publisher(Transition, TRANSITIONS_TOPIC, TRANSITIONS)
    standins.wait_until(lambda: publisher.get_subscription_count() > 0, 60.0, "the learner subscribed")
    for msg in human_episode(30):
        publisher.publish(msg)
    standins.wait_until(lambda: weights.messages, 120.0, "weights from rank 0")
    learner.stop(timeout=60)  # (torchrun passes the SIGINT on to the ranks, then exits 1 for having had one)
    lines = "\n".join(learner.output())
    assert "saved checkpoint" in lines and "ChildFailedError" not in lines, lines  # the ranks themselves ended well
    assert "data-parallel over 2 ranks: each samples 128 rows of every batch" in lines, lines
    assert sorted(p.name for p in (log_dir / "checkpoints").iterdir()), lines  # rank 0 checkpointed on the way out
    assert not list((log_dir / "ranks").rglob("*.safetensors"))  # rank 1 writes no checkpoints
    assert "RankLostError" not in lines, lines
