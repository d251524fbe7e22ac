"""The simulated human (MuJoCo, headless): takes over a policy that goes wrong, hands back, leaves a good one."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from user_robot.action_mapping import action_toward
from user_robot.robot_config import load_robot
from user_robot.sim.cell import SimCell
from user_robot.sim.expert import SimulatedHuman, make_expert
from user_robot.sim.headless import expert_policy, run_episode, supervised_policy
from user_robot.task_config import load_task


@pytest.mark.parametrize(("name", "phase_ticks"), [("pick_and_place", 0), ("peg_insertion", 0),
                                                   ("table_cleanup", 30), ("pick_and_place", 30)])
def test_the_expert_itself_is_never_taken_over(name: str, phase_ticks: int) -> None:
    task, robot = load_task(name), load_robot("sim")
    task = dataclasses.replace(task, expert={**task.expert, "human_phase_ticks": phase_ticks})
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
    reason = r"phase \w+, TCP \[.*\], its goal \[.*\], [\d.]+ m from it, [-+][\d.]+ m closer over 10 ticks"
    assert re.fullmatch(reason, human.reason)  # (what the sim cell logs at each takeover)


def test_thresholds_come_from_the_task_yaml_and_bad_ones_name_the_task() -> None:
    task = load_task("pick_and_place")
    quick = dataclasses.replace(task, expert={**task.expert, "human_window": 3, "human_handback": 4})
    human = SimulatedHuman(make_expert(quick))
    assert (human.window, human.handback) == (3, 4)
    with pytest.raises(ValueError, match="pick_and_place: need human_window"):
        SimulatedHuman(make_expert(dataclasses.replace(task, expert={**task.expert, "human_window": 0})))


def _down_beside_the_duck(cell: SimCell, offset_y: float) -> np.ndarray:
    """A policy that cuts diagonally down to 1 cm over the duck's grasp height, ``offset_y`` beside it,
    yaw and gripper untouched."""
    duck = cell.privileged()["objects"]["duck_0"]
    xyz, quat = cell.tcp_pose()
    goal = np.array([duck["pos"][0], duck["pos"][1] + offset_y, duck["grasp_z"] + 0.01])
    return np.append(action_toward(xyz, quat, xyz + 0.5 * (goal - xyz), quat, cell.task_cfg.action)[:6], -1.0)


@pytest.mark.parametrize(("near", "funnel", "offset_y", "climbs"),
                         [(0.01, 0.0, 0.0, False), (0.0, 0.0, 0.0, True),
                          (0.01, 0.0, 0.03, True), (0.01, 1.0, 0.03, False)])
def test_near_the_object_the_expert_aligns_where_it_is_instead_of_climbing_back(
        near: float, funnel: float, offset_y: float, climbs: bool) -> None:
    """Within ``approach_near`` of the object, or within the funnel's cone over it, a human taking over
    aligns at the height the policy came down to; outside both it climbs to carry height first."""
    task, robot = load_task("pick_and_place"), load_robot("sim")
    cell = SimCell(task, robot)
    run_episode(cell, lambda c, step: _down_beside_the_duck(c, offset_y) if step < 25 else np.zeros(7), 0, 0)
    expert = make_expert(dataclasses.replace(task, expert={**task.expert, "approach_near": near,
                                                           "approach_funnel": funnel}))
    goal, _, _ = expert.goal(cell)  # a fresh expert: the approach phase, as a human taking over here
    z = cell.tcp_pose()[0][2]
    assert z < task.target.xyz[2] + 0.03  # the policy did come down near the duck
    assert bool(goal[2] > z + 0.03) is climbs


@pytest.mark.parametrize(("stall_ticks", "taken_over"), [(30, True), (0, False)])
def test_a_policy_hovering_where_the_expert_would_move_on_is_taken_over(stall_ticks: int, taken_over: bool) -> None:
    """Over the duck but never turning to its yaw: close to the expert's goal (no drift to see), yet its
    phase never advances; the stall rule takes over, and without it nobody does."""
    task, robot = load_task("pick_and_place"), load_robot("sim")
    task = dataclasses.replace(task, expert={**task.expert, "human_stall_ticks": stall_ticks})
    _, expert = expert_policy(task, robot)
    human, supervised = supervised_policy(task, robot, lambda cell, step: expert(cell, step) * [1, 1, 1, 1, 1, 0, 1])
    cell = SimCell(task, robot)
    episode = next(e for e in range(10) if abs(_duck_yaw(cell, e)) > 0.15)
    run_episode(cell, supervised, 0, episode)
    assert (human.takeovers > 0) is taken_over


def _duck_yaw(cell: SimCell, episode: int) -> float:
    cell.reset(0, episode)
    return float(cell.privileged()["objects"]["duck_0"]["yaw"])


@pytest.mark.parametrize(("approach_xy", "taken_over"), [(False, True), (True, False)])
def test_a_policy_coming_down_early_toward_the_object_is_judged_by_its_xy_way_with_human_approach_xy(
        approach_xy: bool, taken_over: bool) -> None:
    """Closing in on the duck while coming down to it (not the expert's way, over at carry height first):
    judged on the whole way to the expert's goal it makes no progress and is taken over; with
    ``human_approach_xy`` it is closing in, and left alone."""
    task = load_task("pick_and_place")
    task = dataclasses.replace(task, expert={**task.expert, "human_approach_xy": approach_xy})
    first = _first_takeover(task, lambda cell, step, _human: _down_beside_the_duck(cell, 0.0) * 0.3, ticks=25)
    assert bool(first) is taken_over, first


def _first_takeover(task, policy, ticks: int) -> str:
    """Why the simulated human first took over ``policy`` (``policy(cell, step, human)``) within its first
    ``ticks`` control ticks ("": it did not); the arm holds after them."""
    human = None
    human, supervised = supervised_policy(task, load_robot("sim"), lambda cell, step: policy(cell, step, human))
    reasons = []

    def first_ticks(cell: SimCell, step: int) -> np.ndarray:
        action = supervised(cell, step)
        reasons.append(human.reason)
        return action if step < ticks else np.zeros(7)

    run_episode(SimCell(task, load_robot("sim")), first_ticks, 0, 0)
    return next((r for r in reasons[:ticks] if r), "")


def test_with_human_progress_fraction_closing_in_slowly_near_the_goal_is_not_drifting() -> None:
    task = load_task("pick_and_place")
    strict = SimulatedHuman(make_expert(task))
    lenient = SimulatedHuman(make_expert(dataclasses.replace(
        task, expert={**task.expert, "human_progress_fraction": 0.5})))
    assert strict.required_progress(0.02) == strict.required_progress(0.5) == strict.min_progress == 0.01
    assert lenient.required_progress(0.5) == 0.01  # far away: as strict
    assert lenient.required_progress(0.025) == pytest.approx(0.005)  # half the 1 cm beyond the 1.5 cm tolerance
    assert lenient.required_progress(0.01) == 0.0  # (within the tolerance it is never judged drifting anyway)


@pytest.mark.parametrize(("fraction", "taken_over"), [(0.0, True), (0.5, False)])
def test_a_policy_closing_in_slowly_is_left_alone_with_human_progress_fraction(
        fraction: float, taken_over: bool) -> None:
    """A policy moving 3% of the way to the expert's goal a tick (in the air, over the duck) slows down as it
    nears it: from about 3.5 cm out it comes less than 1 cm closer in 10 ticks, drifting by
    ``human_min_progress`` alone; with ``human_progress_fraction`` 0.5 it is closing in, and left alone."""
    task = load_task("pick_and_place")
    task = dataclasses.replace(task, expert={**task.expert, "human_progress_fraction": fraction})

    def slow(cell: SimCell, step: int, human: SimulatedHuman) -> np.ndarray:
        xyz, quat = cell.tcp_pose()
        goal = human.expert.last_goal if step else xyz
        return np.append(action_toward(xyz, quat, xyz + 0.03 * (goal - xyz), quat, cell.task_cfg.action)[:6], -1.0)

    first = _first_takeover(task, slow, ticks=60)
    assert bool(first) is taken_over, first
    assert not first or first.startswith("phase approach")


def test_with_human_phase_ticks_the_way_is_the_policys_own_and_only_a_step_not_reached_in_time_is_taken_over(
) -> None:
    """Coming down early beside the duck is taken over within 25 ticks by the distance rule; judged by the
    task's steps it is left alone until its step (reaching the duck) has taken 30 ticks. A policy that
    does nothing is taken over at the 30th tick."""
    task = load_task("pick_and_place")
    by_step = dataclasses.replace(task, expert={**task.expert, "human_phase_ticks": 30})
    down_early = lambda cell, step, _human: _down_beside_the_duck(cell, 0.0) * 0.3  # noqa: E731
    assert _first_takeover(task, down_early, ticks=25)
    assert not _first_takeover(by_step, down_early, ticks=25)
    idle = lambda cell, step, _human: np.zeros(7)  # noqa: E731
    assert not _first_takeover(by_step, idle, ticks=29)
    assert _first_takeover(by_step, idle, ticks=30) == "phase approach, 30 ticks in it (limit 30)"


@pytest.mark.parametrize("order", ["listed", "nearest"])
def test_the_expert_goes_for_the_listed_or_the_nearest_object_first(order: str) -> None:
    task, robot = load_task("table_cleanup"), load_robot("sim")
    task = dataclasses.replace(task, expert={**task.expert, "object_order": order})
    cell = SimCell(task, robot)
    for seed in range(20):  # a scene whose nearest object is not the first listed
        cell.reset(seed, 0)
        objects, xyz = cell.privileged()["objects"], cell.tcp_pose()[0]
        nearest = min(objects, key=lambda n: float(np.linalg.norm((objects[n]["pos"] - xyz)[:2])))
        if nearest != next(iter(objects)):
            break
    else:
        raise AssertionError("every scene's nearest object was the first listed")
    expert = make_expert(task)
    expert.act(cell)
    want = next(iter(objects)) if order == "listed" else nearest
    np.testing.assert_allclose(expert.last_goal[:2], objects[want]["pos"][:2], atol=2e-3)
    with pytest.raises(ValueError, match=r"table_cleanup: expert\.object_order must be listed or nearest"):
        make_expert(dataclasses.replace(task, expert={**task.expert, "object_order": "random"}))
