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

:class:`Harness` runs such nodes (and test probes) in an executor thread with its own rclpy context.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped, Twist, Vector3, WrenchStamped
from rclpy.context import Context
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data, qos_profile_system_default
from sensor_msgs.msg import Image, JointState, Joy
from std_msgs.msg import Float64

RCLCPP_DEFAULT = QoSProfile(depth=10)  # reliable, volatile: what rclcpp subscribers use by default
SPACENAV_QOS = QoSProfile(depth=10)


class Harness:
    """An rclpy context with a background executor; nodes created through it spin at once."""

    def __init__(self) -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.executor = MultiThreadedExecutor(num_threads=2, context=self.context)
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
    """franka_ros2 (Jazzy) topics of one arm, holding a fixed pose unless ``track`` follows the equilibrium."""

    def __init__(
        self,
        context: Context,
        namespace: str,
        xyz: np.ndarray,
        quat: np.ndarray,
        rate_hz: float = 50.0,  # light enough for one Python test process that also records everything
        track: bool = False,
    ) -> None:
        super().__init__("franka_standin", namespace=namespace, context=context)
        self.xyz = np.asarray(xyz, dtype=np.float64)
        self.quat = np.asarray(quat, dtype=np.float64)
        self.track = track
        self.publishing = True
        self.gripper_width = 0.08
        self.width_commands: list[float] = []
        sensor = qos_profile_sensor_data
        self.pose_pub = self.create_publisher(PoseStamped, "franka_robot_state_broadcaster/current_pose", sensor)
        self.wrench_pub = self.create_publisher(
            WrenchStamped, "franka_robot_state_broadcaster/external_wrench_in_base_frame", sensor
        )
        self.joints_pub = self.create_publisher(
            JointState, "franka_robot_state_broadcaster/measured_joint_states", sensor
        )
        self.gripper_pub = self.create_publisher(JointState, "franka_gripper/joint_states", RCLCPP_DEFAULT)
        self.equilibria = Recorder(
            self, PoseStamped, "cartesian_impedance_example_controller/equilibrium_pose", RCLCPP_DEFAULT
        )
        self.create_subscription(Float64, "franka_gripper/width_command", self._on_width, RCLCPP_DEFAULT)
        self.create_timer(1.0 / rate_hz, self._publish)

    def _on_width(self, msg: Float64) -> None:
        self.width_commands.append(msg.data)
        self.gripper_width = msg.data

    def _publish(self) -> None:
        if not self.publishing:
            return
        if self.track and (eq := self.equilibria.last()) is not None:
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
    """realsense2_camera color stream ``/camera/<name>/color/image_raw`` (640×480 rgb8 by default)."""

    def __init__(
        self,
        context: Context,
        name: str,
        encoding: str = "rgb8",
        size: tuple[int, int] = (480, 640),
        rate_hz: float = 30.0,
        stamp_offset_s: float = 0.0,
    ) -> None:
        super().__init__(f"realsense_{name}", namespace=f"/camera/{name}", context=context)
        self.encoding = encoding
        self.size = size
        self.publishing = True
        self.stamp_offset_s = stamp_offset_s
        self._data: tuple[tuple[int, ...], bytes] | None = None
        self.pub = self.create_publisher(Image, "color/image_raw", qos_profile_system_default)
        self.create_timer(1.0 / rate_hz, self._publish)

    def frame(self) -> np.ndarray:
        """The pixels of a frame in the stream's channel order."""
        h, w = self.size
        channels = 1 if self.encoding == "mono8" else 3
        pixels = np.zeros((h, w, channels), dtype=np.uint8)
        pixels[..., 0] = (np.arange(w)[None, :] * 255 // (w - 1)).astype(np.uint8)  # left dark, right bright
        if channels == 3:
            pixels[..., 2] = 200  # blue in rgb8, red in bgr8
        return pixels

    def _publish(self) -> None:
        if not self.publishing:
            return
        if self._data is None:  # the frame never changes: build it once (keeps the test process light)
            pixels = self.frame()
            self._data = (pixels.shape, pixels.tobytes())
        (h, w, c), data = self._data
        msg = Image(height=h, width=w, encoding=self.encoding, is_bigendian=0)
        msg.step = w * c
        msg.data = data
        stamp = self.get_clock().now().nanoseconds - int(self.stamp_offset_s * 1e9)
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        msg.header.frame_id = f"{self.get_namespace().strip('/').replace('/', '_')}_color_optical_frame"
        self.pub.publish(msg)


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
