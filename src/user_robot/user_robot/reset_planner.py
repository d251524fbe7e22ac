"""Reset trajectories (pure): lift, then move linearly (position) and by slerp (orientation).

The reset pose is the task target + ``reset.offset_xyz``, randomized uniformly by
``reset.random_xy`` (x and y) and ``reset.random_yaw`` (about the base z axis), seeded, and
clipped into the workspace box. The trajectory first lifts straight up by ``reset.lift`` (never
above the box top unless the arm already is), then moves to the reset pose; both phases share
``reset.duration_s`` in proportion to their length and use a smoothstep time scaling (zero
velocity at the ends).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from user_robot.pose_math import quat_conjugate, quat_from_rotvec, quat_multiply, quat_normalize, rotvec_from_quat
from user_robot.safety import Pose, Workspace
from user_robot.task_config import ResetConfig, TaskConfig

ROTATION_LENGTH_M = 0.1
"""Metres of path one radian of rotation counts as when splitting the duration between phases."""


def reset_pose(task: TaskConfig, workspace: Workspace, rng: np.random.Generator | None) -> Pose:
    """The task's reset pose, randomized within its limits when ``rng`` is given, inside the box."""
    cfg: ResetConfig = task.reset
    xyz = np.asarray(task.target.xyz, dtype=np.float64) + np.asarray(cfg.offset_xyz, dtype=np.float64)
    yaw = 0.0
    if rng is not None:
        xyz[:2] += rng.uniform(-cfg.random_xy, cfg.random_xy, size=2)
        yaw = float(rng.uniform(-cfg.random_yaw, cfg.random_yaw))
    quat = quat_multiply(quat_from_rotvec(np.array([0.0, 0.0, yaw])), workspace.target_quat)
    return workspace.clip(Pose.of(xyz, quat))


def slerp(a: np.ndarray, b: np.ndarray, s: float) -> np.ndarray:
    """Spherical interpolation from ``a`` (s = 0) to ``b`` (s = 1) along the shorter arc."""
    rel = rotvec_from_quat(quat_multiply(b, quat_conjugate(a)))
    return quat_normalize(quat_multiply(quat_from_rotvec(rel * s), a))


def _smoothstep(s: float) -> float:
    s = min(max(s, 0.0), 1.0)
    return s * s * (3.0 - 2.0 * s)


@dataclasses.dataclass(frozen=True)
class ResetTrajectory:
    """Start → lifted start → goal, timed over ``duration`` seconds."""

    start: Pose
    lifted: Pose
    goal: Pose
    lift_duration: float
    duration: float

    def pose_at(self, t: float) -> Pose:
        """The pose ``t`` seconds after the start (the goal itself from the end on: exactly, whatever the start, so
        that a reset ends at the same pose however the episode before it ended)."""
        if t >= self.duration:
            return self.goal
        if t < self.lift_duration:
            s = _smoothstep(t / self.lift_duration)
            return Pose(self.start.xyz + s * (self.lifted.xyz - self.start.xyz), self.start.quat)
        move = self.duration - self.lift_duration
        s = _smoothstep((t - self.lift_duration) / move) if move > 0 else 1.0
        return Pose(self.lifted.xyz + s * (self.goal.xyz - self.lifted.xyz), slerp(self.lifted.quat, self.goal.quat, s))

    def progress(self, t: float) -> float:
        """Fraction of the duration elapsed, in [0, 1]."""
        return 1.0 if self.duration <= 0 else min(max(t / self.duration, 0.0), 1.0)


def plan_reset(start: Pose, goal: Pose, cfg: ResetConfig, workspace: Workspace) -> ResetTrajectory:
    """Lift ``start`` by ``cfg.lift`` (capped at the box top), then go to ``goal`` in ``cfg.duration_s``."""
    top = max(float(workspace.xyz_high[2]), float(start.xyz[2]))
    lifted = Pose(np.array([start.xyz[0], start.xyz[1], min(start.xyz[2] + cfg.lift, top)]), start.quat)
    lift_len = float(lifted.xyz[2] - start.xyz[2])
    rot = float(np.linalg.norm(rotvec_from_quat(quat_multiply(goal.quat, quat_conjugate(start.quat)))))
    move_len = max(float(np.linalg.norm(goal.xyz - lifted.xyz)), rot * ROTATION_LENGTH_M)
    total = lift_len + move_len
    lift_duration = cfg.duration_s * lift_len / total if total > 0 else 0.0
    return ResetTrajectory(start, lifted, goal, lift_duration, cfg.duration_s)
