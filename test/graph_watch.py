"""Watch a running task graph from a test: its topics, its processes, and a report when it fails."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

from user_learner.cli.runner import GraphProcesses
from user_learner.graph import build_graph

FAST_SAC = {
    "sac": {"batch_size": 32, "num_critics": 2, "critic_hidden_dims": [64, 64]},
    "policy": {"hidden_dims": [64, 64]},
    "utd": 0.5,
    "min_buffer": 30,
    "publish_every": 5,
    "publish_part_mb": 0.01,  # (its ~40 kB of weights travel in parts)
    "checkpoint_every": 10,
}
"""A small SAC recipe (``algorithms/sac`` override) that publishes and checkpoints often: CI-sized graphs."""


class Watcher:
    """Counts what the graph says on its topics, from the test process.

    With ``keep`` it also keeps every Transition message and every weights message by version.
    """

    def __init__(self, keep: bool = False) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        from user_interfaces.msg import EpisodeResult, LearnerStatus, PolicyWeights, Transition
        from user_robot.nodes.qos import STATUS, TRANSITIONS, WEIGHTS

        rclpy.init()
        self.node = rclpy.create_node("pipeline_test_watcher")
        self.transitions: dict[str, int] = {}
        self.results: list = []
        self.status = None
        self.statuses: list = []
        self.keep = keep
        self.steps: list = []
        self.weights: dict[int, object] = {}
        self.node.create_subscription(Transition, "/user/transitions", self._on_transition, TRANSITIONS)
        self.node.create_subscription(EpisodeResult, "/robot_0/episode_result", self.results.append, STATUS)
        self.node.create_subscription(LearnerStatus, "/user/learner_status", self._on_status, STATUS)
        self._weights_pub = None
        if keep:
            from user_policies.weights_codec import WeightsParts

            parts = WeightsParts()  # (large payloads come in parts: kept once whole)

            def keep_weights(msg) -> None:
                whole = parts.add(msg)
                if whole is not None:
                    self.weights.setdefault(whole.version, whole)

            self.node.create_subscription(PolicyWeights, "/user/policy_weights", keep_weights, WEIGHTS)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    @property
    def weights_pub(self):
        """A publisher on the weights topic, made on first use (an actor waits for weights while one exists)."""
        if self._weights_pub is None:
            from user_interfaces.msg import PolicyWeights
            from user_robot.nodes.qos import WEIGHTS

            self._weights_pub = self.node.create_publisher(PolicyWeights, "/user/policy_weights", WEIGHTS)
        return self._weights_pub

    def _on_transition(self, msg) -> None:
        self.transitions[msg.episode_id] = self.transitions.get(msg.episode_id, 0) + 1
        if self.keep:
            self.steps.append(msg)

    def _on_status(self, msg) -> None:
        self.status = msg
        self.statuses.append(msg)

    def versions_used(self) -> set[int]:
        return {v for r in list(self.results) for v in r.policy_versions if v > 0}

    def wait(self, what: str, condition, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.2)

    def wait_quiet(self, seconds: float = 5.0, timeout: float = 120) -> None:
        """Wait until every episode seen has its result and no transition has come for ``seconds``: after
        the episode driver stops, an episode the actor accepted just before still runs to its end."""
        self.wait("the robot side to go quiet", unchanged_for(seconds, lambda: (
            sum(self.transitions.values()), all(n in {r.episode_id for r in self.results} for n in self.transitions),
        )), timeout)

    def close(self) -> None:
        import rclpy

        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown()


def log_stamp(line: str) -> float:
    """The wall-clock stamp of a ROS log line (``[INFO] [<seconds>] [node]: ...``)."""
    return float(re.search(r"\] \[(\d+\.\d+)\] \[", line).group(1))


def unchanged_for(seconds: float, value: Callable[[], object]) -> Callable[[], bool]:
    """A condition true once ``value()`` has returned the same thing for ``seconds`` (and, for a tuple
    ending in a flag, the flag is set)."""
    seen: dict = {}

    def condition() -> bool:
        now, current = time.monotonic(), value()
        if seen.get("value") != current:
            seen.update(value=current, since=now)
        ready = current[-1] if isinstance(current, tuple) else True
        return bool(ready) and now - seen["since"] >= seconds

    return condition


def start_graph(tmp_path: Path, **options) -> GraphProcesses:
    """The peg-insertion graph (SAC unless ``algo`` is given, sim x2) with its logs under ``tmp_path``."""
    options = {"algo": "sac", "real_time_factor": 2.0, **options}
    specs = build_graph("peg_insertion", log_dir=str(tmp_path / "logs"), **options)
    procs = GraphProcesses(specs, tmp_path / "logs")
    procs.start()
    return procs


def failure_report(procs: GraphProcesses) -> str:
    """Each node's last log lines, then the stacks of its threads (where a stalled one waits)."""
    tails = "\n".join(f"--- {n.label}\n{n.tail(25)}" for n in procs.nodes)
    stacks = "\n".join(f"--- {label}: stacks\n{text}" for label, text in procs.stacks().items())
    return f"{tails}\n{stacks}"
