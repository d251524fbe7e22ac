"""Schema of ``config/tasks/<task>.yaml``: what a task is, for sim, robot side and learner alike."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from user_robot.config_loader import check_ranges, load

Vec3 = tuple[float, float, float]


@dataclasses.dataclass(frozen=True)
class PoseConfig:
    """A pose in the robot base frame: position (m) and roll/pitch/yaw (rad, extrinsic XYZ)."""

    xyz: Vec3
    rpy: Vec3 = (3.141592653589793, 0.0, 0.0)

    def __post_init__(self) -> None:
        check_ranges(self, finite=("xyz", "rpy"))


@dataclasses.dataclass(frozen=True)
class WorkspaceConfig:
    """The safety box, relative to the task's target pose (orientation limits wrap across ±π)."""

    xyz_low: Vec3
    xyz_high: Vec3
    rpy_low: Vec3 = (-0.01, -0.01, -0.5236)
    rpy_high: Vec3 = (0.01, 0.01, 0.5236)

    def __post_init__(self) -> None:
        check_ranges(self, finite=("xyz_low", "xyz_high", "rpy_low", "rpy_high"))  # (a NaN bound compares as in)
        for low, high, what in ((self.xyz_low, self.xyz_high, "xyz"), (self.rpy_low, self.rpy_high, "rpy")):
            if any(lo > hi for lo, hi in zip(low, high, strict=True)):
                raise ValueError(f"{what}_low must be <= {what}_high")


@dataclasses.dataclass(frozen=True)
class ActionConfig:
    """How a normalized action in [-1, 1]^dims becomes a pose delta per control tick."""

    dims: Literal[6, 7] = 7  # xyz, rpy deltas (+ gripper)
    frame: Literal["base", "ee"] = "base"
    translation_scale: float = 0.02  # m per tick at |a| = 1
    rotation_scale: float = 0.1  # rad per tick at |a| = 1
    gripper: Literal["none", "binary"] = "binary"
    gripper_threshold: float = 0.5  # close above +t, open below -t
    gripper_debounce_s: float = 0.6

    def __post_init__(self) -> None:
        check_ranges(self, positive=("translation_scale", "rotation_scale", "gripper_threshold"),
                     non_negative=("gripper_debounce_s",))


@dataclasses.dataclass(frozen=True)
class ResetConfig:
    """Reset: lift, then interpolate to target + offset, randomized in xy and yaw."""

    offset_xyz: Vec3 = (0.0, 0.0, 0.1)  # reset pose relative to the target
    random_xy: float = 0.0  # uniform ± (m)
    random_yaw: float = 0.0  # uniform ± (rad)
    lift: float = 0.1  # m, before moving sideways
    duration_s: float = 1.5
    joint_reset_every: int = 0  # episodes between joint resets on hardware (0 = never)

    def __post_init__(self) -> None:
        check_ranges(self, non_negative=("random_xy", "random_yaw", "lift", "duration_s", "joint_reset_every"))


@dataclasses.dataclass(frozen=True)
class RewardConfig:
    """Where reward comes from and how success is decided."""

    source: Literal["sim", "pose_region", "human", "classifier"] = "sim"
    success_xyz_tolerance: float = 0.01  # pose_region: |xyz - target| <= this
    success_yaw_tolerance: float = 3.2  # pose_region: |yaw - target yaw| <= this
    success_hold_steps: int = 1  # consecutive successful steps before terminating
    dense: bool = False  # exp(-dense_scale * |dxyz|^2) instead of 0 when not successful
    dense_scale: float = 500.0
    gripper_toggle_penalty: float = 0.0  # subtracted for every gripper state change
    classifier: str = ""  # classifier: model directory (user-rl reward train --out)
    classifier_threshold: float = 0.0  # classifier: P(success) threshold (0 = the one chosen at training)
    pose_gate: float = 0.0  # classifier: success also needs |tcp xyz - target| <= this (m; 0 = off)

    def __post_init__(self) -> None:
        check_ranges(self, positive=("success_xyz_tolerance", "success_yaw_tolerance"),
                     non_negative=("dense_scale", "gripper_toggle_penalty"))
        if not 0.0 <= self.classifier_threshold < 1.0:
            raise ValueError("classifier_threshold must be in [0, 1)")
        if self.pose_gate < 0.0 or self.success_hold_steps < 1:
            raise ValueError("pose_gate must be >= 0 and success_hold_steps >= 1")


STATE_KEYS: dict[str, int] = {
    "tcp_pose": 6, "tcp_vel": 6, "gripper": 1, "wrench": 6, "last_action": -1, "object_state": -1, "embodiment": -1,
    "present": -1, "task": -1, "instruction": 64,
}
"""The keys ``observation.state`` may list, and each one's size (-1: set by the task: its action dims, its sim
scene's objects, its embodiments, its cameras, the run's tasks); ``user_policies.observation`` encodes them."""


@dataclasses.dataclass(frozen=True)
class ObservationConfig:
    """What the policy sees: camera crops and a proprioceptive state vector."""

    cameras: tuple[str, ...] = ("wrist", "front")  # camera names from the robot config
    image_size: tuple[int, int] = (128, 128)  # height, width
    state: tuple[str, ...] = ("tcp_pose", "tcp_vel", "gripper", "wrench")
    relative_to_target: bool = True  # tcp position expressed relative to the target
    position_scale: float = 10.0  # state units per metre of tcp position; 100 makes 1 mm read as 0.1
    max_age_s: float = 0.25  # older camera or arm data marks the observation stale
    embodiments: tuple[str, ...] = ()  # the ones the state key ``embodiment`` tells apart (one-hot, in this order)
    tasks: tuple[str, ...] = ()  # the ones the state key ``task`` tells apart (a multi-task run's --tasks sets it)

    def __post_init__(self) -> None:
        unknown = [key for key in self.state if key not in STATE_KEYS]
        if unknown:
            raise ValueError(f"unknown state key {unknown[0]!r} (known: {', '.join(STATE_KEYS)})")
        check_ranges(self, positive=("image_size", "position_scale", "max_age_s"))
        for key, names in (("embodiment", self.embodiments), ("task", self.tasks)):
            if (key in self.state) != bool(names):
                raise ValueError(f"state key '{key}' and {key}s (the list it one-hot encodes) go together")
            if len(set(names)) != len(names):
                raise ValueError(f"{key}s lists one twice: {list(names)}")


@dataclasses.dataclass(frozen=True)
class ImpedanceConfig:
    """Cartesian impedance parameters (sim controller; documented for the real controller)."""

    translational_stiffness: float = 2000.0
    translational_damping: float = 89.0
    rotational_stiffness: float = 150.0
    rotational_damping: float = 7.0
    error_clip_xyz: Vec3 = (0.003, 0.003, 0.01)  # bounds contact force ≈ stiffness × clip
    error_clip_rot: float = 0.02

    def __post_init__(self) -> None:
        check_ranges(self, positive=("error_clip_xyz", "error_clip_rot"), non_negative=(
            "translational_stiffness", "translational_damping", "rotational_stiffness", "rotational_damping"))


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    """One task: target, safety box, action mapping, reset, reward, observation, sim scene."""

    name: str
    description: str
    target: PoseConfig
    workspace: WorkspaceConfig
    instruction: str = ""  # what a language-conditioned policy is told (state key ``instruction``)
    control_rate_hz: float = 10.0
    episode_length: int = 100
    action: ActionConfig = ActionConfig()
    reset: ResetConfig = ResetConfig()
    reward: RewardConfig = RewardConfig()
    observation: ObservationConfig = ObservationConfig()
    impedance: ImpedanceConfig = ImpedanceConfig()
    sim: dict[str, Any] = dataclasses.field(default_factory=dict)  # scene parameters (user_robot.sim)
    expert: dict[str, Any] = dataclasses.field(default_factory=dict)  # scripted-expert gains

    def __post_init__(self) -> None:
        if not self.control_rate_hz > 0.0 or self.episode_length < 1:
            raise ValueError("control_rate_hz must be positive and episode_length at least 1")


def load_task(name: str) -> TaskConfig:
    """Load and validate ``config/tasks/<name>.yaml``."""
    return load("tasks", name, TaskConfig)
