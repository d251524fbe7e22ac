"""Every task in the sim: the scripted expert succeeds, a random policy does not (20 seeded episodes each).

Episodes run headless behind the arm bridge's safety filter, the expert through the virtual
SpaceMouse and the teleop mapping, exactly the path its actions take over ROS.
"""

from __future__ import annotations

import pytest

from user_robot.sim.headless import success_rate
from user_robot.sim.tasks import TASKS

EPISODES = 20


@pytest.mark.parametrize("task", sorted(TASKS))
def test_expert_succeeds(task: str) -> None:
    rate = success_rate(task, "sim", "expert", EPISODES, seed=0)
    assert rate >= 0.9, f"{task}: expert success rate {rate:.2f}"


@pytest.mark.parametrize("task", sorted(TASKS))
def test_random_policy_fails(task: str) -> None:
    rate = success_rate(task, "sim", "random", EPISODES, seed=0)
    assert rate <= 0.1, f"{task}: random success rate {rate:.2f}"


@pytest.mark.parametrize("task", ["peg_insertion", "pick_and_place"])
def test_expert_succeeds_on_the_arx_arm(task: str) -> None:
    rate = success_rate(task, "sim_arx", "expert", 5, seed=1)
    assert rate >= 0.8, f"{task} on arx: expert success rate {rate:.2f}"
