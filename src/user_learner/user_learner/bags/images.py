"""rosbags message helpers: ``sensor_msgs/Image`` <-> arrays (via :mod:`user_robot.camera_core`), headers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from user_learner.bags.typestore import typestore
from user_robot.camera_core import ImageFields, from_array, to_array, to_rgb


def fields(msg: Any) -> ImageFields:
    """The pixel-carrying fields of a deserialized ``sensor_msgs/msg/Image``."""
    return ImageFields(msg.height, msg.width, msg.encoding, msg.step, bytes(msg.data), msg.is_bigendian)


def image_to_array(msg: Any) -> np.ndarray:
    """A deserialized image as ``HxWx3`` uint8 RGB (bgr8 reordered, mono8 replicated)."""
    return np.ascontiguousarray(to_rgb(to_array(fields(msg)), msg.encoding))


def array_to_image(arr: np.ndarray, stamp: int = 0, frame_id: str = "", encoding: str = "rgb8") -> Any:
    """A ``sensor_msgs/msg/Image`` (rosbags) from a uint8 array in ``encoding``'s channel order."""
    f = from_array(arr, encoding)
    return typestore().types["sensor_msgs/msg/Image"](
        header=header(stamp, frame_id),
        height=f.height,
        width=f.width,
        encoding=f.encoding,
        is_bigendian=f.is_bigendian,
        step=f.step,
        data=np.frombuffer(f.data, dtype=np.uint8),
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


def write_png(path: Path, rgb: np.ndarray) -> None:
    """Write an ``HxWx3`` uint8 RGB image as PNG (parent directories created)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(rgb)).save(path)
