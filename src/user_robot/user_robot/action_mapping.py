"""Normalized actions → pose targets: the one mapping used by the arm bridge, the sim and the expert.

An action is ``[dx, dy, dz, droll, dpitch, dyaw(, gripper)]`` in [-1, 1]. Translation is scaled
by ``translation_scale`` (m per tick), rotation by ``rotation_scale`` (rad per tick) and applied
as a rotation vector, in the base frame or the end-effector frame. Safety (workspace box, step
limits) is applied afterwards by :mod:`user_robot.safety`, never here.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from user_robot.pose_math import (
    quat_conjugate,
    quat_from_rotvec,
    quat_multiply,
    quat_normalize,
    quat_to_matrix,
    rotvec_from_quat,
)
from user_robot.task_config import ActionConfig

GRIPPER_OPEN = 0
GRIPPER_CLOSE = 1


@dataclasses.dataclass(frozen=True)
class PoseTarget:
    """A pose target: position (m) and unit quaternion (x, y, z, w), plus a gripper request."""

    xyz: np.ndarray
    quat: np.ndarray
    gripper: int | None = None  # GRIPPER_OPEN, GRIPPER_CLOSE or None (no change requested)


def command_frame(action: ActionConfig, base_frame: str, ee_frame: str) -> str:
    """The ``frame_id`` of an arm command for actions configured as ``action`` (base or EE frame)."""
    return base_frame if action.frame == "base" else ee_frame


def gripper_request(value: float, cfg: ActionConfig) -> int | None:
    """Decode the gripper channel: close above +threshold, open below -threshold, else no change."""
    if value > cfg.gripper_threshold:
        return GRIPPER_CLOSE
    if value < -cfg.gripper_threshold:
        return GRIPPER_OPEN
    return None


def apply_action(action: np.ndarray, xyz: np.ndarray, quat: np.ndarray, cfg: ActionConfig) -> PoseTarget:
    """Move the pose ``(xyz, quat)`` by one tick of a normalized ``action`` (clipped to [-1, 1])."""
    a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
    if a.shape != (cfg.dims,):
        raise ValueError(f"action has shape {a.shape}, the task expects ({cfg.dims},)")
    dxyz = a[:3] * cfg.translation_scale
    drot = quat_from_rotvec(a[3:6] * cfg.rotation_scale)
    quat = quat_normalize(quat)
    if cfg.frame == "ee":
        new_xyz = np.asarray(xyz, dtype=np.float64) + quat_to_matrix(quat) @ dxyz
        new_quat = quat_multiply(quat, drot)
    else:
        new_xyz = np.asarray(xyz, dtype=np.float64) + dxyz
        new_quat = quat_multiply(drot, quat)
    grip = gripper_request(float(a[6]), cfg) if cfg.dims == 7 and cfg.gripper == "binary" else None
    return PoseTarget(new_xyz, quat_normalize(new_quat), grip)


def action_toward(
    xyz: np.ndarray, quat: np.ndarray, goal_xyz: np.ndarray, goal_quat: np.ndarray, cfg: ActionConfig
) -> np.ndarray:
    """The normalized action (clipped) that moves ``(xyz, quat)`` toward a goal pose in one tick.

    The inverse of :func:`apply_action` up to clipping: demos recorded as commanded poses and
    scripted experts use it to express motions as actions. The gripper channel, if any, is 0.
    """
    quat = quat_normalize(quat)
    dxyz = np.asarray(goal_xyz, dtype=np.float64) - np.asarray(xyz, dtype=np.float64)
    if cfg.frame == "ee":
        rot = quat_to_matrix(quat)
        dxyz = rot.T @ dxyz
        drot = rotvec_from_quat(quat_multiply(quat_conjugate(quat), goal_quat))
    else:
        drot = rotvec_from_quat(quat_multiply(goal_quat, quat_conjugate(quat)))
    a = np.concatenate([dxyz / cfg.translation_scale, drot / cfg.rotation_scale])
    if cfg.dims == 7:
        a = np.append(a, 0.0)
    return np.clip(a, -1.0, 1.0)
