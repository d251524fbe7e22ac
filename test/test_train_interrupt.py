"""Ctrl-C on ``user-rl train``: the graph stops, the summary is printed and the exit status is 130.

rclpy's own SIGINT handler may shut the context down before Python raises ``KeyboardInterrupt``
(seen once by hand: an ``ExternalShutdownException`` traceback and no summary); the runner ends the
same way on both. Which one a signal meets depends on where the process is at that moment, so this
test covers the behaviour, not that race.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path


def test_ctrl_c_stops_the_graph_with_a_summary(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "user_learner.cli.main", "train", "--task", "peg_insertion", "--algo", "sac",
           "--steps", "100000", "--log-dir", str(tmp_path / "run")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        actor_log = tmp_path / "run" / "ros" / "robot_0.actor.log"
        while time.monotonic() < deadline and "episode " not in (actor_log.read_text() if actor_log.exists() else ""):
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err, err[-2000:]
    assert "train task=peg_insertion algo=sac" in out and "episodes=" in out


def test_episodes_stops_training_after_that_many_episodes(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "user_learner.cli.main", "train", "--task", "peg_insertion", "--algo", "sac",
           "--steps", "100000", "--episodes", "2", "--log-dir", str(tmp_path / "run")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = re.search(r"train task=peg_insertion algo=sac .* episodes=(\d+) steps=(\d+)", proc.stdout)
    assert summary, proc.stdout[-2000:]
    assert 2 <= int(summary.group(1)) <= 3 and int(summary.group(2)) <= 3 * 100  # (episodes end at 100 steps)


def test_a_timed_out_run_leaves_each_nodes_stacks_in_its_log(tmp_path: Path) -> None:
    """``--timeout``: exit status 1, the nodes' last lines on stderr, and the stacks of every node's threads
    (where each waited: what a stalled graph needs to be diagnosed) at the end of its log."""
    cmd = [sys.executable, "-m", "user_learner.cli.main", "train", "--task", "peg_insertion", "--algo", "sac",
           "--steps", "100000", "--timeout", "20", "--log-dir", str(tmp_path / "run")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "timed out after 20 s" in proc.stderr and "stacks" in proc.stderr, proc.stderr[-2000:]
    logs = {p.name: p.read_text(errors="replace") for p in (tmp_path / "run" / "ros").glob("*.log")}
    assert len(logs) == 6, sorted(logs)  # sim cell, arm bridge, teleop, actor, episode driver, learner
    for name, text in logs.items():
        assert "(most recent call first)" in text, (name, text[-1500:])
    assert 'sim_cell.py", line' in logs["robot_0.sim_cell.log"]
