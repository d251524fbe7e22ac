"""The robot PC and the GPU server as two network namespaces joined by a veth pair.

``user-rl train --side robot`` (sim cell, arm bridge, teleop, actor, episode driver) runs in one
namespace and ``user-rl train --side learner`` in the other; they find each other by DDS discovery
over the veth link only (UDP: shared memory between them is switched off, as between two machines).
The robot side trains for a few hundred steps, the learner side stops once it has received the
transitions of those steps, and weights come back (a robot side that stops first waits, bounded, for
the learner to acknowledge its last transitions: ``Actor.drain``). Needs root and ``ip netns`` (as CI runs);
skipped with the reason elsewhere. Twice: with DDS's multicast discovery over the link, and through
a discovery server (``user-rl discovery-server`` in the learner's namespace, both sides
``--discovery-server``) with automatic discovery kept to each host (``ROS_AUTOMATIC_DISCOVERY_RANGE=
LOCALHOST``, no multicast route: as on a network that drops multicast), where the two halves find
each other only through the server (without it they never do; checked by hand).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from graph_watch import FAST_SAC
from veth_namespaces import LEARNER_ADDRESS, NamespacesUnavailableError, veth_namespaces

from user_robot.config_loader import CONFIG_DIR_ENV, write_config_copy

STEPS = 300


@pytest.fixture(params=["multicast", "discovery_server"])
def two_hosts(request):
    """The learner's and the robot's namespaces (routing multicast, or not for the discovery-server case);
    yields (learner ns, robot ns, discovery mode)."""
    try:
        with veth_namespaces(multicast=request.param == "multicast") as (learner, robot):
            yield learner, robot, request.param
    except NamespacesUnavailableError as exc:
        pytest.skip(str(exc))


def side(ns: str, which: str, tmp_path: Path, env: dict[str, str], *extra: str) -> subprocess.Popen:
    cmd = ["ip", "netns", "exec", ns, sys.executable, "-m", "user_learner.cli.main", "train", "--task",
           "peg_insertion", "--algo", "sac", "--side", which, "--log-dir", str(tmp_path / which), "--timeout", "400",
           "--steps", str(STEPS), *extra]  # the robot side: environment steps; the learner side: transitions received
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def figures(line: str) -> dict[str, str]:
    return dict(re.findall(r"(\w+)=(\S+)", line))


@pytest.mark.slow
def test_robot_side_trains_against_a_learner_in_another_network_namespace(two_hosts, tmp_path) -> None:
    learner_ns, robot_ns, discovery = two_hosts
    config = write_config_copy(tmp_path / "config", {"algorithms/sac": FAST_SAC})
    env = {**os.environ, CONFIG_DIR_ENV: str(config), "FASTDDS_BUILTIN_TRANSPORTS": "UDPv4",
           "ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET"}  # (the suite's own runs stay on localhost)
    server, extra = None, ()
    if discovery == "discovery_server":
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        server = subprocess.Popen(["ip", "netns", "exec", learner_ns, sys.executable, "-m", "user_learner.cli.main",
                                   "discovery-server", "--address", LEARNER_ADDRESS, "--port", "11811"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        extra = ("--discovery-server", f"{LEARNER_ADDRESS}:11811")
    learner = side(learner_ns, "learner", tmp_path, env, *extra)
    robot = side(robot_ns, "robot", tmp_path, env, *extra)
    try:
        robot_out, robot_err = robot.communicate(timeout=500)
        learner_out, learner_err = learner.communicate(timeout=120)
    finally:
        for proc in (robot, learner, server):  # (a failed run: stop each as Ctrl-C does, which stops its nodes)
            if proc is not None and proc.poll() is None:
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


@pytest.mark.slow
def test_the_actor_runs_on_the_learners_host_and_drives_the_arm_across_the_link(tmp_path) -> None:
    """``--side arm`` (sim cell, bridge, teleop, episode driver: the robot PC) in one namespace; ``--side actor``
    and ``--side learner`` (the GPU server) in the other: every control tick crosses the link both ways."""
    with contextlib.ExitStack() as stack:
        try:
            server_ns, robot_ns = stack.enter_context(veth_namespaces(multicast=True))
        except NamespacesUnavailableError as exc:
            pytest.skip(str(exc))
        config = write_config_copy(tmp_path / "config", {"algorithms/sac": FAST_SAC})
        env = {**os.environ, CONFIG_DIR_ENV: str(config), "FASTDDS_BUILTIN_TRANSPORTS": "UDPv4",
               "ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET"}
        procs = {"learner": side(server_ns, "learner", tmp_path, env), "actor": side(server_ns, "actor", tmp_path, env),
                 "arm": side(robot_ns, "arm", tmp_path, env)}
        outputs = {}
        try:
            for name in ("arm", "actor", "learner"):
                outputs[name] = procs[name].communicate(timeout=500 if name == "arm" else 120)
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGINT)
                    try:
                        proc.communicate(timeout=60)
                    except subprocess.TimeoutExpired:
                        proc.kill()
    report = "\n".join(f"{n}:\n{out}{err[-2000:]}" for n, (out, err) in outputs.items())
    assert all(proc.returncode == 0 for proc in procs.values()), report
    arm = figures(outputs["arm"][0].strip().splitlines()[-1])
    learner = figures(outputs["learner"][0].strip().splitlines()[-1])
    assert arm["side"] == "arm" and int(arm["steps"]) >= STEPS, report  # the actor's commands moved the arm
    assert int(arm["weight_versions"]) >= 1, report  # and it acted on the learner's weights
    assert int(learner["transitions_received"]) >= STEPS, report
    assert "loaded policy weights" in (tmp_path / "actor" / "ros" / "robot_0.actor.log").read_text()
