"""A demo on the MuJoCo sim cell, recorded as `ros2 bag record` records driver topics, imports back.

The sim cell's scripted expert drives its virtual SpaceMouse; teleop, actor and arm bridge turn that
into equilibrium poses, exactly as a human demo on a real cell. A recorder node stores the driver
topics as raw CDR with receive-time stamps (what rosbag2 does) into an MCAP bag; the actor's
``arm/command`` is kept aside as ground truth. Imported with ``action_source: commanded_pose``,
every step whose command the bridge did not clamp (workspace wall, step limit) recovers an action
that leads from a recorded measured pose to the commanded pose, and mostly the commanded action
itself (the bridge's base pose is not in the bag: the importer takes the one received last).
"""

from __future__ import annotations

import dataclasses
import importlib
import time
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer

from user_learner.bags.driver_import import BagImportConfig, SplitRule, import_driver_bag
from user_learner.bags.typestore import typestore
from user_learner.graph import build_graph, resolve_topic
from user_robot.action_mapping import action_toward
from user_robot.pose_math import quat_angle
from user_robot.robot_config import load_robot
from user_robot.task_config import load_task

NS = "robot_0"
EPISODES = 5
PROMPT_NS = 20_000_000  # the bridge turned the command into a pose within this: the pose answers that command
EXACT = 1e-3  # an action recomputed from the poses it moved between (float32 messages)


def _driver_topics(robot) -> dict[str, str]:
    d, t = robot.driver, robot.teleop
    pairs = [
        (d.current_pose, "geometry_msgs/msg/PoseStamped"),
        (d.external_wrench, "geometry_msgs/msg/WrenchStamped"),
        (d.equilibrium_pose, "geometry_msgs/msg/PoseStamped"),
        (robot.cameras["wrist"].topic, "sensor_msgs/msg/Image"),
        (robot.cameras["front"].topic, "sensor_msgs/msg/Image"),
        (t.twist_topic, "geometry_msgs/msg/Twist"),
        (t.joy_topic, "sensor_msgs/msg/Joy"),
    ]
    return {resolve_topic(topic, NS): msgtype for topic, msgtype in pairs}


def _record_expert_episode(tmp_path: Path, topics: dict[str, str]) -> tuple[list, list]:
    """Run one expert episode; return the raw (topic, receive ns, CDR) records and the ArmCommands."""
    import rclpy
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    from user_interfaces.msg import ArmCommand, ArmState, EpisodeResult
    from user_learner.cli.runner import GraphProcesses

    specs = build_graph("peg_insertion", side="robot", expert="always", mode="demo", episodes=EPISODES)
    # the camera streams are driver topics too: render them although the policy reads state only
    specs = [dataclasses.replace(s, parameters={**s.parameters, "cameras": True}) if s.executable == "sim_cell"
             else s for s in specs]
    graph = GraphProcesses(specs, tmp_path)
    records: list[tuple[str, int, bytes]] = []
    commands: list = []
    results: list = []
    rclpy.init()
    node = rclpy.create_node("recorder")
    best_effort = QoSProfile(depth=100, reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST)
    for topic, msgtype in topics.items():
        package, _, name = msgtype.split("/")
        cls = getattr(importlib.import_module(f"{package}.msg"), name)

        def on_raw(raw: bytes, topic: str = topic) -> None:
            records.append((topic, node.get_clock().now().nanoseconds, raw))

        node.create_subscription(cls, topic, on_raw, best_effort, raw=True)
    node.create_subscription(ArmCommand, f"/{NS}/arm/command", commands.append, 100)
    node.create_subscription(EpisodeResult, f"/{NS}/episode_result", results.append, 10)
    arm_ready: list = []
    node.create_subscription(
        ArmState, f"/{NS}/arm/state", lambda m: arm_ready.append(m.status != ArmState.STATUS_NO_DATA), 10
    )
    # Episodes start once the bridge has driver state: a reset requested earlier is rejected and not retried.
    driver = next(n for n in graph.nodes if n.spec.executable == "episode_driver")
    for proc in graph.nodes:
        if proc is not driver:
            proc.start()
    try:
        deadline = time.monotonic() + 60.0
        while not any(arm_ready) and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
        assert any(arm_ready), "the arm bridge got no driver state from the sim cell within 60 s"
        driver.start()
        deadline = time.monotonic() + 120.0
        while len(results) < EPISODES and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
            dead = [n for n in graph.dead() if n.spec.executable != "episode_driver"]
            assert not dead, "\n\n".join(f"{n.label} exited:\n{n.tail()}" for n in dead)
        got = f"{len(results)} episodes, {len(records)} driver messages, {len(commands)} commands"
        assert len(results) == EPISODES, f"within 120 s: {got}"
        for _ in range(5):
            rclpy.spin_once(node, timeout_sec=0.05)
    finally:
        graph.stop()
        node.destroy_node()
        rclpy.try_shutdown()
    return records, commands


def _stamped_poses(bag: Path, topic: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Header stamps (ns), the bag's receive times (ns) and ``[x, y, z, qx, qy, qz, qw]`` of a pose topic,
    in header-stamp order."""
    from rosbags.highlevel import AnyReader

    stamps, received, poses = [], [], []
    with AnyReader([bag], default_typestore=typestore()) as reader:
        for conn, log_time, raw in reader.messages([c for c in reader.connections if c.topic == topic]):
            msg = reader.deserialize(raw, conn.msgtype)
            p, q = msg.pose.position, msg.pose.orientation
            stamps.append(msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec)
            received.append(log_time)
            poses.append((p.x, p.y, p.z, q.x, q.y, q.z, q.w))
    order = np.argsort(np.array(stamps, dtype=np.int64), kind="stable")
    return np.array(stamps, dtype=np.int64)[order], np.array(received, dtype=np.int64)[order], np.array(poses)[order]


@pytest.mark.slow
def test_sim_expert_demo_bag_imports_the_commanded_actions(tmp_path: Path) -> None:
    task, robot = load_task("peg_insertion"), load_robot("sim")
    topics = _driver_topics(robot)
    records, commands = _record_expert_episode(tmp_path, topics)
    bag = tmp_path / "driver_bag"
    store = typestore()
    with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conns = {topic: writer.add_connection(topic, msgtype, typestore=store) for topic, msgtype in topics.items()}
        for topic, stamp, raw in records:
            writer.write(conns[topic], stamp, raw)

    cfg = BagImportConfig(name="sim", namespace=NS, freshness_s=0.2, split=SplitRule(gap_s=1.0), success="none")
    result = import_driver_bag(bag, task, robot, cfg)
    steps = [s for e in result.episodes for s in e.steps]
    assert steps and all(s.images["wrist"].shape == (*task.observation.image_size, 3) for s in steps)

    # Ground truth per step: the ArmCommand that produced the newest commanded pose of the step, and the
    # measured poses around it, read from the bag independently of the importer.
    eq_stamps, eq_received, eq_poses = _stamped_poses(bag, resolve_topic(robot.driver.equilibrium_pose, NS))
    pose_stamps, pose_received, poses = _stamped_poses(bag, resolve_topic(robot.driver.current_pose, NS))
    first = [0]  # index where each run of equal (republished) poses starts
    for i in range(1, len(eq_poses)):
        first.append(first[-1] if np.array_equal(eq_poses[i], eq_poses[i - 1]) else i)
    changes = np.array(sorted(set(first)))
    sent = np.array([c.header.stamp.sec * 10**9 + c.header.stamp.nanosec for c in commands])
    target = np.asarray(task.target.xyz)
    low, high = target + task.workspace.xyz_low, target + task.workspace.xyz_high
    dims = 6  # the arm's motion; the gripper channel is not a pose
    errors, bridge_misfits, import_misfits, clamped = [], [], [], 0
    for episode in result.episodes:
        for step, nxt in zip(episode.steps, episode.steps[1:], strict=False):
            i = int(np.searchsorted(eq_stamps, nxt.stamp_ns, side="right")) - 1
            since = eq_stamps[first[i]]
            k = np.searchsorted(sent, since, side="right") - 1
            later = changes[changes > first[i]]
            held = (eq_stamps[later[0]] if later.size else eq_stamps[-1]) - since
            if since <= step.stamp_ns or k < 0 or held < 3 * PROMPT_NS // 2 or since - sent[k] > PROMPT_NS:
                continue  # no new command in this step, a reset (new poses every bridge tick), or a late answer
            xyz, quat = eq_poses[i][:3], eq_poses[i][3:]
            before = eq_poses[first[i] - 1]
            on_wall = np.any(np.isclose(xyz, low, atol=1e-7) | np.isclose(xyz, high, atol=1e-7))
            step_limited = (np.linalg.norm(xyz - before[:3]) >= robot.safety.max_translation_step - 1e-4
                            or quat_angle(quat, before[3:]) >= robot.safety.max_rotation_step - 1e-4)
            if on_wall or step_limited:
                clamped += 1
                continue
            # The bridge applied the sent action to the newest measured pose it held on arrival: one of the
            # recorded poses around the command's time. That one is not in the bag; the importer takes the
            # pose the bag received last before the commanded pose.
            newest = int(np.searchsorted(pose_stamps, since, side="left")) - 1
            toward = np.array([action_toward(poses[j][:3], poses[j][3:], xyz, quat, task.action)[:dims]
                               for j in range(max(0, newest - 50), min(len(poses), newest + 50))])
            sent_action, imported = np.asarray(commands[k].action)[:dims], step.action[:dims]
            bridge_misfits.append(np.abs(toward - sent_action).max(axis=1).min())
            held_then = int(np.argmax(np.where(pose_received < eq_received[first[i]], pose_received, -1)))
            rule = action_toward(poses[held_then][:3], poses[held_then][3:], xyz, quat, task.action)[:dims]
            import_misfits.append(np.abs(rule - imported).max())
            errors.append(np.abs(sent_action - imported).max())
    counts = f"{len(commands)} commands, {clamped} clamped, {len(errors)} compared"
    assert len(errors) >= 10, f"only {len(errors)} unclamped steps matched ({counts})"
    moving = np.abs(np.array([c.action for c in commands])).max(axis=1)
    assert np.mean(moving > 0.1) > 0.5, "the expert barely moved: the comparison would be vacuous"
    # The bridge's frame, sign and scale: each sent action moves a recorded measured pose exactly to the
    # commanded pose (the recorder is best effort: it may miss a pose now and then; a wrong frame, sign or
    # scale would be off by 0.3 and more).
    exact = np.mean(np.array(bridge_misfits) <= EXACT)
    assert exact >= 0.9, f"{counts}: bridge misfits {np.round(sorted(bridge_misfits), 3).tolist()}"
    # The importer's: every imported action moves the pose received last before the commanded pose to it.
    assert max(import_misfits) <= EXACT, f"{counts}: importer misfits {np.round(sorted(import_misfits), 3).tolist()}"
    # How close that comes to the sent action depends on how the bridge's and the bag's receive orders
    # differ, so on load. Measured: the sent action itself at 59% of the steps quiet, 30-46% beside a pixel
    # training run; the error's median 0 / 0.025-0.09 there, 75th percentile 0.05 / 0.08-0.23 (0.05 = 0.5 mm
    # at 1 cm per unit). Taking the newest pose stamped before the command instead was a sample or more off
    # at every step. Only a rule that is always off is ruled out here.
    exact = np.mean(np.array(errors) <= EXACT)
    assert exact >= 0.1, f"{counts}: sent action recovered at {exact:.0%}: {np.round(sorted(errors), 3).tolist()}"
