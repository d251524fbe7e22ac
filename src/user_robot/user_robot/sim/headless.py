"""Headless episodes (pure Python, no ROS): the sim cell behind the arm bridge's safety filter.

Each control tick: the policy (scripted expert through the virtual SpaceMouse and the teleop
mapping, or uniform random actions) gives a normalized action; the bridge's
:class:`~user_robot.safety.SafetyFilter` applies it to the measured pose and clips it to the
workspace box and step limits; the gripper request goes through the bridge's debouncer; the cell
runs one control period. Episodes end on ``success_hold_steps`` successful ticks or at
``episode_length``. Used by the core tests and ``bench/bench_sim.py``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np

from user_robot.action_mapping import GRIPPER_CLOSE
from user_robot.robot_config import RobotConfig, load_robot
from user_robot.safety import GripperDebouncer, Pose, SafetyCounters, SafetyFilter
from user_robot.sim.cell import SimCell
from user_robot.sim.expert import Expert, SimulatedHuman, VirtualSpaceMouse, make_expert
from user_robot.task_config import TaskConfig, load_task
from user_robot.teleop_core import TeleopCore

Policy = Callable[[SimCell, int], np.ndarray]
"""(cell, step) -> normalized action in [-1, 1]^dims."""


@dataclasses.dataclass(frozen=True)
class EpisodeResult:
    """One headless episode."""

    success: bool
    steps: int
    wall_s: float


def _spacemouse(task: TaskConfig, robot: RobotConfig) -> Callable[[int, tuple[np.ndarray, int] | None], np.ndarray]:
    """An expert's (action, gripper intent) → the normalized action, through the virtual SpaceMouse and
    teleop mapping at control tick ``step``; ``None`` lets go of the device."""
    mouse = VirtualSpaceMouse(robot.teleop)
    teleop = TeleopCore(robot.teleop, task.action.dims)

    def command(step: int, expert: tuple[np.ndarray, int] | None) -> np.ndarray:
        if step == 0:
            mouse.reset()
        now = step / task.control_rate_hz
        action, grip = expert if expert is not None else (np.zeros(task.action.dims), 0)
        teleop.twist(mouse.twist(action), now)
        teleop.joy(mouse.buttons(grip))
        return teleop.tick(now).action.astype(np.float64)

    return command


def expert_policy(task: TaskConfig, robot: RobotConfig) -> tuple[Expert, Policy]:
    """The task's scripted expert as a policy, through the virtual SpaceMouse and teleop mapping."""
    expert = make_expert(task)
    spacemouse = _spacemouse(task, robot)

    def policy(cell: SimCell, step: int) -> np.ndarray:
        if step == 0:
            expert.reset()
        return spacemouse(step, expert.act(cell))

    return expert, policy


def supervised_policy(task: TaskConfig, robot: RobotConfig, policy: Policy) -> tuple[SimulatedHuman, Policy]:
    """``policy`` watched by the simulated human, who takes over through the SpaceMouse when it goes wrong
    (its ``takeovers`` and ``driven`` count what it did)."""
    human = SimulatedHuman(make_expert(task))
    spacemouse = _spacemouse(task, robot)

    def supervised(cell: SimCell, step: int) -> np.ndarray:
        if step == 0:
            human.expert.reset()
            human.reset()
        command = human.tick(cell)
        if command is None:
            spacemouse(step, None)  # (the device reads zero)
            return policy(cell, step)
        return spacemouse(step, command)

    return human, supervised


def random_policy(dims: int, seed: int) -> Policy:
    """Uniform random actions (an actor without weights), seeded."""
    rng = np.random.default_rng([seed, 3])
    return lambda cell, step: rng.uniform(-1.0, 1.0, size=dims)


def run_episode(cell: SimCell, policy: Policy, seed: int, episode: int, render: tuple[str, ...] = ()) -> EpisodeResult:
    """Reset the cell for (seed, episode) and run one episode; ``render`` cameras are drawn every tick."""
    task, robot = cell.task_cfg, cell.robot_cfg
    start = time.perf_counter()
    cell.reset(seed, episode)
    safety = SafetyFilter(task.target, task.workspace, robot.safety)
    safety.hold(Pose.of(*cell.tcp_pose()))
    debouncer = GripperDebouncer(task.action.gripper_debounce_s, SafetyCounters())
    dt = 1.0 / task.control_rate_hz
    size = task.observation.image_size
    held = 0
    for step in range(task.episode_length):
        action = policy(cell, step)
        pose, grip = safety.action(action, Pose.of(*cell.tcp_pose()), task.action)
        cell.set_equilibrium(pose.xyz, pose.quat)
        change = debouncer.request(grip, step * dt)
        if change is not None:
            cell.set_gripper(0.0 if change == GRIPPER_CLOSE else cell.max_width)
        cell.step(dt)
        for camera in render:
            cell.render(camera, *size)
        held = held + 1 if cell.success() else 0
        if held >= task.reward.success_hold_steps:
            return EpisodeResult(True, step + 1, time.perf_counter() - start)
    return EpisodeResult(False, task.episode_length, time.perf_counter() - start)


def success_rate(task: str, robot: str = "sim", policy: str = "expert", episodes: int = 20, seed: int = 0) -> float:
    """Fraction of successful headless episodes of ``policy`` (``expert`` or ``random``)."""
    task_cfg, robot_cfg = load_task(task), load_robot(robot)
    cell = SimCell(task_cfg, robot_cfg)
    pol = expert_policy(task_cfg, robot_cfg)[1] if policy == "expert" else random_policy(task_cfg.action.dims, seed)
    results = [run_episode(cell, pol, seed, ep) for ep in range(episodes)]
    return sum(r.success for r in results) / episodes


def main() -> None:
    """``python -m user_robot.sim.headless --task peg_insertion [--robot sim] [--policy expert] ...``."""
    import argparse

    parser = argparse.ArgumentParser(description="Headless sim episodes (no ROS); prints success_rate.")
    parser.add_argument("--task", required=True)
    parser.add_argument("--robot", default="sim", help="robot config (sim, sim_arx)")
    parser.add_argument("--policy", default="expert", choices=("expert", "random"))
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    rate = success_rate(args.task, args.robot, args.policy, args.episodes, args.seed)
    print(f"headless task={args.task} robot={args.robot} policy={args.policy} episodes={args.episodes} "
          f"wall_s={time.perf_counter() - start:.1f} success_rate={rate:.3f}")


if __name__ == "__main__":
    main()
