"""rviz markers: the workspace box is the task's box around the target, and messages serialize."""

from __future__ import annotations

import numpy as np
from rclpy.serialization import deserialize_message, serialize_message
from visualization_msgs.msg import Marker, MarkerArray

from user_robot.markers import status_markers, workspace_markers
from user_robot.task_config import load_task


def test_workspace_box_and_target() -> None:
    task = load_task("peg_insertion")
    array = deserialize_message(serialize_message(workspace_markers(task, "base")), MarkerArray)
    box = array.markers[0]
    assert box.type == Marker.LINE_LIST and box.header.frame_id == "base"
    points = np.array([[p.x, p.y, p.z] for p in box.points]).reshape(12, 2, 3)
    target = np.array(task.target.xyz)
    np.testing.assert_allclose(points.reshape(-1, 3).min(axis=0), target + task.workspace.xyz_low)
    np.testing.assert_allclose(points.reshape(-1, 3).max(axis=0), target + task.workspace.xyz_high)
    lengths = sorted(np.round(np.linalg.norm(points[:, 1] - points[:, 0], axis=1), 6))
    size = np.array(task.workspace.xyz_high) - np.array(task.workspace.xyz_low)
    assert lengths == sorted(np.round(np.repeat(size, 4), 6))  # 4 edges along each axis
    sphere = array.markers[1]
    assert sphere.type == Marker.SPHERE
    np.testing.assert_allclose([sphere.pose.position.x, sphere.pose.position.y, sphere.pose.position.z], target)
    assert array.markers[-1].text == "peg_insertion"
    assert len({(m.ns, m.id) for m in array.markers}) == len(array.markers)


def test_status_colour_follows_intervention() -> None:
    task = load_task("peg_insertion")
    human = status_markers(task, "base", ["episode 4  step 17", "weights v12"], intervened=True)
    policy = status_markers(task, "base", [], intervened=False)
    assert human.markers[0].text.splitlines() == ["HUMAN", "episode 4  step 17", "weights v12"]
    assert human.markers[0].color.r > 0.9 and policy.markers[0].color.g > 0.7 and policy.markers[0].color.r < 0.5
