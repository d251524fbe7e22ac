"""How long the sim graph takes to stop, with the node processes' full interpreter teardown and without it.

    python bench/bench_graph_stop.py [--repeats 3] [--run-s 25]

Starts the peg-insertion graph (SAC, state observations: sim cell, arm bridge, teleop, actor, episode driver
and learner, each its own process), lets it run ``--run-s`` seconds, then stops it as ``user-rl`` does
(``GraphProcesses.stop``: the actor first, which drains its last transitions, then the rest) and times how
long until every node has exited, and until each of the actor and the learner has. Baseline, in the same
run: the same with ``USER_FULL_TEARDOWN=1``, where each node process goes through CPython's whole teardown
(final garbage collection, module and C++ static destructors) instead of leaving once it has shut down
(:mod:`user_robot.nodes.process_exit`). Prints a table (median of repeats) with ratios against it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

from user_learner.cli.runner import GraphProcesses
from user_learner.graph import build_graph
from user_robot.nodes.process_exit import FULL_TEARDOWN_ENV

MODES = {"full teardown (before)": "1", "leave after shutdown (ours)": "0"}


def stop_times(run_s: float, log_dir: Path) -> dict[str, float]:
    """Seconds from the stop until every node, the actor and the learner had exited."""
    graph = GraphProcesses(build_graph("peg_insertion", algo="sac", log_dir=str(log_dir / "logs")), log_dir)
    graph.start()
    try:
        time.sleep(run_s)
        if graph.dead():
            raise SystemExit(f"a node died before the stop: {[n.label for n in graph.dead()]} (logs: {log_dir})")
        exited: dict[str, float] = {}
        start = time.monotonic()

        def watch() -> None:
            while len(exited) < len(graph.nodes):
                for node in graph.nodes:
                    if node.label not in exited and not node.alive():
                        exited[node.label] = time.monotonic() - start
                time.sleep(0.02)

        watcher = threading.Thread(target=watch)
        watcher.start()
    finally:
        graph.stop()
    watcher.join()
    actor = next(label for label in exited if label.endswith("actor"))
    return {"all nodes": max(exited.values()), "actor": exited[actor], "learner": exited["learner"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--run-s", type=float, default=25.0, help="how long the graph runs before each stop")
    args = parser.parse_args()
    os.environ.setdefault("ROS_DOMAIN_ID", str(os.getpid() % 100 + 1))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory(prefix="bench_graph_stop_") as tmp:
        for repeat in range(args.repeats):  # (modes interleaved: a change of load reaches both)
            for mode, value in MODES.items():
                os.environ[FULL_TEARDOWN_ENV] = value
                runs[mode].append(stop_times(args.run_s, Path(tmp) / f"{repeat}_{value}"))
                print(f"repeat {repeat + 1} {mode}: {runs[mode][-1]}", flush=True)
    baseline = next(iter(MODES))
    columns = ("all nodes", "actor", "learner")
    medians = {mode: {c: statistics.median(r[c] for r in runs[mode]) for c in columns} for mode in MODES}
    print("\n| graph stop | " + " | ".join(f"{c} exited, s" for c in columns) + " | all nodes vs before |")
    print("|---|" + "---|" * (len(columns) + 1))
    for mode in MODES:
        cells = [f"{medians[mode][c]:.2f}" for c in columns]
        ratio = medians[baseline]["all nodes"] / medians[mode]["all nodes"]
        print(f"| {mode} | " + " | ".join(cells) + f" | {ratio:.2f}x faster |")
    print(f"(median of {args.repeats} stops after {args.run_s:.0f} s of running each)")


if __name__ == "__main__":
    main()
