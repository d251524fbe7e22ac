"""Schema of ``config/robots/<robot>.yaml``: which drivers a cell runs and how to talk to them.

Topic names are relative (no leading ``/``) so they resolve under the robot namespace; absolute
names (``/spacenav/twist``) stay global. Every name is configurable because real cells differ
(DRIVERS.md: where the driver and this file disagree, the driver wins).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from user_robot.config_loader import FieldError, check_ranges, load

QosName = Literal["weights", "transitions", "control", "status", "sensor", "images", "teleop"]


@dataclasses.dataclass(frozen=True)
class DriverTopics:
    """The arm driver's topics (defaults: franka_ros2 on Jazzy) and their QoS profile names."""

    current_pose: str = "franka_robot_state_broadcaster/current_pose"
    external_wrench: str = "franka_robot_state_broadcaster/external_wrench_in_base_frame"  # "": no force sensing
    joint_states: str = "franka_robot_state_broadcaster/measured_joint_states"
    equilibrium_pose: str = "cartesian_impedance_example_controller/equilibrium_pose"
    gripper_command: str = "franka_gripper/width_command"  # Float64 width (m); gripper: topic
    gripper_action_ns: str = "franka_gripper"  # franka_gripper actions (move, grasp); gripper: franka_action
    gripper_joint_states: str = "franka_gripper/joint_states"
    error_recovery_action: str = "/action_server/error_recovery"
    robot_state: str = "franka_robot_state_broadcaster/robot_state"  # FrankaRobotState (read when franka_msgs exists)
    state_qos: QosName = "sensor"  # franka_robot_state_broadcaster convenience topics are best effort
    command_qos: QosName = "control"


@dataclasses.dataclass(frozen=True)
class CameraConfig:
    """One realsense2_camera color stream and how the observation crops and resizes it."""

    topic: str  # e.g. "camera/wrist/color/image_raw"
    info_topic: str = ""  # e.g. "camera/wrist/color/camera_info" ("" = derived from topic)
    encoding: Literal["rgb8", "bgr8", "mono8"] = "rgb8"
    crop: tuple[int, int, int, int] | None = None  # x, y, width, height in source pixels (None = full)
    source_size: tuple[int, int] = (480, 640)  # height, width the driver publishes (sim renders this)
    rate_hz: float = 30.0
    qos: QosName = "images"

    def __post_init__(self) -> None:
        check_ranges(self, positive=("source_size", "rate_hz"))
        if self.crop is not None:
            check_ranges(self, non_negative=("crop",))
            if self.crop[2] < 1 or self.crop[3] < 1:
                raise FieldError("crop", f"width and height must be >= 1, got {self.crop!r}")


@dataclasses.dataclass(frozen=True)
class TeleopConfig:
    """SpaceMouse (spacenav) input: topics, mapping and intervention timing."""

    twist_topic: str = "/spacenav/twist"
    joy_topic: str = "/spacenav/joy"
    qos: QosName = "teleop"
    deadband: float = 0.05  # |axis| below this counts as zero
    axis_scale: tuple[float, float, float, float, float, float] = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)
    axis_map: tuple[int, int, int, int, int, int] = (0, 1, 2, 3, 4, 5)  # action index <- twist axis
    input_full_scale: float = 1.0  # twist value that maps to a normalized action of 1
    hold_s: float = 0.5  # intervention stays active this long after the last non-zero input
    input_timeout_s: float = 1.0  # twist older than this counts as zero (device lost or driver stopped)
    button_close: int = 0  # gripper close (SpaceMouse Compact left button)
    button_open: int = 1  # gripper open (right button)
    button_success: int = -1  # label success (-1 = unused; labels also via service or keyboard)
    button_failure: int = -1

    def __post_init__(self) -> None:
        check_ranges(self, positive=("input_full_scale", "input_timeout_s"), non_negative=("deadband", "hold_s"))
        if self.deadband >= 1.0:
            raise FieldError("deadband", f"must be < 1 (a share of full scale), got {self.deadband!r}")


@dataclasses.dataclass(frozen=True)
class SafetyConfig:
    """Limits the arm bridge enforces on every command, whatever its source."""

    max_translation_step: float = 0.03  # m per control tick, per commanded pose change
    max_rotation_step: float = 0.15  # rad per control tick
    watchdog_s: float = 0.5  # no command for this long -> hold the last safe pose
    max_state_age_s: float = 0.2  # driver state older than this -> STATUS_NO_DATA
    bridge_rate_hz: float = 100.0  # rate at which the bridge re-publishes the safe equilibrium pose
    max_command_age_s: float = 0.5  # commands stamped longer ago than this are dropped (needs synced clocks)
    command_owner_timeout_s: float = 1.0  # the publisher owning arm/command loses it after this much silence

    def __post_init__(self) -> None:
        check_ranges(self, positive=tuple(f.name for f in dataclasses.fields(self)))  # (every limit)


@dataclasses.dataclass(frozen=True)
class RobotConfig:
    """One robot cell: embodiment, driver backend, cameras, teleop and safety limits."""

    name: str
    embodiment: str  # e.g. "franka_panda", "franka_fr3", "arx5"
    backend: Literal["sim", "franka_ros2", "crisp", "multipanda", "arx"]
    arm: Literal["panda", "arx"] = "panda"  # kinematics (sim model; dimensions of the state vector)
    base_frame: str = "base"
    ee_frame: str = "end_effector"  # frame_id of commands for tasks whose actions are in the EE frame
    gripper: Literal["topic", "franka_action", "none"] = "topic"
    gripper_max_width: float = 0.08
    gripper_speed: float = 0.1  # m/s for franka_gripper move/grasp
    gripper_force: float = 20.0  # N for franka_gripper grasp
    driver: DriverTopics = DriverTopics()
    cameras: dict[str, CameraConfig] = dataclasses.field(default_factory=dict)
    teleop: TeleopConfig = TeleopConfig()
    safety: SafetyConfig = SafetyConfig()
    sim: dict[str, Any] = dataclasses.field(default_factory=dict)  # sim cell parameters (user_robot.sim)

    def __post_init__(self) -> None:
        check_ranges(self, positive=("gripper_max_width", "gripper_speed"), non_negative=("gripper_force",))


def load_robot(name: str) -> RobotConfig:
    """Load and validate ``config/robots/<name>.yaml``."""
    return load("robots", name, RobotConfig)
