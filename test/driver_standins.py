"""Stand-ins for the real drivers: real rclpy nodes with the drivers' exact topics, types and QoS.

- :class:`FrankaStandin`: franka_ros2 on Jazzy: ``franka_robot_state_broadcaster``'s convenience
  topics (best effort, as the broadcaster publishes them), the
  ``cartesian_impedance_example_controller/equilibrium_pose`` subscription (rclcpp default QoS),
  ``franka_gripper/joint_states`` (two fingers at width / 2) and the sim cell's
  ``franka_gripper/width_command``.
- :class:`RealsenseStandin`: realsense2_camera's ``/camera/<name>/color/image_raw`` (Image,
  SYSTEM_DEFAULT = reliable): a horizontal gradient in channel 0, 200 in channel 2.
- :class:`SpacenavStandin`: spacenav's ``/spacenav/twist`` (Twist) and ``/spacenav/joy`` (Joy),
  reliable depth 10.

:class:`Harness` runs test probes (and event-driven stand-ins such as the SpaceMouse) in an executor
thread with its own rclpy context. Stand-ins that stream on a timer (the arm, the cameras) run in
their own process (:func:`start`, ``python driver_standins.py franka|realsense ...``), so a busy test
process can never starve them; tests steer them through ROS parameters (:func:`set_parameters`):
``publishing``, ``xyz`` and ``track`` on the arm, ``publishing`` and ``stamp_offset_s`` on a camera.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped, Twist, Vector3, WrenchStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from rclpy.qos import QoSProfile, qos_profile_sensor_data, qos_profile_system_default
from sensor_msgs.msg import Image, JointState, Joy
from std_msgs.msg import Float64

RCLCPP_DEFAULT = QoSProfile(depth=10)
EQUILIBRIUM_TOPIC = "cartesian_impedance_example_controller/equilibrium_pose"
WIDTH_TOPIC = "franka_gripper/width_command"  # reliable, volatile: what rclcpp subscribers use by default
SPACENAV_QOS = QoSProfile(depth=10)


class Harness:
    """An rclpy context with a background executor; nodes created through it spin at once."""

    def __init__(self) -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)  # (the multi-threaded one costs a core)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        with contextlib.suppress(Exception):  # the executor raises when the context shuts down under it
            self.executor.spin()

    def add(self, node: Node) -> Node:
        """Spin ``node`` (created with ``context=harness.context``)."""
        self.executor.add_node(node)
        return node

    def node(self, name: str, namespace: str = "") -> Node:
        """A plain probe node."""
        return self.add(Node(name, namespace=namespace, context=self.context))

    def close(self) -> None:
        """Stop spinning, destroy the nodes and shut the context down."""
        nodes = list(self.executor.get_nodes())
        self.executor.shutdown(timeout_sec=2.0)
        self._thread.join(timeout=5.0)
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def accepted_goal(client: Any, goal: Any, timeout: float = 40.0, answer_s: float = 5.0) -> Any:
    """Send ``goal`` until the server accepts it: its goal handle.

    A goal's answer can be lost while discovery settles (the server answers before it has matched the
    client's reader); the goal is then sent again, and a rejection while the lost one still runs is
    retried after it ends."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        future, sent = client.send_goal_async(goal), time.monotonic()
        while not future.done() and time.monotonic() - sent < answer_s:
            time.sleep(0.01)
        handle = future.result() if future.done() else None
        if handle is not None and handle.accepted:
            return handle
        time.sleep(0.5 if handle is not None else 0.0)
    raise AssertionError(f"timed out after {timeout} s waiting for goal accepted")


class Recorder:
    """Keeps every message of one subscription with its arrival time (monotonic seconds)."""

    def __init__(self, node: Node, msg_type: Any, topic: str, qos: QoSProfile) -> None:
        self.messages: list[tuple[float, Any]] = []
        self._lock = threading.Lock()
        node.create_subscription(msg_type, topic, self._on, qos)

    def _on(self, msg: Any) -> None:
        with self._lock:
            self.messages.append((time.monotonic(), msg))

    def since(self, t: float) -> list[Any]:
        """Messages that arrived after monotonic time ``t``."""
        with self._lock:
            return [m for at, m in self.messages if at > t]

    def last(self) -> Any:
        """The newest message or None."""
        with self._lock:
            return self.messages[-1][1] if self.messages else None


class FrankaStandin(Node):
    """franka_ros2 (Jazzy) topics of one arm, holding ``xyz`` unless ``track`` follows the equilibrium.

    Parameters (settable while running): ``xyz`` (m, the measured position), ``track`` (move 20% of
    the way to the last equilibrium pose per state message), ``publishing`` (False: a reflex, the
    broadcaster stops).
    """

    def __init__(self, namespace: str, xyz: list[float], quat: list[float], rate_hz: float = 50.0) -> None:
        super().__init__("franka_standin", namespace=namespace)
        self.declare_parameter("xyz", [float(v) for v in xyz])
        self.declare_parameter("track", False)
        self.declare_parameter("publishing", True)
        self.xyz = np.asarray(xyz, dtype=np.float64)
        self.quat = np.asarray(quat, dtype=np.float64)
        self.gripper_width = 0.08
        self._equilibrium: PoseStamped | None = None
        self.add_on_set_parameters_callback(self._on_parameters)
        sensor = qos_profile_sensor_data
        self.pose_pub = self.create_publisher(PoseStamped, "franka_robot_state_broadcaster/current_pose", sensor)
        self.wrench_pub = self.create_publisher(
            WrenchStamped, "franka_robot_state_broadcaster/external_wrench_in_base_frame", sensor
        )
        self.joints_pub = self.create_publisher(
            JointState, "franka_robot_state_broadcaster/measured_joint_states", sensor
        )
        self.gripper_pub = self.create_publisher(JointState, "franka_gripper/joint_states", RCLCPP_DEFAULT)
        self.create_subscription(
            PoseStamped, EQUILIBRIUM_TOPIC, lambda m: setattr(self, "_equilibrium", m), RCLCPP_DEFAULT
        )
        self.create_subscription(Float64, WIDTH_TOPIC, self._on_width, RCLCPP_DEFAULT)
        self.create_timer(1.0 / rate_hz, self._publish)

    def _on_parameters(self, params: list[Parameter]) -> SetParametersResult:
        for param in params:
            if param.name == "xyz":
                self.xyz = np.asarray(param.value, dtype=np.float64)
        return SetParametersResult(successful=True)

    def _on_width(self, msg: Float64) -> None:
        self.gripper_width = msg.data

    def _publish(self) -> None:
        if not self.get_parameter("publishing").value:
            return
        if self.get_parameter("track").value and (eq := self._equilibrium) is not None:
            p, q = eq.pose.position, eq.pose.orientation
            self.xyz = self.xyz + 0.2 * (np.array([p.x, p.y, p.z]) - self.xyz)
            self.quat = np.array([q.x, q.y, q.z, q.w])
        stamp = self.get_clock().now().to_msg()
        msg = PoseStamped()
        msg.header.stamp, msg.header.frame_id = stamp, "fr3_link0"
        msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(v) for v in self.xyz)
        o = msg.pose.orientation
        o.x, o.y, o.z, o.w = (float(v) for v in self.quat)
        self.pose_pub.publish(msg)
        wrench = WrenchStamped()
        wrench.header = msg.header
        wrench.wrench.force = Vector3(x=0.5, y=-0.25, z=3.0)
        self.wrench_pub.publish(wrench)
        joints = JointState(name=[f"fr3_joint{i}" for i in range(1, 8)], position=[0.0] * 7)
        joints.header.stamp = stamp
        self.joints_pub.publish(joints)
        half = self.gripper_width / 2
        fingers = JointState(name=["fr3_finger_joint1", "fr3_finger_joint2"], position=[half, half])
        fingers.header.stamp = stamp
        self.gripper_pub.publish(fingers)


class RealsenseStandin(Node):
    """realsense2_camera color stream ``/camera/<name>/color/image_raw`` (640×480 rgb8 by default).

    Parameters (settable while running): ``publishing`` (False: the stream stops) and
    ``stamp_offset_s`` (frames stamped this long ago: a stalled pipeline).
    """

    def __init__(
        self, name: str, encoding: str = "rgb8", size: tuple[int, int] = (480, 640), rate_hz: float = 30.0
    ) -> None:
        super().__init__(f"realsense_{name}", namespace=f"/camera/{name}")
        self.declare_parameter("publishing", True)
        self.declare_parameter("stamp_offset_s", 0.0)
        pixels = camera_frame(encoding, size)
        self._template = Image(height=size[0], width=size[1], encoding=encoding, is_bigendian=0)
        self._template.step = size[1] * pixels.shape[2]
        self._template.data = pixels.tobytes()  # the frame never changes: built once
        self.pub = self.create_publisher(Image, "color/image_raw", qos_profile_system_default)
        self.create_timer(1.0 / rate_hz, self._publish)

    def _publish(self) -> None:
        if not self.get_parameter("publishing").value:
            return
        msg = self._template
        offset = self.get_parameter("stamp_offset_s").value
        stamp = self.get_clock().now().nanoseconds - int(offset * 1e9)
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        msg.header.frame_id = f"{self.get_namespace().strip('/').replace('/', '_')}_color_optical_frame"
        self.pub.publish(msg)


def camera_frame(encoding: str = "rgb8", size: tuple[int, int] = (480, 640)) -> np.ndarray:
    """The pixels :class:`RealsenseStandin` streams, in the stream's channel order."""
    h, w = size
    channels = 1 if encoding == "mono8" else 3
    pixels = np.zeros((h, w, channels), dtype=np.uint8)
    pixels[..., 0] = (np.arange(w)[None, :] * 255 // (w - 1)).astype(np.uint8)  # left dark, right bright
    if channels == 3:
        pixels[..., 2] = 200  # blue in rgb8, red in bgr8
    return pixels


class SpacenavStandin(Node):
    """spacenav's ``/spacenav/twist`` and ``/spacenav/joy``, published on change (and by :meth:`send`)."""

    def __init__(self, context: Context, namespace: str = "/spacenav") -> None:
        super().__init__("spacenav", namespace=namespace, context=context)
        self.twist_pub = self.create_publisher(Twist, "twist", SPACENAV_QOS)
        self.joy_pub = self.create_publisher(Joy, "joy", SPACENAV_QOS)

    def send(self, axes: list[float], buttons: list[int] | None = None) -> None:
        """Publish one twist (lin xyz, ang xyz) and, when given, the joy buttons."""
        twist = Twist()
        twist.linear = Vector3(x=float(axes[0]), y=float(axes[1]), z=float(axes[2]))
        twist.angular = Vector3(x=float(axes[3]), y=float(axes[4]), z=float(axes[5]))
        self.twist_pub.publish(twist)
        if buttons is not None:
            joy = Joy(axes=[float(a) for a in axes], buttons=list(buttons))
            joy.header.stamp = self.get_clock().now().to_msg()
            self.joy_pub.publish(joy)


def set_parameters(probe: Node, node: str, timeout: float = 10.0, **values: Any) -> None:
    """Set parameters of the running node ``node`` (fully qualified name) and wait until they are set."""
    client = AsyncParameterClient(probe, node)
    assert client.wait_for_services(timeout_sec=timeout), f"{node}'s parameter services"
    future = client.set_parameters([Parameter(name, value=value) for name, value in values.items()])
    results = wait_until(lambda: future.done() and future.result(), timeout, f"setting {values} on {node}").results
    assert all(r.successful for r in results), results


def start(spawn: Callable[..., Any], *args: str) -> Any:
    """Start a stand-in in its own process (``spawn`` is the test's fixture); returns once it streams."""
    proc = spawn([__file__, *map(str, args)])
    proc.wait_for("standin ready", timeout=60.0)
    return proc


def main() -> None:
    """``driver_standins.py franka NS X Y Z QX QY QZ QW [RATE_HZ]`` or ``... realsense NAME ENCODING RATE_HZ``."""
    kind, *args = sys.argv[1:]
    rclpy.init()
    if kind == "franka":
        rate = {"rate_hz": float(args[8])} if len(args) > 8 else {}
        node: Node = FrankaStandin(args[0], [float(a) for a in args[1:4]], [float(a) for a in args[4:8]], **rate)
    else:
        node = RealsenseStandin(args[0], args[1], rate_hz=float(args[2]))
    print("standin ready", flush=True)
    with contextlib.suppress(KeyboardInterrupt, ExternalShutdownException):
        rclpy.spin(node)
    rclpy.try_shutdown()


if __name__ == "__main__":
    main()
