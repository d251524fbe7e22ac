"""CameraSet: the task's cameras on a node (the actor's), newest frame per camera, and freshness (a camera the
robot lacks, allowed when the task observes the ``present`` mask, is a black frame).

Not a node: ``CameraSet(node, robot_cfg, task_cfg)`` subscribes the realsense2_camera color
topics of the cameras the task observes (names from ``task.observation.cameras``, topics, crops
and QoS from the robot config), keeps each camera's newest message with its stamp, and turns it
into the policy's ``(height, width, 3)`` RGB uint8 crop only when asked (:meth:`latest`, cached
per message), so frames the actor never uses cost nothing. A frame older than ``max_age_s``
(the header stamp against the node clock, so ``use_sim_time`` works) makes the camera stale.
Pixels are decoded with cv_bridge where it is installed, else by :mod:`user_robot.camera_core`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import threading
from collections.abc import Callable

import numpy as np
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from user_robot import camera_core
from user_robot.nodes.qos import PROFILES
from user_robot.robot_config import CameraConfig, RobotConfig
from user_robot.task_config import TaskConfig


def _decoder() -> Callable[[Image], np.ndarray]:
    """Image message → ``(h, w, channels)`` uint8 in the message's channel order."""
    try:
        from cv_bridge import CvBridge
    except ImportError:
        return lambda msg: camera_core.to_array(
            camera_core.ImageFields(msg.height, msg.width, msg.encoding, msg.step, msg.data, msg.is_bigendian)
        )
    bridge = CvBridge()

    def decode(msg: Image) -> np.ndarray:
        if msg.encoding not in camera_core.CHANNELS:
            raise ValueError(f"unsupported image encoding {msg.encoding!r}")
        pixels = bridge.imgmsg_to_cv2(msg, desired_encoding="passthrough")
        return pixels.reshape(msg.height, msg.width, camera_core.CHANNELS[msg.encoding])

    return decode


@dataclasses.dataclass
class _Stream:
    cfg: CameraConfig
    msg: Image | None = None
    stamp: float | None = None
    frame: np.ndarray | None = None  # decoded crop of ``msg`` (None until asked)


def best_effort(profile: QoSProfile) -> QoSProfile:
    """``profile`` with best-effort reliability, for subscribing to camera streams.

    A best-effort reader matches realsense2_camera's reliable writer, and a lost fragment of a
    large frame then drops that frame instead of stalling every later frame until the writer
    repairs it (which made a fresh camera look stale); freshness is checked per frame anyway.
    """
    return QoSProfile(
        history=profile.history,
        depth=profile.depth,
        reliability=ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.VOLATILE,
    )


class CameraSet:
    """The task's cameras on ``node``; thread-safe."""

    def __init__(self, node: Node, robot: RobotConfig, task: TaskConfig) -> None:
        camera_core.check_cameras(task, robot)
        self.absent = camera_core.absent_cameras(task, robot)  # a black frame each, never stale
        self.node = node
        self.size = task.observation.image_size
        self.max_age_s = task.observation.max_age_s
        self._decode = _decoder()
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._arrivals = 0
        self.on_arrival: Callable[[], None] | None = None  # called (no lock held) after each frame is kept
        self._streams = {name: _Stream(robot.cameras[name]) for name in task.observation.cameras
                         if name not in self.absent}
        self._black = np.zeros((*self.size, 3), dtype=np.uint8)
        self._names = tuple(task.observation.cameras)
        self._bad_encoding: set[str] = set()
        for name, stream in self._streams.items():
            node.create_subscription(
                Image,
                stream.cfg.topic,
                functools.partial(self._on_image, name),
                best_effort(PROFILES[stream.cfg.qos]),
            )

    @property
    def names(self) -> tuple[str, ...]:
        """Camera names, in the task's order (with the absent ones)."""
        return self._names

    def _now(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def _on_image(self, name: str, msg: Image) -> None:
        if msg.encoding not in camera_core.CHANNELS:
            if name not in self._bad_encoding:
                self._bad_encoding.add(name)
                self.node.get_logger().error(
                    f"camera {name}: encoding {msg.encoding!r} is not one of {', '.join(camera_core.CHANNELS)}; "
                    "set the driver's color format (realsense2_camera rgb_camera.color_format:=RGB8)"
                )
            return
        stamp = camera_core.stamp_seconds(msg.header.stamp.sec, msg.header.stamp.nanosec) or self._now()
        with self._lock:
            stream = self._streams[name]
            stream.msg, stream.stamp, stream.frame = msg, stamp, None
            self._arrivals += 1
            self._arrived.notify_all()
        if self.on_arrival is not None:
            self.on_arrival()

    def hold_frames_of(self, t_ns: int) -> bool:
        """Whether every present camera has sent its frame of sim time ``t_ns`` (``holds_frame_of``)."""
        with self._lock:
            return all(camera_core.holds_frame_of(s.stamp, s.cfg.rate_hz, t_ns) for s in self._streams.values())

    def wait_newer(self, seen: int, timeout_s: float) -> int:
        """Block until more than ``seen`` frames have arrived (at most ``timeout_s``); the count of arrivals."""
        with self._arrived:
            self._arrived.wait_for(lambda: self._arrivals > seen, timeout_s)
            return self._arrivals

    def latest(self) -> dict[str, tuple[np.ndarray, float]]:
        """Newest ``(frame, stamp)`` per camera that has sent one; frame is ``(h, w, 3)`` RGB uint8."""
        out: dict[str, tuple[np.ndarray, float]] = {}
        with self._lock:
            for name, s in self._streams.items():
                if s.msg is None:
                    continue
                if s.frame is None:
                    pixels = self._decode(s.msg)
                    s.frame = camera_core.observation(pixels, s.msg.encoding, s.cfg.crop, self.size)
                out[name] = (s.frame, s.stamp)
        if not (self.absent and out):
            return out
        newest = max(stamp for _, stamp in out.values())  # black frames for the cameras it lacks, as new
        out.update({name: (self._black, newest) for name in self.absent})
        return {name: out[name] for name in self.names if name in out}  # (in the task's order)

    def stale(self, now: float | None = None, max_age_s: float | None = None) -> list[str]:
        """Names of cameras with no frame or a frame older than ``max_age_s`` (default: the task's)."""
        now = self._now() if now is None else now
        limit = self.max_age_s if max_age_s is None else max_age_s
        with self._lock:
            return [name for name, s in self._streams.items() if camera_core.is_stale(s.stamp, now, limit)]

    def max_age_ms(self, now: float | None = None) -> float:
        """Age of the oldest newest frame (ms); infinite while a camera has sent nothing."""
        now = self._now() if now is None else now
        with self._lock:
            stamps = [s.stamp for s in self._streams.values()]
        if not stamps:
            return 0.0
        return max(math.inf if s is None else (now - s) * 1e3 for s in stamps)
