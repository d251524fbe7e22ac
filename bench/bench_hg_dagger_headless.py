"""HG-DAgger without ROS, for tuning in minutes what ``bench_hg_dagger.py`` measures through the graph.

    python bench/bench_hg_dagger_headless.py [--task pick_and_place] [--demos 3] [--episodes 100]
                                             [--utd 4] [--eval-every 20] [--eval-episodes 20]
                                             [--privileged] [--obs pixels] [--set hg_dagger.KEY=V]
                                             [--set-task KEY=V]

One process steps what the graph runs in several: the sim cell behind the arm bridge's safety filter
and gripper debouncer, the scripted expert through the virtual SpaceMouse and teleop mapping for the
demos, the simulated human watching the policy (:mod:`user_robot.sim.headless`), and the learner's
own pure core (:class:`~user_learner.learner_core.LearnerCore`: the same buffers, sampler, algorithm
and policy as the learner node). Each episode's steps go to the core as the actor would send them;
after it, the core makes ``--utd`` updates per step. The policy acts with its mean (first action of a
chunk). ``--lag`` models the graph's path delays: an action decided at one tick is executed, and
recorded with the observation, ``lag`` ticks later. What the graph has and this does not: the
teleop's hold time, weights published every ``publish_every`` updates (here every episode). So its figures
are indications for choosing settings, written as "headless" in BENCHMARKS.md, never in place of the
graph's ``user-rl eval``.

Prints the clone's and every ``--eval-every`` episodes' success over ``--eval-episodes`` evaluation
episodes (seed ``--eval-seed``, the policy alone), with the training episodes' success with the human,
the human's share of their steps and its takeovers by the expert's phase they came in.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from config_overrides import config_overrides, parse_sets, task_changes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="pick_and_place")
    parser.add_argument("--demos", type=int, default=3)
    parser.add_argument("--pretrain-updates", type=int, default=2000)
    parser.add_argument("--episodes", type=int, default=100, help="HG-DAgger episodes with the simulated human")
    parser.add_argument("--log-takeovers", action="store_true", help="print each takeover's reason as it happens")
    parser.add_argument("--utd", type=float, default=4.0, help="updates per step after each episode")
    parser.add_argument("--eval-every", type=int, default=20)
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--eval-seed", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lag", type=int, default=0, help="control ticks between deciding an action and executing "
                        "it (recorded with the observation it executes at), as the graph's topics add")
    parser.add_argument("--aligned-labels", action="store_true", help="with --lag: record each action with the "
                        "observation it was decided on (as if the path delay were known), not the one it executes at")
    parser.add_argument("--privileged", action="store_true", help="sim-only object_state key (object poses)")
    parser.add_argument("--obs", choices=("state", "pixels"), default="state", help="pixels: the task's cameras "
                        "too, rendered and cropped as the sim cell and the actor do")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=V", help="hg_dagger.yaml key")
    parser.add_argument("--set-task", action="append", default=[], metavar="KEY=V", help="task YAML key")
    args = parser.parse_args()
    torch.set_num_threads(1)
    changes = {f"tasks/{args.task}": task_changes(args.task, args.set_task, args.privileged),
               "algorithms/hg_dagger": parse_sets(args.set)}
    with tempfile.TemporaryDirectory(prefix="bench_hgd_headless_") as tmp, config_overrides(Path(tmp), changes):
        run(args, Path(tmp))


def run(args: argparse.Namespace, tmp: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    from user_learner.episode_assembler import StepRecord
    from user_learner.learner_core import LearnerCore
    from user_policies.observation import ArmSample, StateEncoder, present_mask
    from user_robot import camera_core
    from user_robot.contracts import END_SUCCESS, END_TIME_LIMIT
    from user_robot.robot_config import load_robot
    from user_robot.sim import headless
    from user_robot.sim.cell import SimCell
    from user_robot.task_config import load_task

    task, robot = load_task(args.task), load_robot("sim")
    cell = SimCell(task, robot)
    encoder = StateEncoder(task, robot.gripper_max_width, robot.embodiment, present_mask(task, robot))
    cameras = task.observation.cameras if args.obs == "pixels" else ()
    core = LearnerCore(task, "hg_dagger", args.obs, [robot.embodiment], tmp / "learner", seed=args.seed,
                       device="cpu", tensorboard=False)
    policy = core.algorithm.policy

    executed: list[np.ndarray] = []  # the actions executed in the running episode (``last_action``)

    def observe(c: SimCell) -> dict[str, np.ndarray]:
        xyz, quat = c.tcp_pose()
        velocity, wrench = c.tcp_velocity(), c.wrench()
        arm = ArmSample(xyz, quat, velocity[:3], velocity[3:], wrench[:3], wrench[3:], c.gripper_width(), 0.0)
        images = {name: camera_core.observation(c.render(name, *robot.cameras[name].source_size), "rgb8",
                                                robot.cameras[name].crop, task.observation.image_size)
                  for name in cameras}
        return {"state": encoder.encode(arm, c.object_state(), executed[-1] if executed else None), **images}

    ticks: list[dict[str, np.ndarray]] = []  # the observation of the tick being decided (observed once a tick)

    def act(c: SimCell, step: int) -> np.ndarray:
        return policy.act(ticks[-1], deterministic=True)[0].astype(np.float64)

    def episode(name: str, drive, seed: int, index: int, human=None) -> tuple[list[StepRecord], bool, int]:
        """Run one episode: its steps as the actor sends them (intervened: the human drove), success, steps."""
        records: list[StepRecord] = []
        decided: list[tuple[np.ndarray, bool, dict]] = []  # (action, the human's, obs) by the tick decided at

        def recorded(c: SimCell, step: int) -> np.ndarray:
            if step == 0:
                executed.clear()
            obs, before, taken = observe(c), (human.driven if human else 0), (human.takeovers if human else 0)
            ticks[:] = [obs]
            decided.append((drive(c, step), human is None or human.driven > before, obs))
            if human is not None and human.takeovers > taken:
                takeovers[human.phase] += 1
                if args.log_takeovers:
                    console.print(f"{name} tick {step}: {human.reason}")
            action, intervened, seen = decided[step - args.lag] if step >= args.lag else (
                np.zeros(task.action.dims), False, obs)
            label_obs = seen if args.aligned_labels else obs
            records.append(StepRecord("robot_0", name, step, label_obs, action.astype(np.float32), 0.0,
                                      intervened=intervened))
            executed.append(action)
            return action

        result = headless.run_episode(cell, recorded, seed, index)
        end = END_SUCCESS if result.success else END_TIME_LIMIT
        records.append(StepRecord("robot_0", name, result.steps, observe(cell), np.zeros(0, np.float32),
                                  float(result.success), terminated=result.success,
                                  truncated=not result.success, end_reason=end))
        return records, result.success, result.steps

    def evaluate() -> int:
        policy.eval()
        return sum(episode("eval", act, args.eval_seed, i)[1] for i in range(args.eval_episodes))

    start = time.monotonic()
    _, expert = headless.expert_policy(task, robot)
    for i in range(args.demos):  # scripted-expert demos into the demo buffer, as `user-rl collect` + `--demos`
        core.add_demos(episode(f"demo-{i}", expert, 500, i)[0])
    rows = []
    for _ in range(args.pretrain_updates):
        core.update()
    console = Console()

    def add(row: tuple[str, ...]) -> None:  # each row as it is measured (a run takes tens of minutes)
        rows.append(row)
        console.print(" | ".join(row))

    takeovers: Counter[str] = Counter()  # the expert's phase at each takeover, over the window
    add(("clone", "-", "-", "-", f"{evaluate()}/{args.eval_episodes}", f"{time.monotonic() - start:.0f}"))
    window: list[tuple[bool, int, int]] = []
    for i in range(args.episodes):
        human, supervised = headless.supervised_policy(task, robot, act)
        records, success, steps = episode(f"hgd-{i}", supervised, 1000 + args.seed, i, human)
        for record in records:
            core.ingest(record)
        window.append((success, steps, sum(r.intervened for r in records[:-1])))
        for _ in range(int(args.utd * steps)):
            core.update()
        if (i + 1) % args.eval_every == 0 or i + 1 == args.episodes:
            ok, steps, driven = (sum(x) for x in zip(*window, strict=True))
            phases = ", ".join(f"{phase} {n}" for phase, n in takeovers.most_common())
            add((f"{i + 1 - len(window) + 1}-{i + 1}", f"{ok}/{len(window)}", f"{100 * driven / steps:.0f}%", phases,
                 f"{evaluate()}/{args.eval_episodes}", f"{time.monotonic() - start:.0f}"))
            window, takeovers = [], Counter()
    table = Table(title=f"HG-DAgger headless: {args.task}, {args.demos} demos, utd {args.utd}, "
                        f"eval seed {args.eval_seed}" + (", privileged object_state" if args.privileged else ""))
    for column in ("episodes", "training: success with the human", "human share", "takeovers by the expert's phase",
                   "eval (policy alone)", "wall s"):
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    console.print(table)


if __name__ == "__main__":
    main()
