"""The safety layer between any command source and the arm controller (pure Python, no rclpy).

Every pose the arm bridge sends to the controller comes out of :class:`SafetyFilter`:

- **Non-finite input** (NaN/inf in the action or the measured pose) is rejected: the last safe pose
  is held.
- **Step limits**: consecutive commanded poses differ by at most ``max_translation_step`` (m,
  Euclidean) and ``max_rotation_step`` (rad, geodesic angle).
- **Workspace box**: position within ``target.xyz + [xyz_low, xyz_high]``; orientation within
  ``[rpy_low, rpy_high]`` on the roll/pitch/yaw of the rotation *from the target orientation, in
  the base frame* (``R · R_target⁻¹``). Near the target these are the differences of the absolute
  Euler angles, but they are continuous where the absolute angles wrap at ±π (a gripper pointing
  down has roll ≈ ±π); clipping also picks the nearer bound on the circle.

Invariants (proved by ``test_safety_property.py``): every commanded pose is within the step limits
of the previous one, and once a commanded pose is inside the box, every later one is too. A robot
that starts outside the box is walked into it at the step limits instead of jumping.

Also here: the command :class:`Watchdog`, the :class:`GripperDebouncer` and the clamp counters.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from user_robot.action_mapping import apply_action
from user_robot.pose_math import (
    quat_conjugate,
    quat_from_rotvec,
    quat_from_rpy,
    quat_multiply,
    quat_normalize,
    rotvec_from_quat,
    rpy_from_quat,
)
from user_robot.robot_config import SafetyConfig
from user_robot.task_config import ActionConfig, PoseConfig, WorkspaceConfig

TOLERANCE = 1e-9
"""Numerical slack (m, rad) of the box and step checks (quaternion round trips are ~1e-15)."""


@dataclasses.dataclass(frozen=True)
class Pose:
    """A pose in the base frame: position (m) and unit quaternion (x, y, z, w)."""

    xyz: np.ndarray
    quat: np.ndarray

    @staticmethod
    def of(xyz: object, quat: object) -> Pose:
        """A pose from array-likes (the quaternion is normalized to a canonical sign)."""
        return Pose(np.asarray(xyz, dtype=np.float64).copy(), quat_normalize(np.asarray(quat, dtype=np.float64)))

    def is_finite(self) -> bool:
        """True if every component is finite and the quaternion has non-zero norm."""
        return bool(np.all(np.isfinite(self.xyz)) and np.all(np.isfinite(self.quat)) and np.linalg.norm(self.quat) > 0)


@dataclasses.dataclass
class SafetyCounters:
    """How often each safety mechanism intervened (reported on /diagnostics)."""

    clamps_workspace: int = 0
    clamps_translation_step: int = 0
    clamps_rotation_step: int = 0
    rejected_nonfinite: int = 0
    watchdog_holds: int = 0
    gripper_debounced: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters by their diagnostics key."""
        return dataclasses.asdict(self)


def circular_clip(angle: float, low: float, high: float) -> float:
    """Clip an angle to the arc ``[low, high]`` on the circle, snapping to the nearer bound.

    Correct across ±π: with bounds ±0.5 an angle of 3.0 snaps to 0.5 and -3.0 to -0.5. An arc of
    2π or more contains every angle. The result is wrapped to [-π, π).
    """
    width = high - low
    if width >= 2.0 * math.pi:
        return _wrap(angle)
    d = (angle - low) % (2.0 * math.pi)  # position along the circle, counter-clockwise from low
    if d <= width:
        return _wrap(low + d)
    return _wrap(high if d - width <= 2.0 * math.pi - d else low)


def _wrap(a: float) -> float:
    return (a + math.pi) % (2.0 * math.pi) - math.pi


def _on_arc(angle: float, low: float, high: float, tol: float) -> bool:
    width = high - low
    return width + 2 * tol >= 2.0 * math.pi or (angle - low + tol) % (2.0 * math.pi) <= width + 2 * tol


class Workspace:
    """The task's safety box around its target pose."""

    def __init__(self, target: PoseConfig, box: WorkspaceConfig) -> None:
        if not all(-math.pi / 2 < v < math.pi / 2 for v in (box.rpy_low[1], box.rpy_high[1])):
            raise ValueError("workspace pitch limits must lie strictly inside (-π/2, π/2) (Euler singularity)")
        centre = np.asarray(target.xyz, dtype=np.float64)
        self.xyz_low = centre + np.asarray(box.xyz_low, dtype=np.float64)
        self.xyz_high = centre + np.asarray(box.xyz_high, dtype=np.float64)
        self.rpy_low = np.asarray(box.rpy_low, dtype=np.float64)
        self.rpy_high = np.asarray(box.rpy_high, dtype=np.float64)
        self.target_quat = quat_from_rpy(target.rpy)
        self._target_inv = quat_conjugate(self.target_quat)

    def relative_rpy(self, quat: np.ndarray) -> np.ndarray:
        """Roll, pitch, yaw of the rotation from the target orientation to ``quat`` (base frame)."""
        return rpy_from_quat(quat_multiply(quat, self._target_inv))

    def from_relative_rpy(self, rpy: np.ndarray) -> np.ndarray:
        """The orientation whose :meth:`relative_rpy` is ``rpy``."""
        return quat_normalize(quat_multiply(quat_from_rpy(rpy), self.target_quat))

    def clip_xyz(self, xyz: np.ndarray) -> np.ndarray:
        """The nearest position inside the box."""
        return np.clip(xyz, self.xyz_low, self.xyz_high)

    def clip_quat(self, quat: np.ndarray) -> np.ndarray:
        """An orientation inside the box: each relative angle clipped on the circle."""
        bounds = list(zip(self.relative_rpy(quat), self.rpy_low, self.rpy_high, strict=True))
        if all(_on_arc(a, lo, hi, 0.0) for a, lo, hi in bounds):
            return quat_normalize(quat)
        return self.from_relative_rpy(np.array([circular_clip(a, lo, hi) for a, lo, hi in bounds]))

    def contains_xyz(self, xyz: np.ndarray, tol: float = TOLERANCE) -> bool:
        """True if the position is inside the box (within ``tol``)."""
        return bool(np.all(xyz >= self.xyz_low - tol) and np.all(xyz <= self.xyz_high + tol))

    def contains_quat(self, quat: np.ndarray, tol: float = TOLERANCE) -> bool:
        """True if the orientation is inside the box (within ``tol`` rad per angle)."""
        bounds = zip(self.relative_rpy(quat), self.rpy_low, self.rpy_high, strict=True)
        return all(_on_arc(a, lo, hi, tol) for a, lo, hi in bounds)

    def contains(self, pose: Pose, tol: float = TOLERANCE) -> bool:
        """True if the pose is inside the box."""
        return self.contains_xyz(pose.xyz, tol) and self.contains_quat(pose.quat, tol)

    def clip(self, pose: Pose) -> Pose:
        """The pose clipped into the box."""
        return Pose(self.clip_xyz(pose.xyz), self.clip_quat(pose.quat))


def rotation_angle(a: np.ndarray, b: np.ndarray) -> float:
    """Angle (rad) of the rotation between two orientations, accurate near zero (unlike arccos)."""
    rel = quat_multiply(a, quat_conjugate(b))
    return 2.0 * math.atan2(float(np.linalg.norm(rel[:3])), abs(float(rel[3])))


def step_toward_xyz(start: np.ndarray, goal: np.ndarray, max_step: float) -> np.ndarray:
    """``goal``, or the point ``max_step`` from ``start`` on the segment toward it."""
    delta = goal - start
    dist = float(np.linalg.norm(delta))
    return goal.copy() if dist <= max_step else start + delta * (max_step / dist)


def step_toward_quat(start: np.ndarray, goal: np.ndarray, max_angle: float) -> np.ndarray:
    """``goal``, or the orientation ``max_angle`` from ``start`` on the geodesic toward it."""
    rel = rotvec_from_quat(quat_multiply(goal, quat_conjugate(start)))
    angle = float(np.linalg.norm(rel))
    if angle <= max_angle:
        return quat_normalize(goal)
    return quat_normalize(quat_multiply(quat_from_rotvec(rel * (max_angle / angle)), start))


class SafetyFilter:
    """Turns requested poses (or normalized actions) into safe commanded poses, one per call.

    :meth:`hold` seeds the filter with a pose (the measured pose at startup, after a driver
    outage); :meth:`filter` moves from the last safe pose toward a requested pose.
    """

    def __init__(self, target: PoseConfig, box: WorkspaceConfig, limits: SafetyConfig) -> None:
        self.workspace = Workspace(target, box)
        self.max_translation = limits.max_translation_step
        self.max_rotation = limits.max_rotation_step
        self.counters = SafetyCounters()
        self.last: Pose | None = None

    def hold(self, pose: Pose) -> Pose:
        """Make ``pose`` the last safe pose as it is (it is where the arm is, so holding it is safe)."""
        if not pose.is_finite():
            raise ValueError("cannot hold a non-finite pose")
        self.last = Pose.of(pose.xyz, pose.quat)
        return self.last

    def action(self, action: np.ndarray, base: Pose, cfg: ActionConfig) -> tuple[Pose, int | None]:
        """Apply a normalized action to ``base`` (the measured pose), then :meth:`filter`.

        Returns the safe pose and the gripper request (None: no change, or the action was rejected).
        """
        a = np.asarray(action, dtype=np.float64)
        if not (np.all(np.isfinite(a)) and base.is_finite()):
            return self._reject(), None
        target = apply_action(a, base.xyz, base.quat, cfg)
        return self.filter(Pose(target.xyz, target.quat)), target.gripper

    def filter(self, requested: Pose) -> Pose:
        """The safe pose closest to ``requested`` reachable from the last safe pose in one step."""
        if self.last is None:
            raise RuntimeError("SafetyFilter.filter before hold(): no last safe pose")
        if not requested.is_finite():
            return self._reject()
        requested = Pose.of(requested.xyz, requested.quat)
        xyz = self._filter_xyz(self.last.xyz, requested.xyz)
        quat = self._filter_quat(self.last.quat, requested.quat)
        self.last = Pose(xyz, quat)
        return self.last

    def _reject(self) -> Pose:
        self.counters.rejected_nonfinite += 1
        if self.last is None:
            raise RuntimeError("SafetyFilter: non-finite input before any safe pose")
        return self.last

    def _filter_xyz(self, last: np.ndarray, goal: np.ndarray) -> np.ndarray:
        # Step-limit, then project into the (convex) box: the projection is non-expansive and the
        # last pose is already inside, so the step limit still holds. From outside the box, walk
        # toward its nearest point instead, which never increases the distance to the box.
        stepped = step_toward_xyz(last, goal, self.max_translation)
        self.counters.clamps_translation_step += not np.array_equal(stepped, goal)
        clipped = self.workspace.clip_xyz(stepped)
        self.counters.clamps_workspace += not np.array_equal(clipped, stepped)
        if self.workspace.contains_xyz(last):
            return clipped
        return step_toward_xyz(last, clipped, self.max_translation)

    def _filter_quat(self, last: np.ndarray, goal: np.ndarray) -> np.ndarray:
        ws = self.workspace
        stepped = step_toward_quat(last, goal, self.max_rotation)
        self.counters.clamps_rotation_step += rotation_angle(stepped, goal) > TOLERANCE
        clipped = ws.clip_quat(stepped)
        self.counters.clamps_workspace += rotation_angle(clipped, stepped) > TOLERANCE
        if not ws.contains_quat(last):
            return step_toward_quat(last, clipped, self.max_rotation)
        if rotation_angle(last, clipped) <= self.max_rotation + TOLERANCE:
            return clipped
        # The orientation box is not geodesically convex, so clipping can (rarely) lengthen the
        # step: take the largest fraction of the step whose clipped pose satisfies both limits.
        rel = rotvec_from_quat(quat_multiply(stepped, quat_conjugate(last)))
        for fraction in (0.5, 0.25, 0.125, 0.0625):
            candidate = ws.clip_quat(quat_multiply(quat_from_rotvec(rel * fraction), last))
            if rotation_angle(last, candidate) <= self.max_rotation + TOLERANCE:
                return quat_normalize(candidate)
        return last


class Watchdog:
    """Reports when commands stop arriving; counts each time it starts a hold."""

    def __init__(self, timeout_s: float, counters: SafetyCounters) -> None:
        self.timeout_s = timeout_s
        self.counters = counters
        self.last_feed: float | None = None
        self._holding = False

    def feed(self, now: float) -> None:
        """A command arrived at ``now`` (s)."""
        self.last_feed = now
        self._holding = False

    def clear(self) -> None:
        """Forget the last command: the hold that follows (startup, after a reset) is not a watchdog hold."""
        self.last_feed = None
        self._holding = False

    def expired(self, now: float) -> bool:
        """True if no command arrived for longer than the timeout (False before the first one)."""
        if self.last_feed is None or now - self.last_feed <= self.timeout_s:
            return False
        if not self._holding:
            self._holding = True
            self.counters.watchdog_holds += 1
        return True


class GripperDebouncer:
    """Passes a gripper state change only if the last change is at least ``debounce_s`` old."""

    def __init__(self, debounce_s: float, counters: SafetyCounters) -> None:
        self.debounce_s = debounce_s
        self.counters = counters
        self.state: int | None = None
        self.changed_at = -math.inf

    def request(self, state: int | None, now: float, force: bool = False) -> int | None:
        """The new gripper state to send, or None (no request, no change, or debounced)."""
        if state is None or state == self.state:
            return None
        if not force and now - self.changed_at < self.debounce_s:
            self.counters.gripper_debounced += 1
            return None
        self.state = state
        self.changed_at = now
        return state
