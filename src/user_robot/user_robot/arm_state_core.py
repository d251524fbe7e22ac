"""Arm state helpers (pure): TCP velocity estimate, gripper width, Franka robot-mode errors."""

from __future__ import annotations

import numpy as np

from user_robot.pose_math import quat_conjugate, quat_multiply, rotvec_from_quat

ROBOT_MODES = ("other", "idle", "move", "guiding", "reflex", "user_stopped", "automatic_error_recovery")
"""libfranka ``RobotMode`` names by value (franka_msgs/FrankaRobotState.robot_mode)."""

ERROR_MODES = frozenset({"reflex", "user_stopped", "automatic_error_recovery"})
"""Robot modes in which the arm does not follow commands."""


class VelocityEstimator:
    """TCP twist from successive stamped poses: finite differences, first-order low-pass filtered.

    Linear velocity in m/s and angular velocity in rad/s, both in the base frame. Samples with a
    non-increasing stamp are ignored; a gap longer than ``max_gap_s`` restarts the estimate, and so does a
    different pose with the stamp of the last (the sample was replaced: a sim cell restarted its simulation).
    """

    def __init__(self, time_constant_s: float = 0.03, max_gap_s: float = 0.5) -> None:
        self.tau = time_constant_s
        self.max_gap_s = max_gap_s
        self.linear = np.zeros(3)
        self.angular = np.zeros(3)
        self._last: tuple[float, np.ndarray, np.ndarray] | None = None

    def update(self, stamp: float, xyz: np.ndarray, quat: np.ndarray) -> None:
        """Add one pose sample taken at ``stamp`` seconds."""
        xyz = np.asarray(xyz, dtype=np.float64)
        quat = np.asarray(quat, dtype=np.float64)
        last, self._last = self._last, (stamp, xyz, quat)
        if last is None:
            return
        dt = stamp - last[0]
        replaced = dt == 0.0 and not (np.array_equal(xyz, last[1]) and np.array_equal(quat, last[2]))
        if dt <= 0.0 and not replaced:
            self._last = last
            return
        if replaced or dt > self.max_gap_s:
            self.linear, self.angular = np.zeros(3), np.zeros(3)
            return
        linear = (xyz - last[1]) / dt
        angular = rotvec_from_quat(quat_multiply(quat, quat_conjugate(last[2]))) / dt
        alpha = dt / (self.tau + dt)
        self.linear += alpha * (linear - self.linear)
        self.angular += alpha * (angular - self.angular)


def gripper_width(positions: list[float] | np.ndarray) -> float:
    """Opening (m) from finger joint positions: franka_gripper reports each finger at width / 2."""
    return float(np.sum(np.abs(np.asarray(positions, dtype=np.float64))))


def robot_mode_error(mode: int, errors: list[str]) -> str | None:
    """A clear error line for a Franka robot mode in which the arm is stopped, else None."""
    name = ROBOT_MODES[mode] if 0 <= mode < len(ROBOT_MODES) else f"unknown({mode})"
    if name not in ERROR_MODES:
        return None
    detail = f": {', '.join(errors)}" if errors else ""
    return f"robot mode {name}{detail}"


class ControlPeriodRelay:
    """When the bridge relays the arm state at once, besides its timer: as soon as every driver stream
    (pose, wrench, gripper) has delivered a sample of a new control period (stamped at or after its start).

    A sim cell's state steps fall on the control ticks, so the actor's tick at time t can read the state
    of t itself (on sim time it waits for it): what it observes no longer depends on which of the
    bridge's timer and the actor's tick ran first. On a real arm it is one more state message a period.
    """

    def __init__(self, control_period_ns: int, streams: tuple[str, ...]) -> None:
        self.period_ns = control_period_ns
        self.newest = dict.fromkeys(streams, -1)
        self._relayed = -1  # the newest control period relayed

    def arrived(self, stream: str, stamp_ns: int) -> bool:
        """A sample of ``stream`` stamped ``stamp_ns`` came: whether to relay the arm state now."""
        self.newest[stream] = max(self.newest[stream], stamp_ns)
        oldest = min(self.newest.values())  # (the stream furthest behind decides)
        period = oldest // self.period_ns
        if oldest < 0 or period <= self._relayed:
            return False
        self._relayed = period
        return True

    def relayed(self, stamp_ns: int) -> bool:
        """Whether the state of the control period holding ``stamp_ns`` has been relayed (every stream had come)."""
        return stamp_ns // self.period_ns <= self._relayed
