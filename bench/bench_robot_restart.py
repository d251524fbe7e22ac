"""A robot killed and restarted while two robots feed one learner: how soon it runs the newest weights again,
and whether the other robot and the learner notice.

    python bench/bench_robot_restart.py [--robots sim,sim_arx] [--repeats 5] [--down-s 5] [--log-dir D]

Starts the peg-insertion graph (SAC with small networks, publishing every 5 updates; the sim robots under
one clock, lockstep, top speed 2x) and waits until both robots run learned weights. Then, ``--repeats``
times: ``kill -9`` robot_1's actor, leave it down ``--down-s`` seconds, start it again, and read from its
log the wall time from ``actor ready`` to its first ``loaded policy weights`` (the latched message).
Baseline, same run, after each restart: a new process that subscribes to the weights topic, from its
subscription to its first message (DDS discovery and the latched delivery alone). Beside it: robot_0's
steps per second and the learner's updates per second with robot_1 down against the same span with
both up just before (a ratio near 1: neither was held up; the lockstep cell stops waiting for the killed
actor when its DDS liveliness lease, 1 s, runs out). Prints a table (median of repeats).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from config_overrides import config_overrides

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test"))
from graph_watch import log_stamp  # (the several-robots test's log reader)

FAST_SAC = {
    "sac.batch_size": 32, "sac.num_critics": 2, "sac.critic_hidden_dims": [64, 64], "policy.hidden_dims": [64, 64],
    "utd": 0.5, "min_buffer": 30, "publish_every": 5, "checkpoint_every": 1000,
}
FRESH_SUBSCRIBER = """
import time, rclpy
from user_interfaces.msg import PolicyWeights
from user_robot.contracts import WEIGHTS_TOPIC
from user_robot.nodes.qos import WEIGHTS
rclpy.init()
node = rclpy.create_node("bench_fresh_subscriber")
got = []
start = time.time()
node.create_subscription(PolicyWeights, WEIGHTS_TOPIC, lambda m: got.append(time.time()), WEIGHTS)
while not got and time.time() - start < 60:
    rclpy.spin_once(node, timeout_sec=0.02)
print(got[0] - start if got else "nan")
"""


class Counts:
    """Transitions per robot and the learner's newest update count, from the graph's topics."""

    def __init__(self, node) -> None:
        from user_interfaces.msg import LearnerStatus, Transition
        from user_robot.contracts import TRANSITIONS_TOPIC
        from user_robot.nodes.qos import STATUS, TRANSITIONS

        self.steps: dict[str, int] = {}
        self.learned: set[str] = set()  # robots that sent a step acted on learned weights
        self.updates = 0
        node.create_subscription(Transition, TRANSITIONS_TOPIC, self._on_step, TRANSITIONS)
        node.create_subscription(LearnerStatus, "/user/learner_status", self._on_status, STATUS)

    def _on_step(self, msg) -> None:
        self.steps[msg.robot_id] = self.steps.get(msg.robot_id, 0) + 1
        if msg.policy_version > 0:
            self.learned.add(msg.robot_id)

    def _on_status(self, msg) -> None:
        self.updates = msg.updates

    def rates(self, seconds: float) -> tuple[float, float]:
        """robot_0's steps/s and the learner's updates/s over the next ``seconds``."""
        steps, updates = self.steps.get("robot_0", 0), self.updates
        time.sleep(seconds)
        return (self.steps.get("robot_0", 0) - steps) / seconds, (self.updates - updates) / seconds


def wait(what: str, condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--robots", default="sim,sim_arx")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--down-s", type=float, default=5.0)
    parser.add_argument("--log-dir", default="", help="keep the nodes' logs here (default: a temporary directory)")
    args = parser.parse_args()

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rich.console import Console
    from rich.table import Table

    from user_learner.cli.runner import GraphProcesses
    from user_learner.graph import build_graph

    os.environ.setdefault("ROS_DOMAIN_ID", str(os.getpid() % 100 + 1))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    with tempfile.TemporaryDirectory(prefix="bench_restart_") as tmp, config_overrides(Path(tmp), {
        "algorithms/sac": FAST_SAC,
    }):
        logs = Path(args.log_dir or tmp) / "logs"
        specs = build_graph("peg_insertion", robots=args.robots, algo="sac", real_time_factor=2.0, log_dir=str(logs))
        procs = GraphProcesses(specs, logs)
        rclpy.init()
        node = rclpy.create_node("bench_robot_restart")
        counts = Counts(node)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        threading.Thread(target=executor.spin, daemon=True).start()
        procs.start()
        rows: list[tuple[float, float, float, float, float, float]] = []
        try:
            wait("both robots on learned weights", lambda: {"robot_0", "robot_1"} <= counts.learned, 600)
            actor = procs.find("actor", "robot_1")
            for i in range(args.repeats):
                up_steps, up_updates = counts.rates(args.down_s)
                actor.popen.kill()
                actor.popen.wait()
                down_steps, down_updates = counts.rates(args.down_s)
                actor.start()

                def since_ready(starts: int = i + 2) -> str:
                    """The actor's log after its ``starts``-th ``actor ready`` (empty before it)."""
                    parts = actor.log_path.read_text().split("actor ready")
                    return parts[starts] if len(parts) > starts else ""

                wait("the restarted actor's weights", lambda: "loaded policy weights" in since_ready(), 120)
                lines = actor.log_path.read_text().splitlines()
                ready = [log_stamp(line) for line in lines if "actor ready" in line][-1]
                loaded = next(log_stamp(line) for line in lines
                              if "loaded policy weights" in line and log_stamp(line) >= ready)
                fresh = float(subprocess.run([sys.executable, "-c", FRESH_SUBSCRIBER], capture_output=True, text=True,
                                             check=True).stdout.strip())
                rows.append((loaded - ready, fresh, up_steps, down_steps, up_updates, down_updates))
                print(f"restart {i + 1}: weights {loaded - ready:.2f} s after ready (fresh subscriber {fresh:.2f} s); "
                      f"robot_0 {up_steps:.1f} -> {down_steps:.1f} steps/s, learner {up_updates:.1f} -> "
                      f"{down_updates:.1f} updates/s", flush=True)
        finally:
            procs.stop()
            executor.shutdown()
            node.destroy_node()
            rclpy.try_shutdown()

    def med(k: int) -> float:
        return statistics.median(r[k] for r in rows)

    table = Table(title=f"robot_1's actor killed and restarted, {len(rows)} times ({args.robots}; median)")
    for column in ("measure", "value", "baseline", "ratio"):
        table.add_column(column)
    table.add_row("restarted actor: ready -> newest weights loaded (s)", f"{med(0):.2f}",
                  f"{med(1):.2f} (new subscriber process)", f"{med(0) / med(1):.2f}x")
    table.add_row("robot_0 steps/s while robot_1 is down", f"{med(3):.1f}", f"{med(2):.1f} (both up)",
                  f"{med(3) / med(2):.2f}x")
    table.add_row("learner updates/s while robot_1 is down", f"{med(5):.1f}", f"{med(4):.1f} (both up)",
                  f"{med(5) / max(med(4), 1e-9):.2f}x")
    Console().print(table)


if __name__ == "__main__":
    main()
