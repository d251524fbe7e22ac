"""More robots, one learner: wall-clock time to 0.8 success with one robot against several, same recipe, same run.

    python bench/bench_parallel_robots.py [--task peg_insertion] [--algo rlpd] [--robots sim 2xsim]
                                          [--real-time-factor 1] [--max-steps 15000] [--demos 20]
                                          [--each] [--set-task KEY=V ...] [--pipeline async]
                                          [--tasks peg_insertion,charger_plugging]

Records ``--demos`` scripted-expert demos once for each task and kind of robot (through the real
topics; a setting learns from those of its robots), then for each ``--robots`` setting in turn trains
from scratch with the whole graph (sim cells under one clock, in lockstep, at ``--real-time-factor``:
1 is real time, as real robots run) until the last 20 episodes of all robots together reach 0.8
success (with ``--each``: every robot over its own last 20), or ``--max-steps``
environment steps. Prints, per setting: the wall time and environment steps to 0.8, the success of each
robot over its own last 20 episodes and its own steps when they first reached 0.8, the learner's
median update time (its TensorBoard ``time/update_s``: how much the cells and actors beside it slow
it), and the wall time's and the steps' ratios to the first setting's
(the bars: two robots at <= 0.6x one robot's wall time; a Panda and an ARX on one policy at <= 1.2x
one embodiment's steps, ``--robots sim sim,sim_arx --each --pipeline sync --set-task
observation.state=[tcp_pose,tcp_vel,gripper,wrench,embodiment] --set-task
'observation.embodiments=[franka_panda,arx5]'``; two tasks on one policy at >= 0.8 each,
``--robots 2xsim --tasks peg_insertion,charger_plugging --each``). ``--set-task`` changes the task YAML
for every setting; ``--tasks`` gives robot i the i-th task, demos recorded for each.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from config_overrides import config_overrides, parse_sets
from tensorboard_scalars import median_update_ms

from user_learner.cli.collect import record_demos
from user_learner.cli.runner import run_graph
from user_learner.cli.train import samples_demos
from user_learner.graph import algorithm_choices, build_graph, options, robot_names, robot_tasks, run_tasks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="peg_insertion")
    parser.add_argument("--algo", default="rlpd", choices=algorithm_choices())
    parser.add_argument("--robots", nargs="+", default=["sim", "2xsim"], help="settings of --robots to compare")
    parser.add_argument("--real-time-factor", type=float, default=1.0)
    parser.add_argument("--max-steps", type=int, default=15000, help="give up on a setting after this many steps")
    parser.add_argument("--demos", type=int, default=20)
    parser.add_argument("--target", type=float, default=0.8, help="success over the last 20 episodes to reach")
    parser.add_argument("--pipeline", default="async", choices=("async", "sync"),
                        help="sync: the same updates per step in every setting (steps comparable whatever the load)")
    parser.add_argument("--each", action="store_true", help="every robot must reach --target over its own last 20")
    parser.add_argument("--set-task", action="append", default=[], metavar="KEY=V", help="task YAML key")
    parser.add_argument("--tasks", default="", help="one policy for several tasks: robot i does the i-th "
                        "(comma-separated; the graph option)")
    parser.add_argument("--log-dir", default="", help="keep logs here (default: a temporary directory)")
    args = parser.parse_args()
    os.environ.setdefault("ROS_DOMAIN_ID", str(os.getpid() % 100 + 1))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"

    from rich.console import Console
    from rich.table import Table

    def reached(log, count: int) -> bool:
        if args.each:
            rates = log.robot_success_rates().values()
            return len(rates) == count and all(n >= 20 and rate >= args.target for n, rate in rates)
        return len(log.results) >= 20 and log.success_rate() >= args.target

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_parallel_") as tmp, \
            config_overrides(Path(tmp), {f"tasks/{args.task}": parse_sets(args.set_task)}):
        root = Path(args.log_dir or tmp)
        identity = "_of_" + "+".join(run_tasks(options(tasks=args.tasks))) if args.tasks else ""

        def demos_for(setting: str) -> tuple[str, ...]:
            """``--demos`` expert demos of each (task, robot config) of the setting, recorded once."""
            opts = options(robots=setting, tasks=args.tasks)
            bags = []
            for task, robot in dict.fromkeys(zip(robot_tasks(args.task, opts), robot_names(opts), strict=True)):
                bag = root / f"demos_{task}_{robot}{identity}"
                if not bag.exists():
                    record_demos(task, robot, args.demos, bag, seed=10_000, log_dir=root, tasks=args.tasks)
                bags.append(str(bag))
            return tuple(bags)

        for setting in args.robots:
            count = len(robot_names(options(robots=setting)))
            demos = demos_for(setting) if samples_demos(args.algo) else ()
            specs = build_graph(args.task, robots=setting, algo=args.algo, real_time_factor=args.real_time_factor,
                                log_dir=str(root / setting / "train"), demos=demos, pipeline=args.pipeline,
                                tasks=args.tasks)
            start = time.monotonic()
            log, code = run_graph(specs, root / setting, robots=count,
                                  done=lambda log: reached(log, count) or log.steps >= args.max_steps,  # noqa: B023
                                  total=args.max_steps, unit="steps")
            wall = time.monotonic() - start
            if code != 0:
                raise SystemExit(f"training with --robots {setting} failed (exit {code})")
            done = reached(log, count)
            own = ", ".join(f"{robot} {steps if steps is not None else '-'}"
                            for robot, steps in log.robot_steps_to(args.target).items())
            rows.append((setting, wall if done else None, log.steps if done else None, len(log.results),
                         log.robot_lines(), own, median_update_ms(root / setting / "train")))
            print(f"--robots {setting}: {'reached' if done else 'did not reach'} {args.target} in "
                  f"{wall / 60:.1f} min, {log.steps} steps; " + "; ".join(log.robot_lines()), flush=True)

    table = Table(title=f"{args.tasks or args.task}, {args.algo}, sim x{args.real_time_factor}: wall time to "
                        f"{args.target} success over the last 20 episodes "
                        f"({'each robot' if args.each else 'all robots'})")
    for column in ("robots", "wall time", "env steps", "episodes", "per robot (its last 20)",
                   "each robot's own steps to it (first)", "median update (updates)", "wall vs first",
                   "steps vs first"):
        table.add_column(column)
    first, first_steps = rows[0][1], rows[0][2]
    for setting, wall, steps, episodes, lines, own, update in rows:
        per_robot = "\n".join(" ".join(w for w in line.split() if w.startswith(("robot=", "success_rate=")))
                              for line in lines)
        ratio = f"{wall / first:.2f}x" if wall and first else "-"
        table.add_row(setting, f"{wall / 60:.1f} min" if wall else f"not reached ({args.max_steps} steps)",
                      str(steps or "-"), str(episodes), per_robot, own, update, ratio,
                      f"{steps / first_steps:.2f}x" if steps and first_steps else "-")
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
