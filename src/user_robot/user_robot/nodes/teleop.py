"""teleop: SpaceMouse (spacenav) → ``intervention`` at the task's control rate.

Runs in the robot namespace. Subscribes the robot config's twist and joy topics (absolute names such
as ``/spacenav/twist`` stay global; relative ones, like the sim cell's virtual SpaceMouse, resolve
in the namespace) and publishes ``user_interfaces/Intervention`` on ``intervention`` every control
tick and at once on every SpaceMouse message (stamped with the joy's time when that is newer than
the clock: the human's command reaches the actor's next tick, not one tick later; a lockstep sim
cell waits for that answer before advancing its clock): active while the SpaceMouse is deflected
beyond the deadband or a control button is held, plus ``hold_s`` after; the action in the task's
dimensions (with the persistent gripper channel for 7-dim tasks); a success/failure label from the
label buttons or the ``label`` service (user_interfaces/srv/LabelEpisode), sent once. The logic is
:mod:`user_robot.teleop_core`.
"""

from __future__ import annotations

import dataclasses

from geometry_msgs.msg import Twist
from rcl_interfaces.msg import FloatingPointRange, ParameterDescriptor, SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.time import Time
from sensor_msgs.msg import Joy

from user_interfaces.msg import Intervention
from user_interfaces.srv import LabelEpisode
from user_robot.nodes.qos import HEARTBEAT, PROFILES
from user_robot.nodes.runtime import run
from user_robot.robot_config import load_robot
from user_robot.task_config import load_task
from user_robot.teleop_core import TeleopCore

SOURCE = "spacemouse"


class Teleop(Node):
    """See the module docstring."""

    def __init__(self) -> None:
        super().__init__("teleop")
        self.declare_parameter("task", "peg_insertion", ParameterDescriptor(description="task config name"))
        self.declare_parameter("robot", "sim", ParameterDescriptor(description="robot config name"))
        self.declare_parameter(
            "robot_id", "", ParameterDescriptor(description="robot id in logs ('' = namespace)")
        )
        task = load_task(self.get_parameter("task").value)
        robot = load_robot(self.get_parameter("robot").value)
        self.robot_id = self.get_parameter("robot_id").value or self.get_namespace().strip("/") or "robot_0"
        cfg = robot.teleop
        self.declare_parameter(
            "hold_s",
            cfg.hold_s,
            ParameterDescriptor(
                description="seconds the intervention stays active after the last SpaceMouse input",
                floating_point_range=[FloatingPointRange(from_value=0.0, to_value=5.0, step=0.0)],
            ),
        )
        self.core = TeleopCore(dataclasses.replace(cfg, hold_s=self.get_parameter("hold_s").value), task.action.dims)
        self.add_on_set_parameters_callback(self._on_parameters)
        qos = PROFILES[cfg.qos]
        self.create_subscription(Twist, cfg.twist_topic, self._on_twist, qos)
        self.create_subscription(Joy, cfg.joy_topic, self._on_joy, qos)
        self.pub = self.create_publisher(Intervention, "intervention", HEARTBEAT)
        self.create_service(LabelEpisode, "label", self._on_label)
        self._input_ns = 0  # newest joy stamp: an answer to input is stamped no earlier
        self.create_timer(1.0 / task.control_rate_hz, self._tick)
        self.get_logger().info(
            f"teleop for {self.robot_id}: {self.resolve_topic_name(cfg.twist_topic)}, "
            f"{self.resolve_topic_name(cfg.joy_topic)} -> {self.resolve_topic_name('intervention')} "
            f"at {task.control_rate_hz} Hz, {task.action.dims} dims, hold {self.core.cfg.hold_s} s"
        )

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_parameters(self, params: list[Parameter]) -> SetParametersResult:
        for p in params:
            if p.name == "hold_s":
                self.core.cfg = dataclasses.replace(self.core.cfg, hold_s=float(p.value))
        return SetParametersResult(successful=True)

    def _on_twist(self, msg: Twist) -> None:
        lin, ang = msg.linear, msg.angular
        self.core.twist([lin.x, lin.y, lin.z, ang.x, ang.y, ang.z], self._now())
        self._tick()

    def _on_joy(self, msg: Joy) -> None:
        self.core.joy(list(msg.buttons))
        self._input_ns = max(self._input_ns, Time.from_msg(msg.header.stamp).nanoseconds)
        self._tick()

    def _on_label(self, request: LabelEpisode.Request, response: LabelEpisode.Response) -> LabelEpisode.Response:
        try:
            self.core.label(request.label)
        except ValueError as exc:
            response.accepted, response.message = False, str(exc)
            return response
        response.accepted, response.message = True, "label sent with the next intervention message"
        return response

    def _tick(self) -> None:
        now = self.get_clock().now()
        state = self.core.tick(now.nanoseconds * 1e-9)
        msg = Intervention(active=state.active, source=SOURCE, action=state.action.tolist(), label=state.label)
        msg.header.stamp = Time(nanoseconds=max(now.nanoseconds, self._input_ns)).to_msg()
        self.pub.publish(msg)


def main(args: list[str] | None = None) -> None:
    """Run the teleop node; a config error is fatal with a clear message."""
    run(Teleop, "teleop", args)


if __name__ == "__main__":
    main()
