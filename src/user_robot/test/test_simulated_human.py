"""The simulated human (MuJoCo, headless): takes over a policy that goes wrong, hands back, leaves a good one."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from user_robot.robot_config import load_robot
from user_robot.sim.cell import SimCell
from user_robot.sim.expert import SimulatedHuman, make_expert
from user_robot.sim.headless import expert_policy, run_episode, supervised_policy
from user_robot.task_config import load_task


@pytest.mark.parametrize("name", ["pick_and_place", "peg_insertion"])
def test_the_expert_itself_is_never_taken_over(name: str) -> None:
    task, robot = load_task(name), load_robot("sim")
    human, policy = supervised_policy(task, robot, expert_policy(task, robot)[1])
    cell = SimCell(task, robot)
    assert all(run_episode(cell, policy, 0, episode).success for episode in range(3))
    assert human.takeovers == 0 and human.driven == 0


def test_a_stalled_policy_is_taken_over_after_the_window_and_handed_back() -> None:
    task, robot = load_task("pick_and_place"), load_robot("sim")
    ticks: list[bool] = []  # per control tick: did the human drive?
    human, supervised = supervised_policy(task, robot, lambda cell, step: np.zeros(task.action.dims))

    def recorded(cell: SimCell, step: int) -> np.ndarray:
        before = human.driven
        action = supervised(cell, step)
        ticks.append(human.driven > before)
        return action

    result = run_episode(SimCell(task, robot), recorded, 0, 0)
    window, handback = human.window, human.handback
    assert ticks.index(True) == window  # the first tick it can judge: no progress over the window
    assert ticks[window : window + handback] == [True] * handback
    assert ticks[window + handback] is False  # handed back
    assert human.takeovers >= 2 and result.success  # the human's takeovers finish what the policy stalls on


def test_thresholds_come_from_the_task_yaml_and_bad_ones_name_the_task() -> None:
    task = load_task("pick_and_place")
    quick = dataclasses.replace(task, expert={**task.expert, "human_window": 3, "human_handback": 4})
    human = SimulatedHuman(make_expert(quick))
    assert (human.window, human.handback) == (3, 4)
    with pytest.raises(ValueError, match="pick_and_place: need human_window"):
        SimulatedHuman(make_expert(dataclasses.replace(task, expert={**task.expert, "human_window": 0})))

