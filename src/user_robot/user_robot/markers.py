"""rviz2 markers (``visualization_msgs/MarkerArray``) for a task: workspace box, target, status text.

Pure builders (message classes only, no rclpy). ``config/rviz/user.rviz`` shows
``<robot>/workspace_markers`` (:func:`workspace_markers`, latched: publish once with a
transient-local QoS) and ``<robot>/status_markers`` (:func:`status_markers`, per episode or step).
"""

from __future__ import annotations

import itertools

import numpy as np
from builtin_interfaces.msg import Duration, Time
from geometry_msgs.msg import Point, Pose, Quaternion, Vector3
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from user_robot.pose_math import quat_from_rpy, quat_to_matrix
from user_robot.task_config import TaskConfig

WORKSPACE_NS = "workspace"
STATUS_NS = "status"
POLICY_COLOR = ColorRGBA(r=0.2, g=0.8, b=0.3, a=1.0)
HUMAN_COLOR = ColorRGBA(r=1.0, g=0.55, b=0.0, a=1.0)


def _header(frame_id: str, stamp: Time | None) -> Header:
    return Header(frame_id=frame_id, stamp=stamp or Time())


def _pose(xyz: np.ndarray, quat: tuple[float, ...] | np.ndarray = (0.0, 0.0, 0.0, 1.0)) -> Pose:
    return Pose(
        position=Point(x=float(xyz[0]), y=float(xyz[1]), z=float(xyz[2])),
        orientation=Quaternion(x=float(quat[0]), y=float(quat[1]), z=float(quat[2]), w=float(quat[3])),
    )


def box_edges(low: np.ndarray, high: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """The 12 edges of the axis-aligned box ``[low, high]`` as point pairs."""
    corners = {c: np.where(np.array(c, dtype=bool), high, low) for c in itertools.product((0, 1), repeat=3)}
    return [
        (corners[a], corners[b])
        for a, b in itertools.combinations(corners, 2)
        if sum(x != y for x, y in zip(a, b, strict=True)) == 1
    ]


def workspace_markers(task: TaskConfig, frame_id: str, stamp: Time | None = None) -> MarkerArray:
    """The task's workspace box (line list) and target (axes-coloured arrows + sphere + name)."""
    header = _header(frame_id, stamp)
    target = np.asarray(task.target.xyz, dtype=np.float64)
    low, high = target + np.asarray(task.workspace.xyz_low), target + np.asarray(task.workspace.xyz_high)
    box = Marker(header=header, ns=WORKSPACE_NS, id=0, type=Marker.LINE_LIST, action=Marker.ADD)
    box.pose = _pose(np.zeros(3))
    box.scale = Vector3(x=0.003)
    box.color = ColorRGBA(r=0.2, g=0.6, b=1.0, a=0.9)
    box.points = [Point(x=float(p[0]), y=float(p[1]), z=float(p[2])) for edge in box_edges(low, high) for p in edge]
    quat = quat_from_rpy(task.target.rpy)
    markers = [box]
    sphere = Marker(header=header, ns=WORKSPACE_NS, id=1, type=Marker.SPHERE, action=Marker.ADD)
    sphere.pose = _pose(target, quat)
    tol = max(task.reward.success_xyz_tolerance, 0.002)
    sphere.scale = Vector3(x=2 * tol, y=2 * tol, z=2 * tol)
    sphere.color = ColorRGBA(r=1.0, g=0.2, b=0.2, a=0.6)
    markers.append(sphere)
    for axis, color in enumerate(((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))):
        arrow = Marker(header=header, ns=WORKSPACE_NS, id=2 + axis, type=Marker.ARROW, action=Marker.ADD)
        arrow.pose = _pose(np.zeros(3))
        tip = target + quat_to_matrix(quat) @ (np.eye(3)[axis] * 0.05)
        arrow.points = [_pose(target).position, _pose(tip).position]
        arrow.scale = Vector3(x=0.004, y=0.008, z=0.0)
        arrow.color = ColorRGBA(r=color[0], g=color[1], b=color[2], a=1.0)
        markers.append(arrow)
    label = Marker(header=header, ns=WORKSPACE_NS, id=5, type=Marker.TEXT_VIEW_FACING, action=Marker.ADD)
    label.pose = _pose(np.array([target[0], target[1], high[2] + 0.03]))
    label.scale = Vector3(z=0.025)
    label.color = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)
    label.text = task.name
    markers.append(label)
    return MarkerArray(markers=markers)


def status_markers(
    task: TaskConfig, frame_id: str, lines: list[str], intervened: bool, stamp: Time | None = None
) -> MarkerArray:
    """Status text above the workspace (episode, step, weights version, ...) and an indicator sphere.

    Orange while a human intervenes, green under the policy.
    """
    header = _header(frame_id, stamp)
    color = HUMAN_COLOR if intervened else POLICY_COLOR
    top = np.asarray(task.target.xyz) + np.asarray(task.workspace.xyz_high)
    text = Marker(header=header, ns=STATUS_NS, id=0, type=Marker.TEXT_VIEW_FACING, action=Marker.ADD)
    text.pose = _pose(np.array([top[0], top[1], top[2] + 0.08]))
    text.scale = Vector3(z=0.02)
    text.color = color
    text.text = "\n".join([("HUMAN" if intervened else "POLICY"), *lines])
    light = Marker(header=header, ns=STATUS_NS, id=1, type=Marker.SPHERE, action=Marker.ADD)
    light.pose = _pose(np.array([top[0], top[1], top[2] + 0.03]))
    light.scale = Vector3(x=0.02, y=0.02, z=0.02)
    light.color = color
    for marker in (text, light):
        marker.lifetime = Duration(sec=5)  # disappears when the publisher stops
    return MarkerArray(markers=[text, light])

