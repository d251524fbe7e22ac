"""Reward and episode-end logic (pure), shared by every reward source.

The actor feeds one :meth:`RewardTracker.step` per control tick with what it observed *after*
the action: whether the task looks solved (sim ground truth, pose region or classifier), the
human label if any, and the gripper state. The tracker returns the reward for that action and
whether the episode terminates, following the task's ``reward`` section.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from user_robot.pose_math import quat_conjugate, quat_from_rpy, quat_multiply, rpy_from_quat
from user_robot.task_config import TaskConfig

LABEL_NONE = 0
LABEL_SUCCESS = 1
LABEL_FAILURE = 2


@dataclasses.dataclass(frozen=True)
class StepOutcome:
    """Reward for the last action and whether the episode ends (and how)."""

    reward: float
    success: bool
    terminated: bool
    failure: bool = False


def in_success_region(task: TaskConfig, xyz: np.ndarray, quat: np.ndarray) -> bool:
    """The pose-region success check: position within tolerance and yaw within tolerance of the target."""
    r = task.reward
    if float(np.linalg.norm(np.asarray(xyz) - np.asarray(task.target.xyz))) > r.success_xyz_tolerance:
        return False
    rel = quat_multiply(quat_conjugate(quat_from_rpy(task.target.rpy)), quat)
    return abs(float(rpy_from_quat(rel)[2])) <= r.success_yaw_tolerance


def within_pose_gate(task: TaskConfig, xyz: np.ndarray) -> bool:
    """The classifier's pose gate: TCP within ``reward.pose_gate`` of the target (always, when 0)."""
    gate = task.reward.pose_gate
    return gate <= 0.0 or float(np.linalg.norm(np.asarray(xyz) - np.asarray(task.target.xyz))) <= gate


class RewardTracker:
    """Per-episode reward state: success hold counting, dense shaping and gripper penalties."""

    def __init__(self, task: TaskConfig) -> None:
        self.cfg = task.reward
        self.target = np.asarray(task.target.xyz, dtype=np.float64)
        self.hold = 0
        self.gripper_closed: bool | None = None

    def step(
        self, solved: bool, xyz: np.ndarray, label: int = LABEL_NONE, gripper_closed: bool | None = None
    ) -> StepOutcome:
        """Outcome of the last action given what is observed now."""
        if label == LABEL_FAILURE:
            return StepOutcome(0.0, success=False, terminated=True, failure=True)
        solved = solved or label == LABEL_SUCCESS
        self.hold = self.hold + 1 if solved else 0
        if solved:
            reward = 1.0
        elif self.cfg.dense:
            reward = float(np.exp(-self.cfg.dense_scale * float(np.sum((np.asarray(xyz) - self.target) ** 2))))
        else:
            reward = 0.0
        if gripper_closed is not None:
            if self.gripper_closed is not None and gripper_closed != self.gripper_closed:
                reward -= self.cfg.gripper_toggle_penalty
            self.gripper_closed = gripper_closed
        done = solved and (label == LABEL_SUCCESS or self.hold >= self.cfg.success_hold_steps)
        return StepOutcome(reward, success=done, terminated=done)
