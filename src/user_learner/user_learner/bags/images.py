"""``sensor_msgs/Image`` (rosbags messages) <-> ``HxWxC`` uint8 arrays, without cv_bridge."""

from __future__ import annotations

from typing import Any

import numpy as np

from user_learner.bags.typestore import typestore

CHANNELS = {"rgb8": 3, "bgr8": 3, "mono8": 1}


def image_to_array(msg: Any) -> np.ndarray:
    """An 8-bit image as ``HxWxC`` uint8 (C = 3 in RGB order, or 1 for mono8); row padding removed."""
    channels = CHANNELS.get(msg.encoding)
    if channels is None:
        raise ValueError(f"unsupported image encoding {msg.encoding!r} (supported: {', '.join(CHANNELS)})")
    rows = np.frombuffer(bytes(msg.data), dtype=np.uint8).reshape(msg.height, msg.step)
    arr = rows[:, : msg.width * channels].reshape(msg.height, msg.width, channels)
    return arr[..., ::-1].copy() if msg.encoding == "bgr8" else arr.copy()


def array_to_image(arr: np.ndarray, stamp: int = 0, frame_id: str = "", encoding: str = "rgb8") -> Any:
    """A ``sensor_msgs/msg/Image`` (rosbags) from an ``HxWxC`` (or ``HxW`` mono) uint8 array in RGB order."""
    arr = np.asarray(arr, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.shape[2] != CHANNELS.get(encoding):
        raise ValueError(f"array with {arr.shape[2]} channels cannot be encoded as {encoding!r}")
    if encoding == "bgr8":
        arr = arr[..., ::-1]
    height, width, channels = arr.shape
    types = typestore().types
    return types["sensor_msgs/msg/Image"](
        header=header(stamp, frame_id),
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=0,
        step=width * channels,
        data=np.ascontiguousarray(arr).reshape(-1),
    )


def header(stamp: int, frame_id: str = "") -> Any:
    """A ``std_msgs/msg/Header`` (rosbags) with the given stamp in nanoseconds."""
    types = typestore().types
    sec, nanosec = divmod(int(stamp), 1_000_000_000)
    time = types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec)
    return types["std_msgs/msg/Header"](stamp=time, frame_id=frame_id)


def stamp_ns(msg_header: Any) -> int:
    """Nanoseconds of a header's stamp."""
    return int(msg_header.stamp.sec) * 1_000_000_000 + int(msg_header.stamp.nanosec)
