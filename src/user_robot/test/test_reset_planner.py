"""Reset planning: lift, then linear + slerp to a seeded, randomized reset pose inside the box."""

from __future__ import annotations

import itertools
import math

import numpy as np

from user_robot.pose_math import quat_from_rpy, rpy_from_quat
from user_robot.reset_planner import plan_reset, reset_pose
from user_robot.safety import Pose, Workspace, rotation_angle
from user_robot.task_config import PoseConfig, ResetConfig, TaskConfig, WorkspaceConfig

TASK = TaskConfig(
    name="t",
    description="",
    target=PoseConfig((0.5, 0.0, 0.1)),
    workspace=WorkspaceConfig((-0.05, -0.05, 0.0), (0.05, 0.05, 0.1), (-0.01, -0.01, -0.2), (0.01, 0.01, 0.2)),
    reset=ResetConfig(offset_xyz=(0.0, 0.0, 0.08), random_xy=0.03, random_yaw=0.5, lift=0.05, duration_s=2.0),
)
WS = Workspace(TASK.target, TASK.workspace)


def test_reset_pose_is_seeded_randomized_and_inside_box() -> None:
    nominal = reset_pose(TASK, WS, None)
    np.testing.assert_allclose(nominal.xyz, [0.5, 0.0, 0.18])
    poses = [reset_pose(TASK, WS, np.random.default_rng(seed)) for seed in range(200)]
    again = reset_pose(TASK, WS, np.random.default_rng(7))
    np.testing.assert_array_equal(again.xyz, poses[7].xyz)
    xy = np.array([p.xyz[:2] for p in poses])
    assert np.all(np.abs(xy - [0.5, 0.0]) <= 0.03 + 1e-12) and np.ptp(xy[:, 0]) > 0.04
    yaws = np.array([WS.relative_rpy(p.quat)[2] for p in poses])
    assert np.all(np.abs(yaws) <= 0.2 + 1e-9)  # random_yaw 0.5 is clipped to the box's ±0.2
    assert all(WS.contains(p) for p in poses)


def test_trajectory_lifts_then_interpolates() -> None:
    start = Pose.of([0.52, 0.01, 0.1], quat_from_rpy([math.pi, 0.0, 0.1]))
    goal = reset_pose(TASK, WS, None)
    traj = plan_reset(start, goal, TASK.reset, WS)
    # Lift is capped at the box top (z 0.2): 0.1 + 0.05 = 0.15 < 0.2, so the full lift.
    np.testing.assert_allclose(traj.lifted.xyz, [0.52, 0.01, 0.15])
    assert 0 < traj.lift_duration < traj.duration == 2.0
    mid_lift = traj.pose_at(traj.lift_duration / 2)
    np.testing.assert_allclose(mid_lift.xyz[:2], start.xyz[:2])
    assert rotation_angle(mid_lift.quat, start.quat) < 1e-12
    # from the end on, the goal itself, bit for bit, from whatever start (an evaluation's episodes start there)
    other = plan_reset(Pose.of([0.55, -0.03, 0.12], quat_from_rpy([math.pi, 0.05, -0.3])), goal, TASK.reset, WS)
    for end in (traj.pose_at(2.0), traj.pose_at(10.0), other.pose_at(2.0)):
        assert end.xyz.tolist() == goal.xyz.tolist() and end.quat.tolist() == goal.quat.tolist()
    assert rotation_angle(traj.pose_at(2.0 - 1e-9).quat, goal.quat) < 1e-9
    # Monotone progress along the move; yaw goes from 0.1 to 0 through slerp.
    yaws = [rpy_from_quat(traj.pose_at(t).quat)[2] for t in np.linspace(traj.lift_duration, 2.0, 20)]
    assert all(a >= b - 1e-12 for a, b in itertools.pairwise(yaws))
    assert traj.progress(1.0) == 0.5 and traj.progress(5.0) == 1.0


def test_lift_never_goes_above_box_top() -> None:
    start = Pose.of([0.5, 0.0, 0.19], quat_from_rpy([math.pi, 0.0, 0.0]))
    traj = plan_reset(start, reset_pose(TASK, WS, None), TASK.reset, WS)
    assert math.isclose(traj.lifted.xyz[2], 0.2)
