"""Lockstep vs free-running sim under load: does the expert still succeed, is anything stale?

    python bench/bench_lockstep.py [--task pick_and_place] [--episodes 10] [--burners 4] [--repeats 1]

Runs the scripted expert through the real topics (sim cell, arm bridge, teleop, actor, episode
driver as separate processes, sim x2) with the sim free-running and in lockstep, each on a quiet
machine and beside ``--burners`` CPU-bound processes, and prints per case: expert success,
episodes truncated for stale input, the share of observations taken at their own tick's sim time
(the transition's stamp on the control period's grid), and environment steps per wall second
(median of repeats), with ratios against free-running on the quiet machine.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import time
from pathlib import Path

from user_learner.bags.images import stamp_ns
from user_learner.cli.sim import run_episodes
from user_robot.contracts import END_STALE_INPUT, TRANSITIONS_TOPIC
from user_robot.task_config import load_task


def burn(stop: multiprocessing.Event) -> None:
    """Keep one core busy until ``stop``."""
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x += 1


def observation_stamps(stamps: list[int]):
    """A ``setup_monitor`` that appends each transition's observation stamp (ns) to ``stamps``."""

    def setup(node) -> None:
        from user_interfaces.msg import Transition
        from user_robot.nodes.qos import TRANSITIONS

        node.create_subscription(Transition, TRANSITIONS_TOPIC, lambda m: stamps.append(stamp_ns(m.header)),
                                 TRANSITIONS)

    return setup


def run_case(task: str, episodes: int, lockstep: bool, burners: int) -> dict[str, float]:
    period_ns = round(1e9 / load_task(task).control_rate_hz)
    stamps: list[int] = []
    stop = multiprocessing.Event()
    procs = [multiprocessing.Process(target=burn, args=(stop,), daemon=True) for _ in range(burners)]
    for p in procs:
        p.start()
    try:
        with tempfile.TemporaryDirectory(prefix="bench_lockstep_") as tmp:
            start = time.monotonic()
            log, code = run_episodes(task, "sim", episodes, expert="always", lockstep=lockstep, log_dir=Path(tmp),
                                     setup_monitor=observation_stamps(stamps))
            wall = time.monotonic() - start
    finally:
        stop.set()
        for p in procs:
            p.join()
    if code != 0:
        raise SystemExit(f"run failed (exit {code})")
    results = log.results
    return {
        "success": sum(r.success for r in results) / len(results),
        "stale": sum(r.end_reason == END_STALE_INPUT for r in results),
        "on_tick": sum(t % period_ns == 0 for t in stamps) / max(len(stamps), 1),
        "steps_per_s": log.steps / wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="pick_and_place")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--burners", type=int, default=4, help="CPU-bound processes beside the graph")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    os.environ.setdefault("ROS_DOMAIN_ID", str(os.getpid() % 100 + 1))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"

    from rich.console import Console
    from rich.table import Table

    cases = [(mode, load) for load in (0, args.burners) for mode in (False, True)]
    rows = {}
    for lockstep, burners in cases:
        runs = [run_case(args.task, args.episodes, lockstep, burners) for _ in range(args.repeats)]
        rows[(lockstep, burners)] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    base = rows[(False, 0)]["steps_per_s"]
    table = Table(title=f"{args.task}: scripted expert through the topics, {args.episodes} episodes, sim x2, "
                        f"median of {args.repeats}")
    for col in ("sim", "busy processes beside", "expert success", "stale truncations", "observed at their tick",
                "env steps/s", "vs free, quiet"):
        table.add_column(col)
    for (lockstep, burners), r in rows.items():
        table.add_row("lockstep" if lockstep else "free-running", str(burners), f"{r['success']:.2f}",
                      f"{r['stale']:.0f}", f"{r['on_tick']:.1%}", f"{r['steps_per_s']:.1f}",
                      f"{r['steps_per_s'] / base:.2f}x")
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
