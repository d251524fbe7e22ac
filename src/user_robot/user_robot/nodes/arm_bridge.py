"""arm_bridge: the driver ↔ learning-stack bridge, and where safety lives (wiring only).

Runs in the robot namespace (``-r __ns:=/robot_0``). Reads the driver's state topics (names and
QoS from ``config/robots/<robot>.yaml``), publishes ``arm/state`` at ``safety.bridge_rate_hz`` and with the
first driver state of each control period (:class:`user_robot.arm_state_core.ControlPeriodRelay`), and
turns each ``arm/command`` (a normalized action) into an absolute equilibrium pose; the last safe
pose is re-published on the driver's equilibrium topic at the bridge rate. Every decision (the
command gate, action mapping and safety filter, holds, the watchdog, driver loss and re-seeding,
resets) is :class:`user_robot.bridge_core.BridgeCore`'s; this node converts messages, publishes what
the core returns and logs what it says.
"""

from __future__ import annotations

import importlib
import time
from typing import Any

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Point, PoseStamped, Quaternion, Twist, Vector3, Wrench, WrenchStamped
from geometry_msgs.msg import Pose as PoseMsg
from rcl_interfaces.msg import FloatingPointRange, ParameterDescriptor
from rclpy.action import ActionClient, ActionServer, CancelResponse, GoalResponse
from rclpy.node import Node
from rclpy.subscription import MessageInfo
from rclpy.task import Future
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64

from user_interfaces.action import ResetArm
from user_interfaces.msg import ArmCommand, ArmState
from user_robot.action_mapping import GRIPPER_CLOSE
from user_robot.arm_state_core import ControlPeriodRelay, gripper_width, robot_mode_error
from user_robot.bridge_core import NS_PER_S, BridgeCore, Log, Reset, Status, Tick
from user_robot.diagnostics import ERROR, OK, WARN, diagnostic_array
from user_robot.nodes.qos import CONTROL, HEARTBEAT, PROFILES
from user_robot.nodes.runtime import run
from user_robot.nodes.stamps import stamp_from_ns, stamp_ns
from user_robot.robot_config import load_robot
from user_robot.safety import Pose
from user_robot.task_config import load_task

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


class ArmBridge(Node):
    """See the module docstring."""

    def __init__(self) -> None:
        super().__init__("arm_bridge")
        p = self._declare_parameters()
        self.task = load_task(p["task"])
        self.robot = load_robot(p["robot"])
        self.robot_id = p["robot_id"] or self.get_namespace().strip("/") or "robot_0"
        drv = self.robot.driver
        self.core = BridgeCore(
            self.task, self.robot, self.resolve_topic_name(drv.current_pose), drv.error_recovery_action
        )
        self._running_reset: tuple[Any, Reset, Future] | None = None  # goal handle, reset, its completion
        self._joints_received = -np.inf
        self._wrench = Wrench()
        self._gripper_width = 0.0
        self._ticks: list[float] = []

        streams = ("pose", *(("wrench",) if drv.external_wrench else ()),
                   *(("gripper",) if self.robot.gripper != "none" else ()))
        self._relay = ControlPeriodRelay(round(NS_PER_S / self.task.control_rate_hz), streams)
        self._sim_time = bool(self.get_parameter("use_sim_time").value)
        state_qos = PROFILES[drv.state_qos]
        self.create_subscription(PoseStamped, drv.current_pose, self._on_pose, state_qos)
        if drv.external_wrench:  # ("": no force sensing; the wrench stays zero)
            self.create_subscription(WrenchStamped, drv.external_wrench, self._on_wrench, state_qos)
        self.create_subscription(JointState, drv.joint_states, self._on_joints, state_qos)
        if self.robot.gripper != "none":
            self.create_subscription(JointState, drv.gripper_joint_states, self._on_gripper_joints, state_qos)
        self.create_subscription(ArmCommand, "arm/command", self._on_command, CONTROL)
        self.state_pub = self.create_publisher(ArmState, "arm/state", HEARTBEAT)
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
        )
        self.create_timer(1.0 / self.robot.safety.bridge_rate_hz, self._tick)
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
        return self.get_clock().now().nanoseconds / NS_PER_S

    def _log(self, line: Log | None) -> None:
        # One call per severity: rclpy refuses a call site whose severity changes between calls.
        if line is None:
            return
        if line.level == "error":
            self.get_logger().error(line.text)
        else:
            self.get_logger().info(line.text)

    def _on_pose(self, msg: PoseStamped) -> None:
        unstamped = msg.header.stamp.sec == 0 and msg.header.stamp.nanosec == 0
        ns = self.get_clock().now().nanoseconds if unstamped else stamp_ns(msg.header.stamp)
        self.core.on_pose(_pose_of(msg.pose), ns, self._now())
        self._arrived("pose", ns)

    def _on_wrench(self, msg: WrenchStamped) -> None:
        self._wrench = msg.wrench
        self._arrived("wrench", stamp_ns(msg.header.stamp))

    def _on_joints(self, msg: JointState) -> None:
        self._joints_received = self._now()

    def _on_gripper_joints(self, msg: JointState) -> None:
        self._gripper_width = gripper_width(msg.position)
        self._arrived("gripper", stamp_ns(msg.header.stamp))

    def _arrived(self, stream: str, ns: int) -> None:
        if self._relay.arrived(stream, ns):  # the state of a control tick goes out at once (ControlPeriodRelay)
            self.state_pub.publish(self._state_msg())

    def _on_franka_state(self, msg: Any) -> None:
        errors = msg.current_errors
        active = [name for name in errors.get_fields_and_field_types() if getattr(errors, name) is True]
        self._log(self.core.on_robot_error(robot_mode_error(int(msg.robot_mode), active)))

    def _on_command(self, msg: ArmCommand, info: MessageInfo) -> None:
        gid = info.get("publisher_gid")
        source = bytes(gid["data"]) if isinstance(gid, dict) and "data" in gid else gid
        scale = self.get_parameter("action_scale").value
        out = self.core.command(
            self._now(), stamp_ns(msg.header.stamp), msg.header.frame_id, source, np.asarray(msg.action), scale
        )
        if out.pose is not None:  # stamped with the actor's tick time (the lockstep sim waits for it)
            self._publish_pose(out.pose, msg.header.stamp)
        if out.verdict.log:
            self.get_logger().warning(
                f"dropping arm commands ({out.verdict.reason}): {out.verdict.detail}; publishers on arm/command: "
                f"{', '.join(self._command_publishers()) or '-'}"
            )
        if out.gripper is not None:
            self._send_gripper(out.gripper)

    def _command_publishers(self) -> list[str]:
        """``namespace/node`` of every publisher on ``arm/command`` (for the log line on a refusal)."""
        infos = self.get_publishers_info_by_topic(self.resolve_topic_name("arm/command"))
        return [f"{i.node_namespace.rstrip('/')}/{i.node_name}" for i in infos]

    # -- control loop --------------------------------------------------------------------------

    def _tick(self) -> None:
        self._ticks.append(time.monotonic())
        tick = self.core.tick(self._now())
        withheld = tick.pose is not None and self._stands_in_for_a_command(tick)
        if tick.pose is not None and not withheld:
            self._publish_pose(tick.pose, None if tick.stamp_ns is None else stamp_from_ns(tick.stamp_ns))
        if not self._sim_time or self._relay.relayed(self.core.measured_stamp_ns):
            # (on sim time, a state of a new control period goes out first with all of its streams: relayed)
            self.state_pub.publish(self._state_msg())
        self._log(tick.log)
        self._follow_reset(target_sent=not withheld)

    def _stands_in_for_a_command(self, tick: Tick) -> bool:
        """Whether re-publishing ``tick``'s pose stamped now would tell a lockstep sim cell that the command of
        the control tick at this very sim time has arrived before it has (a hold or reset target: it is left
        out; the next timer tick re-publishes it)."""
        return (tick.stamp_ns is None and self._sim_time
                and self.get_clock().now().nanoseconds % self._relay.period_ns == 0)

    def _publish_pose(self, pose: Pose, stamp: Time | None = None) -> None:
        """Publish the equilibrium pose, stamped when its target was set (a command's time; now for holds)."""
        msg = PoseStamped()
        msg.header.stamp = stamp or self.get_clock().now().to_msg()
        msg.header.frame_id = self.robot.base_frame
        msg.pose = _pose_msg(pose)
        self.pose_pub.publish(msg)

    def _state_msg(self) -> ArmState:
        core = self.core
        msg = ArmState(status=int(core.status), message=core.message)
        msg.header.frame_id = self.robot.base_frame
        if core.measured is not None:
            msg.header.stamp = stamp_from_ns(core.measured_stamp_ns)
            msg.pose = _pose_msg(core.measured)
            msg.velocity = Twist(linear=_vec(core.velocity.linear), angular=_vec(core.velocity.angular))
        msg.wrench = self._wrench
        msg.gripper_width = float(self._gripper_width)
        msg.gripper_closed = core.gripper.state == GRIPPER_CLOSE
        if core.safety.last is not None:
            msg.commanded_pose = _pose_msg(core.safety.last)
        return msg

    # -- reset action --------------------------------------------------------------------------

    def _accept_reset(self, goal: ResetArm.Goal) -> GoalResponse:
        refusal = self.core.reset_refusal()
        if refusal:
            self.get_logger().warn(f"reset rejected: {refusal}")
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    async def _execute_reset(self, goal_handle: Any) -> ResetArm.Result:
        goal = goal_handle.request
        refusal = self.core.reset_refusal()
        if refusal:
            goal_handle.abort()
            return ResetArm.Result(success=False, message=refusal)
        target = None if goal.use_task_reset_pose else _pose_of(goal.target)
        reset_goal = self.core.reset_goal(target, goal.randomize, goal.seed)
        reset, grip = self.core.start_reset(reset_goal, self._now(), goal.open_gripper)
        if grip is not None:
            self._send_gripper(grip)
        finished = Future()
        self._running_reset = (goal_handle, reset, finished)
        await finished  # the tick follows the reset (and a cancel request) and completes it
        self._running_reset = None
        final = _pose_msg(self.core.safety.last)
        if goal_handle.is_cancel_requested:
            goal_handle.canceled()
            return ResetArm.Result(success=False, final_pose=final, message="canceled")
        if reset.success:
            goal_handle.succeed()
        else:
            goal_handle.abort()
        return ResetArm.Result(success=reset.success, final_pose=final, message=reset.message)

    def _follow_reset(self, target_sent: bool) -> None:
        """In the tick: pass a cancel request to the core, publish progress, complete a finished reset, once the
        tick has sent the pose it ended at (``target_sent``; else at the next tick): what follows a reset (a
        sim cell's restart at its controller's target) finds the arm's target at the reset's goal."""
        if self._running_reset is None:
            return
        goal_handle, reset, finished = self._running_reset
        if goal_handle.is_cancel_requested:
            self.core.cancel_reset()
        if reset.done.is_set():
            if target_sent and not finished.done():
                finished.set_result(None)
            return
        goal_handle.publish_feedback(ResetArm.Feedback(progress=float(reset.progress(self._now()))))

    # -- diagnostics ---------------------------------------------------------------------------

    def _publish_diagnostics(self) -> None:
        ticks, self._ticks = np.array(self._ticks), []
        periods = np.diff(ticks)
        now = self._now()
        values = self.core.diagnostics(now) | {
            "loop_rate_hz": 1.0 / float(np.mean(periods)) if periods.size else 0.0,
            "loop_jitter_ms": float(np.std(periods)) * 1e3 if periods.size else 0.0,
            "joint_states_age_ms": (now - self._joints_received) * 1e3 if np.isfinite(self._joints_received) else -1.0,
        }
        level = {Status.NO_DATA: WARN, Status.ERROR: ERROR}.get(self.core.status, OK)
        stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(
            diagnostic_array(stamp, f"{self.robot_id}/arm_bridge", self.robot_id, values, level, self.core.message)
        )


def main(args: list[str] | None = None) -> None:
    """Run the arm bridge; a startup or config error is fatal with a clear message.

    One thread: rclpy's multi-threaded executor costs a whole core at 200 driver messages/s and let
    the tick fall to 6–12 Hz (of 30) on a 2-core machine, which the single-threaded one runs at 18%
    of a core, on time. Nothing here blocks: the reset action's execution awaits the tick.
    """
    run(ArmBridge, "arm_bridge", args, fatal=(StartupError,))


if __name__ == "__main__":
    main()
