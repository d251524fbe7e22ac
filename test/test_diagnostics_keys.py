"""/diagnostics from the real graph (sim cell, arm bridge, actor, learner) carries the documented keys."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from user_robot.diagnostics import ACTOR_KEYS, ARM_BRIDGE_KEYS, LEARNER_KEYS

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTED = {"robot_0/arm_bridge": ARM_BRIDGE_KEYS, "robot_0/actor": ACTOR_KEYS, "learner": LEARNER_KEYS}


def test_docs_table_lists_exactly_the_key_sets() -> None:
    text = (ROOT / "docs" / "ros_workflows.md").read_text()
    rows = re.findall(r"^\| (arm bridge|actor|learner) \| `(\w+)` \|", text, flags=re.MULTILINE)
    table: dict[str, list[str]] = {}
    for node, key in rows:
        table.setdefault(node, []).append(key)
    assert table == {"arm bridge": list(ARM_BRIDGE_KEYS), "actor": list(ACTOR_KEYS), "learner": list(LEARNER_KEYS)}


@pytest.mark.slow
def test_running_graph_publishes_documented_keys(tmp_path: Path) -> None:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray

    from user_learner.cli.runner import GraphProcesses
    from user_learner.graph import build_graph

    graph = GraphProcesses(build_graph("peg_insertion", algo="sac", log_dir=str(tmp_path / "logs")), tmp_path)
    seen: dict[str, set[str]] = {}
    rclpy.init()
    node = rclpy.create_node("diagnostics_probe")
    node.create_subscription(
        DiagnosticArray,
        "/diagnostics",
        lambda msg: [seen.setdefault(s.name, set()).update(kv.key for kv in s.values) for s in msg.status],
        10,
    )
    graph.start()
    try:
        deadline = time.monotonic() + 90.0
        while time.monotonic() < deadline and not all(name in seen for name in DOCUMENTED):
            rclpy.spin_once(node, timeout_sec=0.2)
            dead = graph.dead()
            assert not dead, "\n\n".join(f"{n.label} exited:\n{n.tail()}" for n in dead)
    finally:
        graph.stop()
        node.destroy_node()
        rclpy.try_shutdown()
    for name, keys in DOCUMENTED.items():
        assert name in seen, f"no /diagnostics status {name!r} (seen: {sorted(seen)})"
        assert set(keys) <= seen[name], f"{name} lacks {sorted(set(keys) - seen[name])}"
