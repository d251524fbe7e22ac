"""Stopping a node (Ctrl-C or SIGTERM) runs its ``drain()`` hook while it can still talk: what it
publishes there reaches a subscriber, acknowledged, before ``shutdown()`` and exit code 0. The
stand-in is its own process over real DDS (as the actor, whose last transitions go out this way)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import driver_standins as standins
import pytest
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

STANDIN = Path(__file__).with_name("draining_node_standin.py")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_drain_runs_while_the_node_can_still_publish(signum: int) -> None:
    topic = f"/drain_test_{os.getpid()}_{int(signum)}"
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
        standins.wait_until(lambda: received, 20.0, "the stand-in's first message")  # (matched both ways)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
        standins.wait_until(lambda: received[-1] == "last words", 5.0, "the message published in drain()")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        harness.close()
    assert proc.returncode == 0, err
    assert out.splitlines() == ["drained ok=True acked=True", "shut down"], out + err
    assert received[-1] == "last words" and set(received[:-1]) == {"alive"}, received
