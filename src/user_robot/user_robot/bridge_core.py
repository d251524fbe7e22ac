"""What the arm bridge decides, as a pure state machine on explicit times (no rclpy, no DDS).

The ``arm_bridge`` node feeds :class:`BridgeCore` the driver's state, the actor's commands and the
timer's ticks, each with the bridge clock's ``now`` (seconds), and publishes what comes back.
Everything that decides what the arm does lives here, so tests drive it tick by tick, with any
timing, deterministically:

- **Action base**: the *measured* pose (as SERL does). Adding the delta to the measured pose,
  rather than to the last commanded one, keeps the equilibrium within one action of where the arm
  really is, so it cannot wind up into a surface the arm is pressing on. The step limits apply
  between consecutive *commanded* poses, so the equilibrium never jumps either.
- **Holds**: before the first command (and after a reset) the measured pose is held; the command
  watchdog holds the last safe pose when commands stop; non-finite or malformed commands are
  rejected and the pose held. Commands pass the :class:`~user_robot.command_gate.CommandGate`
  (fresh, in the driven frame, from the owning publisher) before anything else.
- **Driver loss**: when the driver state stops arriving (a Franka reflex or FCI error leaves the
  hardware unconfigured) or the Franka reports an error mode, the status says so, the message
  names the cause and the recovery action, and nothing is commanded; when the state returns the
  core re-seeds from the measured pose, so the arm never jumps back to a stale target.
- **Resets**: lift, then move to the (seeded, randomized) reset pose through the safety filter;
  done once the commanded pose is the goal and the measured pose is within tolerance.

Stamps that identify a command (the actor's tick time, which the lockstep sim waits for) are kept
as integer nanoseconds so they round-trip exactly.
"""

from __future__ import annotations

import dataclasses
import enum
import threading

import numpy as np

from user_robot.action_mapping import GRIPPER_OPEN, command_frame
from user_robot.arm_state_core import VelocityEstimator
from user_robot.command_gate import CommandGate, Verdict
from user_robot.reset_planner import ResetTrajectory, plan_reset, reset_pose
from user_robot.robot_config import RobotConfig
from user_robot.safety import GripperDebouncer, Pose, SafetyFilter, Watchdog, rotation_angle
from user_robot.task_config import TaskConfig

RESET_SETTLE_S = 5.0  # time after the reset trajectory for the arm to arrive (impedance lag)
RESET_TOLERANCE_M = 0.01  # the reset succeeds once the measured pose is this close to the goal
RESET_TOLERANCE_RAD = 0.05
NS_PER_S = 1_000_000_000


class Status(enum.IntEnum):
    """The bridge status (the values of ``user_interfaces/ArmState``'s ``STATUS_*`` constants)."""

    OK = 0
    NO_DATA = 1
    HOLDING = 2
    RESETTING = 3
    ERROR = 4

    @property
    def label(self) -> str:
        """The name on /diagnostics (``ok``, ``no_data``, ...)."""
        return self.name.lower()


DRIVER_DOWN = (Status.NO_DATA, Status.ERROR)


@dataclasses.dataclass(frozen=True)
class Log:
    """A line for the node's logger: ``level`` is ``info`` or ``error``."""

    level: str
    text: str


@dataclasses.dataclass(frozen=True)
class Tick:
    """One control tick's outcome: publish ``pose`` (stamped ``stamp_ns``, None = now) unless None."""

    status: Status
    message: str
    pose: Pose | None = None
    stamp_ns: int | None = None
    log: Log | None = None


@dataclasses.dataclass(frozen=True)
class CommandOutcome:
    """One command's outcome: the gate's verdict, the pose to publish and the gripper state to send."""

    verdict: Verdict
    pose: Pose | None = None
    gripper: int | None = None


@dataclasses.dataclass
class Reset:
    """A running reset; ``done`` is set once it succeeded, failed or was aborted."""

    trajectory: ResetTrajectory
    started: float
    done: threading.Event = dataclasses.field(default_factory=threading.Event)
    success: bool = False
    message: str = ""

    def progress(self, now: float) -> float:
        """Fraction of the trajectory's duration elapsed at ``now``."""
        return self.trajectory.progress(now - self.started)


class BridgeCore:
    """See the module docstring. Not thread-safe: the node calls it from one thread.

    ``state_topic`` and ``recovery`` (the driver's current-pose topic and error-recovery action)
    only name things in status messages.
    """

    def __init__(self, task: TaskConfig, robot: RobotConfig, state_topic: str, recovery: str) -> None:
        limits = robot.safety
        self.task, self.robot = task, robot
        self.state_topic, self.recovery = state_topic, recovery
        self.safety = SafetyFilter(task.target, task.workspace, limits)
        self.watchdog = Watchdog(limits.watchdog_s, self.safety.counters)
        self.gripper = GripperDebouncer(task.action.gripper_debounce_s, self.safety.counters)
        self.velocity = VelocityEstimator()
        self.gate = CommandGate(
            command_frame(task.action, robot.base_frame, robot.ee_frame),
            limits.max_command_age_s,
            limits.command_owner_timeout_s,
        )
        self.measured: Pose | None = None
        self.measured_stamp_ns = 0
        self.measured_received = -np.inf
        self.robot_error: str | None = None
        self.status = Status.NO_DATA
        self.message = f"waiting for {state_topic}"
        self.reset: Reset | None = None
        self._outage = False  # an outage (or error) was logged and its end is not yet
        self._resync = True  # seed the safety filter from the measured pose on the next fresh state
        self._rejected = ""  # why the last command was rejected ("" = it was not)
        self._target_stamp_ns: int | None = None  # the stamp of the command that set the current target

    # -- inputs --------------------------------------------------------------------------------

    def on_pose(self, pose: Pose, stamp_ns: int, now: float) -> bool:
        """The driver's measured pose, stamped ``stamp_ns``; False (and counted) if non-finite."""
        if not pose.is_finite():
            self.safety.counters.rejected_nonfinite += 1
            return False
        self.measured = Pose.of(pose.xyz, pose.quat)
        self.measured_stamp_ns = stamp_ns
        self.measured_received = now
        self.velocity.update(stamp_ns / NS_PER_S, self.measured.xyz, self.measured.quat)
        return True

    def on_robot_error(self, error: str | None) -> Log | None:
        """The driver's error mode (None = no error); returns a line to log when it changes."""
        changed, self.robot_error = error != self.robot_error, error
        if not changed:
            return None
        if error:
            return Log("error", f"Franka error: {error}; recover with the {self.recovery} action")
        self._resync = True
        return Log("info", "Franka error cleared: re-seeding from the measured pose")

    def command(
        self, now: float, stamp_ns: int, frame_id: str, source: object, action: np.ndarray, action_scale: float = 1.0
    ) -> CommandOutcome:
        """One ``arm/command``: gate it, map it from the measured pose, filter it (``action_scale`` ∈ [0, 1])."""
        verdict = self.gate.admit(now, stamp_ns / NS_PER_S, frame_id, source)
        if not verdict.admitted:
            return CommandOutcome(verdict)
        if self.reset is not None or self.status in DRIVER_DOWN:
            return CommandOutcome(verdict)  # the tick reports why; the watchdog is not fed
        if self.safety.last is None or self.measured is None:
            return CommandOutcome(verdict)
        self.watchdog.feed(now)
        cfg = self.task.action
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (cfg.dims,):
            self._rejected = f"command has {action.size} action dims, task {self.task.name} expects {cfg.dims}"
            return CommandOutcome(verdict)
        cfg = dataclasses.replace(
            cfg,
            translation_scale=cfg.translation_scale * action_scale,
            rotation_scale=cfg.rotation_scale * action_scale,
        )
        rejected_before = self.safety.counters.rejected_nonfinite
        pose, grip = self.safety.action(action, self.measured, cfg)
        rejected = self.safety.counters.rejected_nonfinite > rejected_before
        self._rejected = "rejected a non-finite action" if rejected else ""
        self._target_stamp_ns = stamp_ns
        return CommandOutcome(verdict, pose, self._gripper_request(grip, now))

    def _gripper_request(self, state: int | None, now: float, force: bool = False) -> int | None:
        if self.task.action.gripper == "none" and not force:
            return None
        return self.gripper.request(state, now, force)

    # -- control loop --------------------------------------------------------------------------

    def tick(self, now: float) -> Tick:
        """Advance holds and resets at ``now``; the status, and the pose to (re-)publish."""
        status, self.message = self._update(now)
        log = self._transition_log(status)
        self.status = status
        if status == Status.OK:
            return Tick(status, self.message, self.safety.last, self._target_stamp_ns, log)
        if status in (Status.HOLDING, Status.RESETTING):
            self._target_stamp_ns = None
            return Tick(status, self.message, self.safety.last, None, log)
        return Tick(status, self.message, None, None, log)

    def _transition_log(self, status: Status) -> Log | None:
        if status == self.status:
            return None
        if status in DRIVER_DOWN and self.measured is not None:
            self._outage = True
            return Log("error", self.message)
        if self._outage:  # (not at startup: waiting for the first state is no outage)
            self._outage = False
            return Log("info", f"driver state back: {status.label} ({self.message})")
        return None

    def state_fresh(self, now: float) -> bool:
        """True if the last measured pose is within ``max_state_age_s`` of ``now``."""
        return now - self.measured_received <= self.robot.safety.max_state_age_s

    def _update(self, now: float) -> tuple[Status, str]:
        if self.measured is None:
            return Status.NO_DATA, f"waiting for {self.state_topic}"
        if not self.state_fresh(now):
            self._resync = True
            self._abort_reset("driver state lost")
            age_ms = (now - self.measured_received) * 1e3
            return Status.NO_DATA, (
                f"no driver state on {self.state_topic} for {age_ms:.0f} ms "
                f"(a reflex or FCI error? recover with {self.recovery}); holding nothing"
            )
        if self.robot_error:
            self._abort_reset(self.robot_error)
            return Status.ERROR, f"{self.robot_error}; recover with {self.recovery}"
        if self._resync:
            self.safety.hold(self.measured)
            self.watchdog.clear()
            self._resync = False
        if self.reset is not None:
            return self._advance_reset(now)
        if self.watchdog.last_feed is None:
            return Status.HOLDING, "holding the last safe pose until the first command"
        if self.watchdog.expired(now):
            age_ms = (now - self.watchdog.last_feed) * 1e3
            return Status.HOLDING, f"watchdog: no command for {age_ms:.0f} ms, holding the last safe pose"
        if self._rejected:
            return Status.HOLDING, self._rejected
        return Status.OK, "ok"

    # -- reset ---------------------------------------------------------------------------------

    def reset_refusal(self) -> str | None:
        """Why a reset cannot start now (None: it can)."""
        if self.reset is not None:
            return "a reset is running"
        if self.status in DRIVER_DOWN or self.safety.last is None:
            return self.message
        return None

    def reset_goal(self, target: Pose | None, randomize: bool, seed: int) -> Pose:
        """The reset pose: ``target`` clipped into the box, else the task's (seeded when ``randomize``)."""
        if target is not None and target.is_finite():
            return self.safety.workspace.clip(Pose.of(target.xyz, target.quat))
        rng = np.random.default_rng(seed or None) if randomize else None
        return reset_pose(self.task, self.safety.workspace, rng)

    def start_reset(self, goal: Pose, now: float, open_gripper: bool) -> tuple[Reset, int | None]:
        """Start a reset to ``goal`` (call after :meth:`reset_refusal` said None); returns it and a gripper state."""
        trajectory = plan_reset(self.safety.last, goal, self.task.reset, self.safety.workspace)
        self.reset = Reset(trajectory, now)
        return self.reset, self._gripper_request(GRIPPER_OPEN, now, force=True) if open_gripper else None

    def cancel_reset(self) -> None:
        """Stop a running reset where it got to (the pose reached is held)."""
        self._abort_reset("canceled")

    def _advance_reset(self, now: float) -> tuple[Status, str]:
        reset = self.reset
        t = now - reset.started
        pose = self.safety.filter(reset.trajectory.pose_at(t))
        goal = reset.trajectory.goal
        commanded = np.linalg.norm(pose.xyz - goal.xyz) < 1e-6 and rotation_angle(pose.quat, goal.quat) < 1e-6
        distance = float(np.linalg.norm(self.measured.xyz - goal.xyz))
        angle = rotation_angle(self.measured.quat, goal.quat)
        arrived = distance <= RESET_TOLERANCE_M and angle <= RESET_TOLERANCE_RAD
        if t >= reset.trajectory.duration and commanded and arrived:
            self._finish_reset(True, f"reset done: the arm is {distance * 1e3:.1f} mm from the reset pose")
            return Status.HOLDING, "reset done, holding the reset pose until the first command"
        if t > reset.trajectory.duration + RESET_SETTLE_S:
            message = (
                f"reset failed: {RESET_SETTLE_S:.0f} s after the trajectory the arm is {distance * 1e3:.0f} mm and "
                f"{angle:.2f} rad from the reset pose (blocked, or the impedance too soft to get there?)"
            )
            self._finish_reset(False, message)
            return Status.HOLDING, message
        return Status.RESETTING, f"resetting ({100 * reset.trajectory.progress(t):.0f}%)"

    def _finish_reset(self, success: bool, message: str) -> None:
        reset, self.reset = self.reset, None
        if reset is None:
            return
        reset.success, reset.message = success, message
        self.watchdog.clear()  # hold the reset pose until the actor commands again
        reset.done.set()

    def _abort_reset(self, why: str) -> None:
        if self.reset is not None:
            self._finish_reset(False, f"reset aborted: {why}")

    # -- diagnostics ---------------------------------------------------------------------------

    def diagnostics(self, now: float) -> dict[str, object]:
        """The status, state age and every safety and command-gate counter, by diagnostics key."""
        return {
            "status": self.status.label,
            "state_age_ms": (now - self.measured_received) * 1e3 if self.measured is not None else -1.0,
            **self.safety.counters.as_dict(),
            **{f"commands_{reason}": count for reason, count in self.gate.refused.items()},
        }
