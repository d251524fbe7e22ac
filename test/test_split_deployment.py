"""The robot PC and the GPU server as two network namespaces joined by a veth pair.

``user-rl train --side robot`` (sim cell, arm bridge, teleop, actor, episode driver) runs in one
namespace and ``user-rl train --side learner`` in the other; they find each other by DDS discovery
over the veth link only (UDP: shared memory between them is switched off, as between two machines).
The robot side trains for a few hundred steps, the learner side stops once it has received the
transitions of those steps, and weights come back (a robot side that stops first waits, bounded, for
the learner to acknowledge its last transitions: ``Actor.drain``). Needs root and ``ip netns`` (as CI runs);
skipped with the reason elsewhere.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from graph_watch import FAST_SAC

from user_robot.config_loader import CONFIG_DIR_ENV, write_config_copy

STEPS = 300


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


@pytest.fixture
def two_hosts():
    """Two network namespaces, 10.251.0.1 (learner) and 10.251.0.2 (robot), joined by a veth pair."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 to make network namespaces")
    tag = str(os.getpid() % 100000)
    learner, robot, a, b = f"user_l{tag}", f"user_r{tag}", f"uv{tag}a", f"uv{tag}b"
    try:
        ip("netns", "add", learner)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot make a network namespace here: {exc.stderr.strip()}")
    try:
        ip("netns", "add", robot)
        ip("link", "add", a, "type", "veth", "peer", "name", b)
        for ns, dev, addr in ((learner, a, "10.251.0.1/24"), (robot, b, "10.251.0.2/24")):
            ip("link", "set", dev, "netns", ns)
            ip("-n", ns, "addr", "add", addr, "dev", dev)
            ip("-n", ns, "link", "set", dev, "up")
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", ns, "route", "add", "224.0.0.0/4", "dev", dev)  # DDS discovery multicast over the link
        yield learner, robot
    finally:
        for ns in (learner, robot):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


def side(ns: str, which: str, tmp_path: Path, env: dict[str, str]) -> subprocess.Popen:
    cmd = ["ip", "netns", "exec", ns, sys.executable, "-m", "user_learner.cli.main", "train", "--task",
           "peg_insertion", "--algo", "sac", "--side", which, "--log-dir", str(tmp_path / which), "--timeout", "400",
           "--steps", str(STEPS)]  # the robot side: environment steps; the learner side: transitions received
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def figures(line: str) -> dict[str, str]:
    return dict(re.findall(r"(\w+)=(\S+)", line))


@pytest.mark.slow
def test_robot_side_trains_against_a_learner_in_another_network_namespace(two_hosts, tmp_path) -> None:
    learner_ns, robot_ns = two_hosts
    config = write_config_copy(tmp_path / "config", {"algorithms/sac": FAST_SAC})
    env = {**os.environ, CONFIG_DIR_ENV: str(config), "FASTDDS_BUILTIN_TRANSPORTS": "UDPv4",
           "ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET"}  # (the suite's own runs stay on localhost)
    learner = side(learner_ns, "learner", tmp_path, env)
    robot = side(robot_ns, "robot", tmp_path, env)
    try:
        robot_out, robot_err = robot.communicate(timeout=500)
        learner_out, learner_err = learner.communicate(timeout=120)
    finally:
        for proc in (robot, learner):  # (a failed run: stop each side as Ctrl-C does, which stops its nodes)
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.communicate(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
    report = f"robot:\n{robot_out}{robot_err[-3000:]}\nlearner:\n{learner_out}{learner_err[-3000:]}"
    assert robot.returncode == 0 and learner.returncode == 0, report
    robot_line, learner_line = robot_out.strip().splitlines()[-1], learner_out.strip().splitlines()[-1]
    r, lr = figures(robot_line), figures(learner_line)
    assert r["side"] == "robot" and lr["side"] == "learner", report
    assert int(r["steps"]) >= STEPS and int(r["weight_versions"]) >= 1, report  # weights came back
    assert int(lr["transitions_received"]) >= STEPS, report  # the transitions of the robot's steps arrived
    assert "learner side: sees robot /robot_0/actor" in learner_err, report
    assert "robot side: sees the learner /learner" in robot_err, report
