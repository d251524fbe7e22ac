"""arm_bridge: the driver ↔ learning-stack bridge, and where safety lives.

Runs in the robot namespace (``-r __ns:=/robot_0``). Reads the driver's state topics (names and
QoS from ``config/robots/<robot>.yaml``), publishes ``arm/state`` at ``safety.bridge_rate_hz``, and
turns each ``arm/command`` (a normalized action) into an absolute equilibrium pose through
:func:`user_robot.action_mapping.apply_action` and :class:`user_robot.safety.SafetyFilter`. The
last safe pose is re-published on the driver's equilibrium topic at the bridge rate.

Action base: the **measured** pose (as SERL does). Adding the delta to the measured pose, rather
than to the last commanded one, keeps the equilibrium within one action of where the arm really
is, so it cannot wind up into a surface the arm is pressing on. The step limits apply between
consecutive *commanded* poses, so the equilibrium never jumps either.

Holds: before the first command (and after a reset) the bridge holds the measured pose; a command
watchdog holds the last safe pose when commands stop; non-finite or malformed commands are
rejected and the pose held. When the driver state stops arriving (a Franka reflex or FCI error
leaves the hardware unconfigured) or the Franka reports an error mode, the status says so, a log
line names the cause and the recovery action, and nothing is commanded; when the state returns
the bridge re-seeds from the measured pose, so the arm never jumps back to a stale target.
"""

from __future__ import annotations

import dataclasses
import importlib
import threading
import time
from typing import Any

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Point, PoseStamped, Quaternion, Twist, Vector3, Wrench, WrenchStamped
from geometry_msgs.msg import Pose as PoseMsg
from rcl_interfaces.msg import FloatingPointRange, ParameterDescriptor
from rclpy.action import ActionClient, ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.subscription import MessageInfo
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64

from user_interfaces.action import ResetArm
from user_interfaces.msg import ArmCommand, ArmState
from user_robot.action_mapping import GRIPPER_CLOSE, GRIPPER_OPEN, command_frame
from user_robot.arm_state_core import VelocityEstimator, gripper_width, robot_mode_error
from user_robot.command_gate import CommandGate
from user_robot.diagnostics import ERROR, OK, WARN, diagnostic_array
from user_robot.nodes.qos import CONTROL, PROFILES
from user_robot.nodes.runtime import run
from user_robot.reset_planner import ResetTrajectory, plan_reset, reset_pose
from user_robot.robot_config import load_robot
from user_robot.safety import GripperDebouncer, Pose, SafetyFilter, Watchdog, rotation_angle
from user_robot.task_config import load_task

STATUS_NAMES = {
    ArmState.STATUS_OK: "ok",
    ArmState.STATUS_NO_DATA: "no_data",
    ArmState.STATUS_HOLDING: "holding",
    ArmState.STATUS_RESETTING: "resetting",
    ArmState.STATUS_ERROR: "error",
}
RESET_SETTLE_S = 5.0  # time after the reset trajectory for the arm to arrive (impedance lag)
RESET_TOLERANCE_M = 0.01  # the reset succeeds once the measured pose is this close to the goal
RESET_TOLERANCE_RAD = 0.05
FRANKA_BACKENDS = ("franka_ros2", "multipanda", "crisp")


class StartupError(RuntimeError):
    """The node cannot start with this configuration (the message says what to do)."""


def _pose_msg(pose: Pose) -> PoseMsg:
    x, y, z = (float(v) for v in pose.xyz)
    qx, qy, qz, qw = (float(v) for v in pose.quat)
    return PoseMsg(position=Point(x=x, y=y, z=z), orientation=Quaternion(x=qx, y=qy, z=qz, w=qw))


def _pose_of(msg: PoseMsg) -> Pose:
    p, q = msg.position, msg.orientation
    return Pose(np.array([p.x, p.y, p.z]), np.array([q.x, q.y, q.z, q.w]))


def _vec(v: np.ndarray) -> Vector3:
    return Vector3(x=float(v[0]), y=float(v[1]), z=float(v[2]))


def _seconds(stamp: Any) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


@dataclasses.dataclass
class _Reset:
    trajectory: ResetTrajectory
    started: float
    done: threading.Event = dataclasses.field(default_factory=threading.Event)
    success: bool = False
    message: str = ""


class ArmBridge(Node):
    """See the module docstring."""

    def __init__(self) -> None:
        super().__init__("arm_bridge")
        p = self._declare_parameters()
        self.task = load_task(p["task"])
        self.robot = load_robot(p["robot"])
        self.robot_id = p["robot_id"] or self.get_namespace().strip("/") or "robot_0"
        drv, limits = self.robot.driver, self.robot.safety
        self.safety = SafetyFilter(self.task.target, self.task.workspace, limits)
        self.watchdog = Watchdog(limits.watchdog_s, self.safety.counters)
        self.gripper = GripperDebouncer(self.task.action.gripper_debounce_s, self.safety.counters)
        self.velocity = VelocityEstimator()
        self.commands = CommandGate(
            command_frame(self.task.action, self.robot.base_frame, self.robot.ee_frame),
            limits.max_command_age_s,
            limits.command_owner_timeout_s,
        )
        self._lock = threading.Lock()
        self._measured: Pose | None = None
        self._measured_stamp = Time()
        self._measured_received = -np.inf
        self._joints_received = -np.inf
        self._wrench = Wrench()
        self._gripper_width = 0.0
        self._robot_error: str | None = None
        self._resync = True  # seed the safety filter from the measured pose on the next fresh state
        self._rejected = ""  # why the last command was rejected ("" = it was not)
        self._reset: _Reset | None = None
        self._status = ArmState.STATUS_NO_DATA
        self._target_stamp: Time | None = None  # when the current commanded target was set
        self._message = f"waiting for {drv.current_pose}"
        self._ticks: list[float] = []

        state_qos = PROFILES[drv.state_qos]
        # Driver state in its own group: a 200 Hz–1 kHz stream must never starve the tick (or vice versa).
        states = MutuallyExclusiveCallbackGroup()
        self.create_subscription(PoseStamped, drv.current_pose, self._on_pose, state_qos, callback_group=states)
        self.create_subscription(WrenchStamped, drv.external_wrench, self._on_wrench, state_qos, callback_group=states)
        self.create_subscription(JointState, drv.joint_states, self._on_joints, state_qos, callback_group=states)
        if self.robot.gripper != "none":
            self.create_subscription(
                JointState, drv.gripper_joint_states, self._on_gripper_joints, state_qos, callback_group=states
            )
        self.create_subscription(ArmCommand, "arm/command", self._on_command, CONTROL)
        self.state_pub = self.create_publisher(ArmState, "arm/state", CONTROL)
        self.pose_pub = self.create_publisher(PoseStamped, drv.equilibrium_pose, PROFILES[drv.command_qos])
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._send_gripper = self._gripper_sender()
        self._watch_franka_state()

        ActionServer(
            self,
            ResetArm,
            "arm/reset",
            execute_callback=self._execute_reset,
            goal_callback=self._accept_reset,
            cancel_callback=lambda _: CancelResponse.ACCEPT,
            callback_group=ReentrantCallbackGroup(),
        )
        self.create_timer(1.0 / limits.bridge_rate_hz, self._tick)
        self.create_timer(1.0, self._publish_diagnostics)
        self.get_logger().info(
            f"arm bridge for {self.robot_id}: task {self.task.name}, robot {self.robot.name} ({self.robot.backend}), "
            f"state {self.resolve_topic_name(drv.current_pose)}, "
            f"equilibrium {self.resolve_topic_name(drv.equilibrium_pose)}, gripper {self.robot.gripper}"
        )

    # -- setup ---------------------------------------------------------------------------------

    def _declare_parameters(self) -> dict[str, Any]:
        self.declare_parameter("task", "peg_insertion", ParameterDescriptor(description="task config name"))
        self.declare_parameter("robot", "sim", ParameterDescriptor(description="robot config name"))
        self.declare_parameter(
            "robot_id", "", ParameterDescriptor(description="robot id in logs and diagnostics ('' = namespace)")
        )
        self.declare_parameter(
            "action_scale",
            1.0,
            ParameterDescriptor(
                description="multiplier on the task's translation and rotation scales (safe to lower at run time)",
                floating_point_range=[FloatingPointRange(from_value=0.0, to_value=1.0, step=0.0)],
            ),
        )
        return {name: self.get_parameter(name).value for name in ("task", "robot", "robot_id")}

    def _gripper_sender(self) -> Any:
        """The function that sends a gripper state (GRIPPER_OPEN/CLOSE) to the configured gripper."""
        if self.robot.gripper == "none":
            return lambda state: None
        max_width = self.robot.gripper_max_width
        if self.robot.gripper == "topic":
            pub = self.create_publisher(Float64, self.robot.driver.gripper_command, CONTROL)
            return lambda state: pub.publish(Float64(data=0.0 if state == GRIPPER_CLOSE else max_width))
        try:
            franka_action = importlib.import_module("franka_msgs.action")
        except ImportError as exc:
            raise StartupError(
                f"robot '{self.robot.name}' sets gripper: franka_action, which needs the franka_msgs package "
                "(part of franka_ros2: build it in your workspace or install ros-$ROS_DISTRO-franka-msgs); "
                "or set gripper: topic or none in the robot config"
            ) from exc
        ns = self.robot.driver.gripper_action_ns
        move = ActionClient(self, franka_action.Move, f"{ns}/move")
        grasp = ActionClient(self, franka_action.Grasp, f"{ns}/grasp")
        speed, force = self.robot.gripper_speed, self.robot.gripper_force

        def send(state: int) -> None:
            if state == GRIPPER_CLOSE:  # grasp whatever is there: any final width counts as success
                goal = franka_action.Grasp.Goal(width=0.0, speed=speed, force=force)
                goal.epsilon.inner = goal.epsilon.outer = max_width
                client = grasp
            else:
                goal, client = franka_action.Move.Goal(width=max_width, speed=speed), move
            if not client.server_is_ready():
                self.get_logger().error(f"franka_gripper actions under {ns} are not available")
                return
            client.send_goal_async(goal)

        return send

    def _watch_franka_state(self) -> None:
        """Subscribe FrankaRobotState for reflexes and errors where franka_msgs exists."""
        if self.robot.backend not in FRANKA_BACKENDS:
            return
        try:
            msg_type = importlib.import_module("franka_msgs.msg").FrankaRobotState
        except (ImportError, AttributeError):
            self.get_logger().warn(
                "franka_msgs not found: Franka errors show only as missing driver state (status NO_DATA)"
            )
            return
        self.create_subscription(msg_type, self.robot.driver.robot_state, self._on_franka_state, PROFILES["sensor"])

    # -- inputs --------------------------------------------------------------------------------

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_pose(self, msg: PoseStamped) -> None:
        pose = _pose_of(msg.pose)
        if not pose.is_finite():
            self.safety.counters.rejected_nonfinite += 1
            return
        now = self._now()
        unstamped = msg.header.stamp.sec == 0 and msg.header.stamp.nanosec == 0
        self._measured_stamp = self.get_clock().now().to_msg() if unstamped else msg.header.stamp
        stamp = _seconds(self._measured_stamp)
        self._measured = Pose.of(pose.xyz, pose.quat)
        self._measured_received = now
        self.velocity.update(stamp, self._measured.xyz, self._measured.quat)

    def _on_wrench(self, msg: WrenchStamped) -> None:
        self._wrench = msg.wrench

    def _on_joints(self, msg: JointState) -> None:
        self._joints_received = self._now()

    def _on_gripper_joints(self, msg: JointState) -> None:
        self._gripper_width = gripper_width(msg.position)

    def _on_franka_state(self, msg: Any) -> None:
        errors = msg.current_errors
        active = [name for name in errors.get_fields_and_field_types() if getattr(errors, name) is True]
        error = robot_mode_error(int(msg.robot_mode), active)
        if error != self._robot_error:
            if error:
                self.get_logger().error(
                    f"Franka error: {error}; recover with the {self.robot.driver.error_recovery_action} action"
                )
            else:
                self.get_logger().info("Franka error cleared: re-seeding from the measured pose")
                self._resync = True
        self._robot_error = error

    def _state_fresh(self, now: float) -> bool:
        return now - self._measured_received <= self.robot.safety.max_state_age_s

    def _on_command(self, msg: ArmCommand, info: MessageInfo) -> None:
        now = self._now()
        gid = info.get("publisher_gid")
        source = bytes(gid["data"]) if isinstance(gid, dict) and "data" in gid else gid
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        verdict = self.commands.admit(now, stamp, msg.header.frame_id, source)
        if not verdict.admitted:
            if verdict.log:
                self.get_logger().warning(
                    f"dropping arm commands ({verdict.reason}): {verdict.detail}; publishers on arm/command: "
                    f"{', '.join(self._command_publishers()) or '-'}"
                )
            return
        with self._lock:
            if self._reset is not None or self._status in (ArmState.STATUS_NO_DATA, ArmState.STATUS_ERROR):
                return  # the tick reports why; the watchdog is not fed
            if self.safety.last is None or self._measured is None:
                return
            self.watchdog.feed(now)
            cfg = self.task.action
            action = np.asarray(msg.action, dtype=np.float64)
            if action.shape != (cfg.dims,):
                self._rejected = f"command has {action.size} action dims, task {self.task.name} expects {cfg.dims}"
                return
            scale = self.get_parameter("action_scale").value
            cfg = dataclasses.replace(
                cfg, translation_scale=cfg.translation_scale * scale, rotation_scale=cfg.rotation_scale * scale
            )
            rejected_before = self.safety.counters.rejected_nonfinite
            pose, grip = self.safety.action(action, self._measured, cfg)
            self._rejected = (
                "rejected a non-finite action" if self.safety.counters.rejected_nonfinite > rejected_before else ""
            )
            self._target_stamp = msg.header.stamp  # the actor's tick time (the lockstep sim waits for it)
            self._publish_pose(pose, self._target_stamp)
            self._gripper_request(grip, now)

    def _command_publishers(self) -> list[str]:
        """``namespace/node`` of every publisher on ``arm/command`` (for the log line on a refusal)."""
        infos = self.get_publishers_info_by_topic(self.resolve_topic_name("arm/command"))
        return [f"{i.node_namespace.rstrip('/')}/{i.node_name}" for i in infos]

    def _gripper_request(self, state: int | None, now: float, force: bool = False) -> None:
        if self.task.action.gripper == "none" and not force:
            return
        sent = self.gripper.request(state, now, force)
        if sent is not None:
            self._send_gripper(sent)

    # -- control loop --------------------------------------------------------------------------

    def _tick(self) -> None:
        self._ticks.append(time.monotonic())
        with self._lock:
            status, self._message = self._update(self._now())
            if status != self._status:
                self._log_transition(status)
                self._status = status
            if status == ArmState.STATUS_OK:
                self._publish_pose(self.safety.last, self._target_stamp)
            elif status in (ArmState.STATUS_HOLDING, ArmState.STATUS_RESETTING):
                self._target_stamp = None
                self._publish_pose(self.safety.last)
            self.state_pub.publish(self._state_msg())

    def _log_transition(self, status: int) -> None:
        if status in (ArmState.STATUS_NO_DATA, ArmState.STATUS_ERROR) and self._measured is not None:
            self.get_logger().error(self._message)
        elif self._status in (ArmState.STATUS_NO_DATA, ArmState.STATUS_ERROR):
            self.get_logger().info(f"driver state back: {STATUS_NAMES[status]} ({self._message})")

    def _update(self, now: float) -> tuple[int, str]:
        """Advance holds and resets; return the status and its message."""
        drv = self.robot.driver
        if self._measured is None:
            return ArmState.STATUS_NO_DATA, f"waiting for {self.resolve_topic_name(drv.current_pose)}"
        if not self._state_fresh(now):
            self._resync = True
            self._abort_reset("driver state lost")
            age_ms = (now - self._measured_received) * 1e3
            return ArmState.STATUS_NO_DATA, (
                f"no driver state on {self.resolve_topic_name(drv.current_pose)} for {age_ms:.0f} ms "
                f"(a reflex or FCI error? recover with {drv.error_recovery_action}); holding nothing"
            )
        if self._robot_error:
            self._abort_reset(self._robot_error)
            return ArmState.STATUS_ERROR, f"{self._robot_error}; recover with {drv.error_recovery_action}"
        if self._resync:
            self.safety.hold(self._measured)
            self.watchdog.clear()
            self._resync = False
        if self._reset is not None:
            return self._advance_reset(now)
        if self.watchdog.last_feed is None:
            return ArmState.STATUS_HOLDING, "holding the last safe pose until the first command"
        if self.watchdog.expired(now):
            age_ms = (now - self.watchdog.last_feed) * 1e3
            return ArmState.STATUS_HOLDING, f"watchdog: no command for {age_ms:.0f} ms, holding the last safe pose"
        if self._rejected:
            return ArmState.STATUS_HOLDING, self._rejected
        return ArmState.STATUS_OK, "ok"

    def _publish_pose(self, pose: Pose, stamp: Time | None = None) -> None:
        """Publish the equilibrium pose, stamped when its target was set (a command's time; now for holds)."""
        msg = PoseStamped()
        msg.header.stamp = stamp or self.get_clock().now().to_msg()
        msg.header.frame_id = self.robot.base_frame
        msg.pose = _pose_msg(pose)
        self.pose_pub.publish(msg)

    def _state_msg(self) -> ArmState:
        msg = ArmState(status=self._status, message=self._message)
        msg.header.frame_id = self.robot.base_frame
        if self._measured is not None:
            msg.header.stamp = self._measured_stamp
            msg.pose = _pose_msg(self._measured)
            msg.velocity = Twist(linear=_vec(self.velocity.linear), angular=_vec(self.velocity.angular))
        msg.wrench = self._wrench
        msg.gripper_width = float(self._gripper_width)
        msg.gripper_closed = self.gripper.state == GRIPPER_CLOSE
        if self.safety.last is not None:
            msg.commanded_pose = _pose_msg(self.safety.last)
        return msg

    # -- reset action --------------------------------------------------------------------------

    def _accept_reset(self, goal: ResetArm.Goal) -> GoalResponse:
        with self._lock:
            busy = self._reset is not None or self._status in (ArmState.STATUS_NO_DATA, ArmState.STATUS_ERROR)
        if busy:
            self.get_logger().warn(f"reset rejected: {'a reset is running' if self._reset else self._message}")
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _reset_goal_pose(self, goal: ResetArm.Goal) -> Pose:
        given = _pose_of(goal.target)
        if not goal.use_task_reset_pose and given.is_finite() and np.linalg.norm(given.quat) > 0:
            return self.safety.workspace.clip(Pose.of(given.xyz, given.quat))
        rng = np.random.default_rng(goal.seed or None) if goal.randomize else None
        return reset_pose(self.task, self.safety.workspace, rng)

    def _execute_reset(self, goal_handle: Any) -> ResetArm.Result:
        goal = goal_handle.request
        with self._lock:
            start = self.safety.last
            if start is None or self._status in (ArmState.STATUS_NO_DATA, ArmState.STATUS_ERROR):
                goal_handle.abort()
                return ResetArm.Result(success=False, message=self._message)
            trajectory = plan_reset(start, self._reset_goal_pose(goal), self.task.reset, self.safety.workspace)
            reset = self._reset = _Reset(trajectory, self._now())
            if goal.open_gripper:
                self._gripper_request(GRIPPER_OPEN, self._now(), force=True)
        feedback = ResetArm.Feedback()
        while not reset.done.wait(0.05):
            if goal_handle.is_cancel_requested:
                with self._lock:
                    self._abort_reset("canceled")
                goal_handle.canceled()
                return ResetArm.Result(success=False, final_pose=_pose_msg(self.safety.last), message="canceled")
            feedback.progress = float(trajectory.progress(self._now() - reset.started))
            goal_handle.publish_feedback(feedback)
        final = _pose_msg(self.safety.last)
        if reset.success:
            goal_handle.succeed()
        else:
            goal_handle.abort()
        return ResetArm.Result(success=reset.success, final_pose=final, message=reset.message)

    def _advance_reset(self, now: float) -> tuple[int, str]:
        reset = self._reset
        t = now - reset.started
        pose = self.safety.filter(reset.trajectory.pose_at(t))
        goal = reset.trajectory.goal
        commanded = np.linalg.norm(pose.xyz - goal.xyz) < 1e-6 and rotation_angle(pose.quat, goal.quat) < 1e-6
        distance = float(np.linalg.norm(self._measured.xyz - goal.xyz))
        angle = rotation_angle(self._measured.quat, goal.quat)
        arrived = distance <= RESET_TOLERANCE_M and angle <= RESET_TOLERANCE_RAD
        if t >= reset.trajectory.duration and commanded and arrived:
            self._finish_reset(True, f"reset done: the arm is {distance * 1e3:.1f} mm from the reset pose")
            return ArmState.STATUS_HOLDING, "reset done, holding the reset pose until the first command"
        if t > reset.trajectory.duration + RESET_SETTLE_S:
            message = (
                f"reset failed: {RESET_SETTLE_S:.0f} s after the trajectory the arm is {distance * 1e3:.0f} mm and "
                f"{angle:.2f} rad from the reset pose (blocked, or the impedance too soft to get there?)"
            )
            self._finish_reset(False, message)
            return ArmState.STATUS_HOLDING, message
        return ArmState.STATUS_RESETTING, f"resetting ({100 * reset.trajectory.progress(t):.0f}%)"

    def _finish_reset(self, success: bool, message: str) -> None:
        reset, self._reset = self._reset, None
        if reset is None:
            return
        reset.success, reset.message = success, message
        self.watchdog.clear()  # hold the reset pose until the actor commands again
        reset.done.set()

    def _abort_reset(self, why: str) -> None:
        if self._reset is not None:
            self._finish_reset(False, f"reset aborted: {why}")

    # -- diagnostics ---------------------------------------------------------------------------

    def _publish_diagnostics(self) -> None:
        ticks, self._ticks = np.array(self._ticks), []
        periods = np.diff(ticks)
        now = self._now()
        values: dict[str, object] = {
            "status": STATUS_NAMES[self._status],
            "loop_rate_hz": 1.0 / float(np.mean(periods)) if periods.size else 0.0,
            "loop_jitter_ms": float(np.std(periods)) * 1e3 if periods.size else 0.0,
            "state_age_ms": (now - self._measured_received) * 1e3 if self._measured is not None else -1.0,
            **self.safety.counters.as_dict(),
            **{f"commands_{reason}": count for reason, count in self.commands.refused.items()},
            "joint_states_age_ms": (now - self._joints_received) * 1e3 if np.isfinite(self._joints_received) else -1.0,
        }
        level = {ArmState.STATUS_NO_DATA: WARN, ArmState.STATUS_ERROR: ERROR}.get(self._status, OK)
        self.diag_pub.publish(
            diagnostic_array(
                self.get_clock().now().to_msg(),
                f"{self.robot_id}/arm_bridge",
                self.robot_id,
                values,
                level,
                self._message,
            )
        )


def main(args: list[str] | None = None) -> None:
    """Run the arm bridge; a startup or config error is fatal with a clear message."""
    run(ArmBridge, "arm_bridge", args, threads=2, fatal=(StartupError,))


if __name__ == "__main__":
    main()
