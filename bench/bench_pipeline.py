"""Asynchronous vs synchronous actor–learner pipeline on the sim cell, same machine, same run.

    python bench/bench_pipeline.py [--task peg_insertion] [--algo sac] [--steps 1500] [--repeats 1]
                                   [--split none|cores|netns]

Runs the full graph (sim cell, arm bridge, teleop, actor, episode driver, learner; separate
processes over DDS) once per pipeline and reports the two figures the RLinf-USER paper gives:
episode generation time (wall s per episode) and training time (wall s per learner update),
each over the whole run, with sync/async ratios (the paper's CNN+SAC: 1.55x and 4.61x).
In sync mode every episode waits until the learner has trained on it and published new weights;
in async mode the robot never waits and the learner trains continuously (``utd: 0`` = as fast as
it can; with the config's ``utd`` it is capped by the data).

``--split`` runs the robot side and the learner side as two ``user-rl train --side`` processes, as
on two machines: ``cores`` pins the robot side to the first CPU core and the learner to the others
(separate resources, as a robot PC and a GPU server); ``netns`` puts them in two network namespaces
joined by a veth pair (UDP only; needs root). ``none`` (default) is one graph sharing every core.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from config_overrides import algorithm_overrides, parse_sets

from user_learner.cli.runner import run_graph
from user_learner.graph import algorithm_choices, build_graph
from user_robot.config_loader import CONFIG_DIR_ENV

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test"))
from veth_namespaces import veth_namespaces  # (the split-deployment test's namespaces)


def run_once(task: str, algo: str, pipeline: str, steps: int, rtf: float, sets: dict[str, Any]) -> dict[str, float]:
    """One training run with ``sets`` config overrides; returns wall time, episodes, updates, per-unit figures."""
    with tempfile.TemporaryDirectory(prefix=f"bench_{pipeline}_") as tmp, algorithm_overrides(Path(tmp), algo, sets):
        specs = build_graph(task, algo=algo, pipeline=pipeline, real_time_factor=rtf, log_dir=str(Path(tmp) / "logs"))
        start = time.monotonic()
        log, code = run_graph(
            specs, Path(tmp) / "logs", robots=1, done=lambda log: log.steps >= steps, total=steps, unit="steps"
        )
        wall = time.monotonic() - start
    if code != 0:
        raise SystemExit(f"{pipeline} run failed (exit {code})")
    updates = log.learner.updates if log.learner is not None else 0
    episodes = len(log.results)
    return {
        "wall_s": wall,
        "episodes": episodes,
        "steps": log.steps,
        "updates": updates,
        "s_per_episode": wall / max(episodes, 1),
        "s_per_step": wall / max(log.steps, 1),
        "s_per_update": wall / max(updates, 1),
    }


def run_split(task: str, algo: str, pipeline: str, steps: int, rtf: float, sets: dict[str, Any],
              split: str) -> dict[str, float]:
    """The same run as two ``user-rl train --side`` processes (see the module docstring): wall time until the
    robot side has taken ``steps`` steps; episodes from its summary, updates from the learner's."""
    common = ["-m", "user_learner.cli.main", "train", "--task", task, "--algo", algo, "--pipeline", pipeline,
              "--real-time-factor", str(rtf), "--steps", str(steps), "--timeout", "3600"]
    cores = sorted(os.sched_getaffinity(0))
    if split == "cores" and len(cores) < 2:
        raise SystemExit("--split cores needs at least 2 CPU cores")
    pins = {"robot": set(cores[:1]), "learner": set(cores[1:])} if split == "cores" else {}
    env = dict(os.environ)
    if split == "netns":
        env.update(FASTDDS_BUILTIN_TRANSPORTS="UDPv4", ROS_AUTOMATIC_DISCOVERY_RANGE="SUBNET")
    hosts = veth_namespaces() if split == "netns" else contextlib.nullcontext(None)
    with tempfile.TemporaryDirectory(prefix=f"bench_{pipeline}_") as tmp, algorithm_overrides(Path(tmp), algo, sets), \
            hosts as namespaces:
        env.update({k: v for k, v in os.environ.items() if k == CONFIG_DIR_ENV})  # (the overridden config)

        def start(side: str) -> subprocess.Popen:
            prefix = ["ip", "netns", "exec", namespaces[side == "robot"]] if namespaces else []
            pin = pins.get(side)
            return subprocess.Popen([*prefix, sys.executable, *common, "--side", side, "--log-dir", f"{tmp}/{side}"],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
                                    preexec_fn=(lambda: os.sched_setaffinity(0, pin)) if pin else None)

        begin = time.monotonic()
        learner, robot = start("learner"), start("robot")
        robot_out, _ = robot.communicate()
        wall = time.monotonic() - begin
        learner_out, _ = learner.communicate(timeout=300)
    if robot.returncode or learner.returncode:
        raise SystemExit(f"{pipeline} split run failed (robot exit {robot.returncode}, learner {learner.returncode})")
    r = dict(re.findall(r"(\w+)=(\S+)", robot_out.strip().splitlines()[-1]))
    lr = dict(re.findall(r"(\w+)=(\S+)", learner_out.strip().splitlines()[-1]))
    episodes, done_steps, updates = int(r["episodes"]), int(r["steps"]), int(lr["updates"])
    return {
        "wall_s": wall,
        "episodes": episodes,
        "steps": done_steps,
        "updates": updates,
        "s_per_episode": wall / max(episodes, 1),
        "s_per_step": wall / max(done_steps, 1),
        "s_per_update": wall / max(updates, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="peg_insertion")
    parser.add_argument("--algo", default="sac", choices=algorithm_choices())
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--real-time-factor", type=float, default=2.0)
    parser.add_argument("--async-utd", type=float, default=0.0, help="async learner's utd (0 = unlimited)")
    parser.add_argument("--split", default="none", choices=("none", "cores", "netns"),
                        help="robot side and learner as two processes: on cores of their own, or in two namespaces")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of config/algorithms/<algo>.yaml for both runs, e.g. sac.num_critics=2")
    args = parser.parse_args()
    sets = parse_sets(args.set)
    os.environ.setdefault("ROS_DOMAIN_ID", str(os.getpid() % 100 + 1))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"

    from rich.console import Console
    from rich.table import Table

    results: dict[str, list[dict[str, float]]] = {"sync": [], "async": []}
    def one(pipeline: str, sets: dict[str, Any]) -> dict[str, float]:
        if args.split == "none":
            return run_once(args.task, args.algo, pipeline, args.steps, args.real_time_factor, sets)
        return run_split(args.task, args.algo, pipeline, args.steps, args.real_time_factor, sets, args.split)

    for _ in range(args.repeats):
        results["sync"].append(one("sync", sets))
        results["async"].append(one("async", {**sets, "utd": args.async_utd}))
    med = {p: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for p, rs in results.items()}
    changed = "".join(f", {k}={v}" for k, v in sets.items())
    split = {"none": "", "cores": ", robot side and learner on separate cores",
             "netns": ", across two network namespaces"}
    title = (f"{args.task}, {args.algo}{changed}, state obs, {args.steps} steps, sim x{args.real_time_factor}"
             f"{split[args.split]}")
    table = Table(title=title)
    for col in ("pipeline", "wall s", "episodes", "updates", "s/episode", "s/step", "s/update"):
        table.add_column(col)
    for name in ("sync", "async"):
        m = med[name]
        table.add_row(
            name,
            f"{m['wall_s']:.0f}",
            f"{m['episodes']:.0f}",
            f"{m['updates']:.0f}",
            f"{m['s_per_episode']:.2f}",
            f"{m['s_per_step']:.3f}",
            f"{m['s_per_update']:.4f}",
        )
    gen = med["sync"]["s_per_episode"] / med["async"]["s_per_episode"]
    per_step = med["sync"]["s_per_step"] / med["async"]["s_per_step"]
    train = med["sync"]["s_per_update"] / med["async"]["s_per_update"]
    table.add_row("sync/async", "", "", "", f"{gen:.2f}x", f"{per_step:.2f}x", f"{train:.2f}x")
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
