"""Sim cell throughput: control steps per second, state-only and with two rendered cameras.

Runs full-length headless episodes (the same loop as the tests: the bridge's safety filter, the
impedance controller at 500 Hz of sim time, resets included) with uniformly random actions, so
every episode runs to its length, and reports control steps per wall-clock second, the real-time
factor at the task's control rate and physics steps per second; once state-only and once with
both cameras (wrist, front) rendered at the observation size every control step.

    python bench/bench_sim.py                      # every task, Panda, state-only and 2 × 128×128
    python bench/bench_sim.py --tasks peg_insertion --robot sim_arx --episodes 10
"""

from __future__ import annotations

import argparse
import time

from user_robot.robot_config import load_robot
from user_robot.sim.cell import SimCell
from user_robot.sim.headless import random_policy, run_episode
from user_robot.sim.tasks import TASKS
from user_robot.task_config import load_task


def bench(task: str, robot: str, episodes: int, cameras: tuple[str, ...]) -> dict[str, float]:
    """Run ``episodes`` random-policy episodes; return steps/s, real-time factor and physics steps/s."""
    task_cfg, robot_cfg = load_task(task), load_robot(robot)
    cell = SimCell(task_cfg, robot_cfg)
    policy = random_policy(task_cfg.action.dims, seed=0)
    if cameras:
        for camera in cameras:  # create the GL contexts outside the timing
            cell.render(camera, *task_cfg.observation.image_size)
    steps = 0
    start = time.perf_counter()
    for episode in range(episodes):
        result = run_episode(cell, policy, seed=0, episode=episode, render=cameras)
        steps += result.steps
    wall = time.perf_counter() - start
    cell.close()
    rate = steps / wall
    return {
        "steps_per_s": rate,
        "real_time_factor": rate / task_cfg.control_rate_hz,
        "physics_hz": rate * round(1.0 / task_cfg.control_rate_hz / cell.physics_dt),
        "steps": steps,
    }


def main() -> None:
    """Print one markdown table row per task and mode."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="*", default=sorted(TASKS))
    parser.add_argument("--robot", default="sim")
    parser.add_argument("--episodes", type=int, default=3)
    args = parser.parse_args()
    print("| task | robot | cameras | control steps/s | × real time | physics steps/s |")
    print("| --- | --- | --- | ---: | ---: | ---: |")
    for task in args.tasks:
        size = load_task(task).observation.image_size
        for cameras in ((), ("wrist", "front")):
            r = bench(task, args.robot, args.episodes, cameras)
            label = f"2 × {size[0]}×{size[1]}" if cameras else "none"
            print(f"| {task} | {args.robot} | {label} | {r['steps_per_s']:.0f} | {r['real_time_factor']:.1f} | "
                  f"{r['physics_hz']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
