"""Conversions between ROS messages and the pure actor/learner types (payloads as bytes, no loops)."""

from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import Image

from user_interfaces.msg import ArmState, Transition
from user_policies.episode import StepRecord
from user_policies.observation import ArmSample


def stamp_seconds(stamp: Time) -> float:
    """A ``builtin_interfaces/Time`` in seconds."""
    return stamp.sec + stamp.nanosec * 1e-9


def seconds_to_stamp(seconds: float) -> Time:
    """Seconds as a ``builtin_interfaces/Time``."""
    sec = int(seconds // 1)
    return Time(sec=sec, nanosec=min(round((seconds - sec) * 1e9), 999_999_999))


def arm_sample(msg: ArmState) -> ArmSample:
    """The arm bridge's state as an :class:`ArmSample`."""
    p, v, w = msg.pose, msg.velocity, msg.wrench
    return ArmSample(
        xyz=np.array([p.position.x, p.position.y, p.position.z]),
        quat=np.array([p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w]),
        linear_velocity=np.array([v.linear.x, v.linear.y, v.linear.z]),
        angular_velocity=np.array([v.angular.x, v.angular.y, v.angular.z]),
        force=np.array([w.force.x, w.force.y, w.force.z]),
        torque=np.array([w.torque.x, w.torque.y, w.torque.z]),
        gripper_width=float(msg.gripper_width),
        stamp=stamp_seconds(msg.header.stamp),
    )


def image_msg(array: np.ndarray, stamp: Time | None = None, frame_id: str = "") -> Image:
    """A uint8 HxWx3 (rgb8) or HxW (mono8) array as a ``sensor_msgs/Image``."""
    msg = Image()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(array.shape[0]), int(array.shape[1])
    channels = 1 if array.ndim == 2 else int(array.shape[2])
    msg.encoding = "mono8" if channels == 1 else "rgb8"
    msg.step = msg.width * channels
    msg.data = np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    return msg


def image_array(msg: Image) -> np.ndarray:
    """A ``rgb8``/``mono8`` image message as a uint8 array (HxWx3, or HxWx1 for mono)."""
    channels = 1 if msg.encoding == "mono8" else 3
    data = np.frombuffer(bytes(msg.data), dtype=np.uint8)
    return data.reshape(msg.height, msg.step)[:, : msg.width * channels].reshape(msg.height, msg.width, channels)


def transition_msg(
    record: StepRecord, *, stamp: Time, robot_id: str, embodiment: str, task: str, episode_id: str, reward_source: int
) -> Transition:
    """A :class:`StepRecord` with its provenance as a ``user_interfaces/Transition``."""
    msg = Transition()
    msg.header.stamp = stamp
    msg.robot_id, msg.embodiment, msg.task, msg.episode_id = robot_id, embodiment, task, episode_id
    msg.step = record.step
    msg.policy_version = record.policy_version
    msg.camera_names = list(record.obs.images)
    msg.images = [image_msg(img, stamp) for img in record.obs.images.values()]
    msg.state = record.obs.state.astype(np.float32).tolist()
    msg.action = np.asarray(record.action, dtype=np.float32).tolist()
    msg.reward = float(record.reward)
    msg.terminated, msg.truncated, msg.end_reason = record.terminated, record.truncated, record.end_reason
    msg.intervened = record.intervened
    if record.intervention_action is not None:
        msg.intervention_action = np.asarray(record.intervention_action, dtype=np.float32).tolist()
    msg.reward_source = reward_source
    msg.solved, msg.truth = bool(record.obs.solved), record.obs.truth
    return msg
