"""The teleop node as a real process over real DDS, fed by a spacenav stand-in (/spacenav/twist, /spacenav/joy).

Covers: the intervention message at the control rate, deadband/axis mapping/scaling, the hold
after input stops (timing), control buttons, the persistent gripper channel, labels from buttons
and from the ``label`` service (each sent exactly once), and relative topics in the namespace.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import driver_standins as standins
import numpy as np
import pytest
import yaml
from builtin_interfaces.msg import Time
from sensor_msgs.msg import Joy

from user_interfaces.msg import Intervention
from user_interfaces.srv import LabelEpisode
from user_robot.config_loader import config_dir
from user_robot.nodes.qos import CONTROL

NS = f"/teleop_test_{os.getpid()}"


def config_tree(tmp_path: Path) -> dict[str, str]:
    """franka robot with label buttons 2/3, a permuted and sign-flipped axis map; a 7-dim task."""
    root = tmp_path / "config"
    shutil.copytree(config_dir() / "tasks", root / "tasks")
    (root / "robots").mkdir()
    for name in ("franka", "sim"):
        shutil.copy(config_dir() / "robots" / f"{name}.yaml", root / "robots")
    robot = yaml.safe_load((root / "robots" / "franka.yaml").read_text())
    robot["teleop"].update(
        deadband=0.05,
        axis_map=[1, 0, 2, 3, 4, 5],  # action x <- twist y, action y <- twist x
        axis_scale=[1.0, -1.0, 1.0, 1.0, 1.0, 1.0],
        input_full_scale=0.5,
        hold_s=0.5,
        button_success=2,
        button_failure=3,
    )
    (root / "robots" / "franka.yaml").write_text(yaml.safe_dump(robot))
    task = yaml.safe_load((root / "tasks" / "peg_insertion.yaml").read_text())
    task["name"] = "peg_gripper"
    task["action"].update(dims=7, gripper="binary")
    (root / "tasks" / "peg_gripper.yaml").write_text(yaml.safe_dump(task))
    return {"USER_CONFIG_DIR": str(root), "RCUTILS_LOGGING_BUFFERED_STREAM": "0"}


@pytest.fixture
def harness():
    h = standins.Harness()
    yield h
    h.close()


def start_teleop(spawn, env: dict[str, str], robot: str, task: str = "peg_gripper"):
    args = ["-m", "user_robot.nodes.teleop", "--ros-args", "-r", f"__ns:={NS}"]
    return spawn([*args, "-p", f"robot:={robot}", "-p", f"task:={task}"], env)


def test_spacemouse_intervention_hold_gripper_labels(spawn, harness, tmp_path) -> None:
    start_teleop(spawn, config_tree(tmp_path), "franka")
    mouse = harness.add(standins.SpacenavStandin(harness.context))
    probe = harness.node("probe", NS)
    rec = standins.Recorder(probe, Intervention, "intervention", CONTROL)
    label_client = probe.create_client(LabelEpisode, "label")

    # At rest: inactive, 7 zeros, at the control rate (10 Hz).
    standins.wait_until(lambda: len(rec.messages) >= 3, 15.0, "intervention messages")
    standins.wait_until(lambda: mouse.twist_pub.get_subscription_count() > 0, 10.0, "teleop subscribed")
    t = time.monotonic()
    time.sleep(1.0)
    idle = rec.since(t)
    assert 8 <= len(idle) <= 12
    assert not any(m.active for m in idle) and all(list(m.action) == [0.0] * 7 for m in idle)
    assert idle[-1].source == "spacemouse"

    # Deflection: mapped, scaled, deadbanded (0.02 / 0.5 = 0.04 < 0.05); active.
    mouse.send([0.25, 0.1, 0.0, 0.0, 0.0, 0.02])
    msg = standins.wait_until(lambda: [m for m in rec.since(time.monotonic() - 0.05) if m.active], 3.0, "active")[-1]
    np.testing.assert_allclose(msg.action, [0.2, -0.5, 0.0, 0.0, 0.0, 0.0, 0.0], atol=1e-6)

    # Release: still active for hold_s (0.5 s), then inactive.
    mouse.send([0.0] * 6)
    released = time.monotonic()
    standins.wait_until(lambda: [m for m in rec.since(released) if not m.active], 3.0, "inactive after hold")
    first_inactive = next(at for at, m in rec.messages if at > released and not m.active)
    assert 0.4 <= first_inactive - released <= 0.75
    actives = [at for at, m in rec.messages if released < at < first_inactive and m.active]
    assert actives and actives[-1] - released >= 0.35  # the hold kept it active

    # hold_s is safe to change at run time (0..5 s): with 0 the release ends the intervention at the next tick.
    with pytest.raises(AssertionError, match="successful=False"):
        standins.set_parameters(probe, f"{NS}/teleop", hold_s=9.0)
    standins.set_parameters(probe, f"{NS}/teleop", hold_s=0.0)
    mouse.send([0.25, 0.0, 0.0, 0.0, 0.0, 0.0])
    standins.wait_until(lambda: (m := rec.last()) and m.active, 3.0, "active")
    mouse.send([0.0] * 6)
    released = time.monotonic()
    standins.wait_until(lambda: [m for m in rec.since(released) if not m.active], 3.0, "inactive")
    assert next(at for at, m in rec.messages if at > released and not m.active) - released < 0.25

    # Gripper buttons: close (0) → +1, persistent after release; open (1) → -1. Holding a button is input.
    mouse.send([0.0] * 6, [1, 0, 0, 0])
    standins.wait_until(lambda: (m := rec.last()) and m.active and m.action[6] == 1.0, 3.0, "gripper close")
    mouse.send([0.0] * 6, [0, 0, 0, 0])
    time.sleep(0.8)
    assert not rec.last().active and rec.last().action[6] == 1.0
    mouse.send([0.0] * 6, [0, 1, 0, 0])
    standins.wait_until(lambda: (m := rec.last()) and m.action[6] == -1.0, 3.0, "gripper open")
    mouse.send([0.0] * 6, [0, 0, 0, 0])

    # Labels: success button (2) once; a held label button is not a control input.
    t = time.monotonic()
    mouse.send([0.0] * 6, [0, 0, 1, 0])
    standins.wait_until(lambda: [m for m in rec.since(t) if m.label == Intervention.LABEL_SUCCESS], 3.0, "label")
    time.sleep(0.5)
    labels = [m.label for m in rec.since(t) if m.label != Intervention.LABEL_NONE]
    assert labels == [Intervention.LABEL_SUCCESS]
    mouse.send([0.0] * 6, [0, 0, 0, 0])

    # Labels from the service: exactly one failure label; a bad label is refused.
    assert label_client.wait_for_service(timeout_sec=5.0)
    t = time.monotonic()
    future = label_client.call_async(LabelEpisode.Request(label=LabelEpisode.Request.LABEL_FAILURE))
    assert standins.wait_until(lambda: future.done() and future.result(), 5.0, "label response").accepted
    time.sleep(0.5)
    assert [m.label for m in rec.since(t) if m.label] == [Intervention.LABEL_FAILURE]
    future = label_client.call_async(LabelEpisode.Request(label=7))
    assert not standins.wait_until(lambda: future.done() and future.result(), 5.0, "label response").accepted


def test_relative_spacenav_topics_resolve_in_the_namespace(spawn, harness, tmp_path) -> None:
    """The sim robot config uses relative ``spacenav/twist``: each cell's virtual SpaceMouse is its own."""
    start_teleop(spawn, config_tree(tmp_path), "sim", task="peg_insertion")
    mouse = harness.add(standins.SpacenavStandin(harness.context, namespace=f"{NS}/spacenav"))
    global_mouse = harness.add(standins.SpacenavStandin(harness.context))
    probe = harness.node("probe", NS)
    rec = standins.Recorder(probe, Intervention, "intervention", CONTROL)
    standins.wait_until(lambda: mouse.twist_pub.get_subscription_count() > 0, 15.0, "teleop subscribed")
    assert global_mouse.twist_pub.get_subscription_count() == 0
    mouse.send([0.0, 0.0, 0.5, 0.0, 0.0, 0.0])
    msg = standins.wait_until(lambda: (m := rec.last()) and m.active and m, 3.0, "active")
    np.testing.assert_allclose(msg.action, [0.0, 0.0, 0.5, 0.0, 0.0, 0.0], atol=1e-6)  # 6 dims


def test_keyboard_labels(spawn, harness, tmp_path) -> None:
    """label_keys turns key presses into the teleop node's labels, each sent once."""
    env = config_tree(tmp_path)
    start_teleop(spawn, env, "franka")
    probe = harness.node("probe", NS)
    rec = standins.Recorder(probe, Intervention, "intervention", CONTROL)
    standins.wait_until(lambda: rec.messages, 15.0, "intervention messages")
    keys = subprocess.Popen(
        [sys.executable, "-m", "user_robot.nodes.label_keys", "--ros-args", "-r", f"__ns:={NS}"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **env},
    )
    try:
        assert keys.stdout.readline().startswith("label_keys: s = success")
        t = time.monotonic()
        keys.stdin.write("s\nx\n")  # x: ignored
        keys.stdin.flush()
        assert keys.stdout.readline().startswith("label success: label sent")
        time.sleep(0.3)  # > one control tick: a label given before the last one went out replaces it
        out, _ = keys.communicate("f\nq\n", timeout=30)
        assert keys.returncode == 0, out
        assert out.startswith("label failure: label sent"), out
        time.sleep(0.3)
        assert [m.label for m in rec.since(t) if m.label] == [Intervention.LABEL_SUCCESS, Intervention.LABEL_FAILURE]
    finally:
        keys.kill()


def test_input_is_answered_at_once_stamped_with_its_time(spawn, harness, tmp_path) -> None:
    """On sim time with no clock (its timer never fires) a SpaceMouse message is answered at once, stamped with the
    joy's time: what a lockstep sim cell waits for before it lets the actor's next tick run."""
    args = ["-m", "user_robot.nodes.teleop", "--ros-args", "-r", f"__ns:={NS}", "-p", "use_sim_time:=true"]
    spawn([*args, "-p", "robot:=franka", "-p", "task:=peg_gripper"], config_tree(tmp_path))
    mouse = harness.add(standins.SpacenavStandin(harness.context))
    probe = harness.node("probe", NS)
    rec = standins.Recorder(probe, Intervention, "intervention", CONTROL)
    standins.wait_until(lambda: mouse.joy_pub.get_subscription_count() > 0, 15.0, "teleop subscribed")
    time.sleep(0.5)
    assert not rec.messages  # no clock, no tick
    t = time.monotonic()
    mouse.send([0.25, 0.0, 0.0, 0.0, 0.0, 0.0])
    joy = Joy(axes=[0.25, 0.0, 0.0, 0.0, 0.0, 0.0], buttons=[0, 0, 0, 0])
    joy.header.stamp = Time(sec=5, nanosec=10_000_000)
    mouse.joy_pub.publish(joy)
    answer = standins.wait_until(
        lambda: [m for m in rec.since(t) if m.header.stamp == joy.header.stamp], 3.0, "the answer to the input")[-1]
    assert answer.active
    np.testing.assert_allclose(answer.action, [0.0, -0.5, 0.0, 0.0, 0.0, 0.0, 0.0], atol=1e-6)
