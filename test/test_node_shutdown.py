"""Stopping a node (Ctrl-C or SIGTERM) runs its ``drain()`` hook while it can still talk: what it
publishes there reaches a subscriber, acknowledged, before ``shutdown()``, the ``atexit`` handlers (the
process then ends without the interpreter's teardown, its unflushed output still out) and exit code 0.
The stand-in is its own process over real DDS (as the actor, whose last transitions go out this way)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import driver_standins as standins
import pytest
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from user_robot.nodes.stacks import STACKS_SIGNAL

STANDIN = Path(__file__).with_name("draining_node_standin.py")


@contextlib.contextmanager
def draining_standin(topic: str) -> Iterator[tuple[subprocess.Popen, list[str]]]:
    """The stand-in as its own process, once a probe here has received its first "alive" (matched both ways);
    yields the process and the messages received."""
    harness = standins.Harness()
    received: list[str] = []
    proc = subprocess.Popen([sys.executable, str(STANDIN), topic], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "RCUTILS_LOGGING_BUFFERED_STREAM": "0"})
    try:
        probe = Node("drain_probe", context=harness.context)  # (added to the executor once it has its subscription)
        probe.create_subscription(String, topic, lambda m: received.append(m.data),
                                QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        harness.add(probe)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "standin ready"
        standins.wait_until(lambda: received, 20.0, "the stand-in's first message")
        yield proc, received
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        harness.close()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_drain_runs_while_the_node_can_still_publish(signum: int) -> None:
    with draining_standin(f"/drain_test_{os.getpid()}_{int(signum)}") as (proc, received):
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
        standins.wait_until(lambda: received[-1] == "last words", 5.0, "the message published in drain()")
    assert proc.returncode == 0, err
    assert out.splitlines() == ["drained ok=True acked=True", "shut down", "atexit ran"], out + err
    assert received[-1] == "last words" and set(received[:-1]) == {"alive"}, received


def test_a_node_asked_for_its_stacks_writes_every_threads_and_runs_on() -> None:
    """``STACKS_SIGNAL`` (what a timed-out ``user-rl`` run sends each node): the stacks of the main thread
    (waiting in ``run``) and of the executor's thread go to stderr, and the node goes on publishing."""
    with draining_standin(f"/stacks_test_{os.getpid()}") as (proc, received):
        proc.send_signal(STACKS_SIGNAL)
        seen = len(received)
        standins.wait_until(lambda: len(received) >= seen + 5, 20.0, "messages after the stacks were written")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out.splitlines() == ["drained ok=True acked=True", "shut down", "atexit ran"], out + err
    stacks = err.split("(most recent call first):")
    assert len(stacks) >= 3, err  # (the main thread and the spin thread at least)
    assert 'runtime.py", line' in err and " in run" in err and " in _spin" in err, err


SLOW_STOP = '''
import signal, sys, time
from pathlib import Path

def main() -> None:
    """Takes 3 s to stop (a learner finishing its update and checkpointing), then says so in a file."""
    stopping = []
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
    print("ready", flush=True)
    while not stopping:
        time.sleep(0.05)
    time.sleep(3.0)
    Path(sys.argv[1]).write_text("stopped")
'''


def test_each_node_gets_its_own_time_to_stop_and_the_learner_enough_to_checkpoint(tmp_path: Path, monkeypatch) -> None:
    from user_learner.cli.runner import GraphProcesses
    from user_learner.graph import NodeSpec, build_graph

    package = tmp_path / "slowstop" / "nodes"
    package.mkdir(parents=True)
    (package.parent / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "standin.py").write_text(SLOW_STOP)
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    patient, hasty = (NodeSpec("slowstop", "standin", name, arguments=(str(tmp_path / name),), stop_s=stop_s)
                      for name, stop_s in (("patient", 30.0), ("hasty", 1.0)))
    procs = GraphProcesses([patient, hasty], tmp_path / "logs")
    procs.start()
    for node in procs.nodes:
        while "ready" not in node.log_path.read_text():
            assert node.alive(), node.tail()
    procs.stop()
    assert (tmp_path / "patient").read_text() == "stopped" and procs.nodes[0].popen.returncode == 0
    assert not (tmp_path / "hasty").exists() and procs.nodes[1].popen.returncode == -signal.SIGKILL
    (learner,) = [s for s in build_graph("peg_insertion", side="learner") if s.executable == "learner"]
    assert learner.stop_s >= 60  # (a VLA update on a loaded CPU takes seconds; its checkpoint, more)


def test_a_graph_asks_its_nodes_for_their_stacks_and_they_run_on(tmp_path: Path) -> None:
    """``GraphProcesses.stacks`` (what a timed-out run and a failing graph test call): every running node writes
    its threads' stacks, returned per node, and goes on until it is stopped as usual."""
    from user_learner.cli.runner import GraphProcesses
    from user_learner.graph import build_graph

    (teleop,) = [s for s in build_graph("peg_insertion", side="robot") if s.executable == "teleop"]
    procs = GraphProcesses([teleop], tmp_path / "logs")
    procs.start()
    (node,) = procs.nodes
    try:
        standins.wait_until(lambda: "teleop for robot_0" in node.log_path.read_text(), 60.0, "the teleop node")
        stacks = procs.stacks()
        assert node.alive(), node.tail()
    finally:
        procs.stop()
    assert list(stacks) == ["robot_0/teleop"] and node.popen.returncode == 0, node.tail()
    text = stacks["robot_0/teleop"]
    # (the main thread at least: the executor's may not have started when the node's first line is out)
    assert "(most recent call first)" in text and 'runtime.py", line' in text and " in run" in text, text
