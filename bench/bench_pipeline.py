"""Asynchronous vs synchronous actor–learner pipeline on the sim cell, same machine, same run.

    python bench/bench_pipeline.py [--task peg_insertion] [--algo sac] [--steps 1500] [--repeats 1]

Runs the full graph (sim cell, arm bridge, teleop, actor, episode driver, learner; separate
processes over DDS) once per pipeline and reports the two figures the RLinf-USER paper gives:
episode generation time (wall s per episode) and training time (wall s per learner update),
each over the whole run, with sync/async ratios (the paper's CNN+SAC: 1.55x and 4.61x).
In sync mode every episode waits until the learner has trained on it and published new weights;
in async mode the robot never waits and the learner trains continuously (``utd: 0`` = as fast as
it can; with the config's ``utd`` it is capped by the data).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from config_overrides import algorithm_overrides, parse_sets

from user_learner.cli.runner import run_graph
from user_learner.graph import algorithm_choices, build_graph


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="peg_insertion")
    parser.add_argument("--algo", default="sac", choices=algorithm_choices())
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--real-time-factor", type=float, default=2.0)
    parser.add_argument("--async-utd", type=float, default=0.0, help="async learner's utd (0 = unlimited)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of config/algorithms/<algo>.yaml for both runs, e.g. sac.num_critics=2")
    args = parser.parse_args()
    sets = parse_sets(args.set)
    os.environ.setdefault("ROS_DOMAIN_ID", str(os.getpid() % 100 + 1))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"

    from rich.console import Console
    from rich.table import Table

    results: dict[str, list[dict[str, float]]] = {"sync": [], "async": []}
    for _ in range(args.repeats):
        results["sync"].append(run_once(args.task, args.algo, "sync", args.steps, args.real_time_factor, sets))
        results["async"].append(
            run_once(args.task, args.algo, "async", args.steps, args.real_time_factor, {**sets, "utd": args.async_utd})
        )
    med = {p: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for p, rs in results.items()}
    changed = "".join(f", {k}={v}" for k, v in sets.items())
    title = f"{args.task}, {args.algo}{changed}, state obs, {args.steps} steps, sim x{args.real_time_factor}"
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
