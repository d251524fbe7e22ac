"""A node's log in a log dir used again: the run's reports quote this run's lines only."""

from __future__ import annotations

from pathlib import Path

from user_learner.cli.runner import NodeProcess
from user_learner.graph import NodeSpec


def test_tail_leaves_out_an_earlier_runs_lines(tmp_path: Path) -> None:
    spec = NodeSpec("user_policies", "actor", "actor", namespace="robot_0")
    earlier = NodeProcess(spec, tmp_path)
    earlier.log_path.write_text("".join(f"earlier run line {i}\n" for i in range(30)) + "[FATAL] earlier failure\n")
    assert earlier.tail(2) == "earlier run line 29\n[FATAL] earlier failure"
    node = NodeProcess(spec, tmp_path)  # the next run, same log dir
    assert node.log_path == earlier.log_path and node.tail() == ""
    with open(node.log_path, "a") as log:
        log.write("this run's first line\n[FATAL] this run's failure\n")
    assert node.tail() == "this run's first line\n[FATAL] this run's failure"
    assert "earlier" in node.log_path.read_text()  # (kept in the file)
