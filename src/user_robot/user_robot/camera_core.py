"""Camera frames (pure): sensor_msgs/Image fields ↔ numpy, crop, resize, freshness, a robot's missing cameras.

Observations are always ``uint8`` arrays of shape ``(height, width, 3)`` in RGB order: ``bgr8`` is
reordered and ``mono8`` replicated to three channels, so a policy sees the same layout from every
camera. Resizing is separable linear interpolation, antialiased when shrinking (the triangle
filter widened by the scale factor, as Pillow's bilinear), in plain numpy with cached weights.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from user_robot.robot_config import RobotConfig
    from user_robot.task_config import TaskConfig

CHANNELS = {"rgb8": 3, "bgr8": 3, "mono8": 1}
"""Supported encodings and their channel counts."""

MASK_KEY = "present"
"""The state key (``user_policies.observation``) that tells a policy which of the task's inputs a robot has."""


@dataclasses.dataclass(frozen=True)
class ImageFields:
    """The sensor_msgs/Image fields that carry pixels."""

    height: int
    width: int
    encoding: str
    step: int
    data: bytes
    is_bigendian: int = 0


def to_array(img: ImageFields) -> np.ndarray:
    """The pixels of an 8-bit image as ``(height, width, channels)`` uint8 (row padding removed)."""
    if img.encoding not in CHANNELS:
        raise ValueError(f"unsupported image encoding {img.encoding!r} (supported: {', '.join(CHANNELS)})")
    channels = CHANNELS[img.encoding]
    row = img.width * channels
    if img.step < row or len(img.data) < img.step * img.height:
        raise ValueError(
            f"image data too short: {len(img.data)} bytes for {img.height} rows of step {img.step} (need >= {row})"
        )
    rows = np.frombuffer(img.data, dtype=np.uint8, count=img.step * img.height).reshape(img.height, img.step)
    return rows[:, :row].reshape(img.height, img.width, channels)


def from_array(pixels: np.ndarray, encoding: str) -> ImageFields:
    """Image fields for a ``(height, width[, channels])`` uint8 array in ``encoding``'s channel order."""
    if encoding not in CHANNELS:
        raise ValueError(f"unsupported image encoding {encoding!r} (supported: {', '.join(CHANNELS)})")
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.shape[2] != CHANNELS[encoding]:
        raise ValueError(f"{encoding} needs {CHANNELS[encoding]} channels, got {pixels.shape[2]}")
    height, width, channels = pixels.shape
    return ImageFields(height, width, encoding, width * channels, pixels.tobytes())


def to_rgb(pixels: np.ndarray, encoding: str) -> np.ndarray:
    """``(h, w, 3)`` RGB from an array in ``encoding``'s channel order."""
    if encoding == "bgr8":
        return pixels[:, :, ::-1]
    if encoding == "mono8":
        return np.repeat(pixels.reshape(pixels.shape[0], pixels.shape[1], 1), 3, axis=2)
    return pixels


def crop(pixels: np.ndarray, box: tuple[int, int, int, int] | None) -> np.ndarray:
    """The ``(x, y, width, height)`` region (clipped to the image); the whole image for None."""
    if box is None:
        return pixels
    x, y, w, h = box
    if w <= 0 or h <= 0:
        raise ValueError(f"crop width and height must be positive, got {box}")
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + w, pixels.shape[1]), min(y + h, pixels.shape[0])
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"crop {box} lies outside the {pixels.shape[1]}x{pixels.shape[0]} image")
    return pixels[y0:y1, x0:x1]


@functools.lru_cache(maxsize=32)
def _weights(src: int, dst: int) -> np.ndarray:
    """``(dst, src)`` resampling matrix: triangle filter, widened when shrinking; rows sum to 1."""
    scale = src / dst
    support = max(scale, 1.0)
    centres = (np.arange(dst) + 0.5) * scale - 0.5
    taps = np.arange(src)
    w = np.maximum(0.0, 1.0 - np.abs(taps[None, :] - centres[:, None]) / support)  # nearest tap >= 0.5
    return (w / w.sum(axis=1, keepdims=True)).astype(np.float32)


def resize(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize ``(h, w, c)`` uint8 to ``size = (height, width)``."""
    height, width = size
    if pixels.shape[:2] == (height, width):
        return pixels
    rows, cols = _weights(pixels.shape[0], height), _weights(pixels.shape[1], width)
    out = np.einsum("ij,jkc->ikc", rows, pixels.astype(np.float32), optimize=True)
    out = np.einsum("lk,ikc->ilc", cols, out, optimize=True)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def observation(
    pixels: np.ndarray, encoding: str, box: tuple[int, int, int, int] | None, size: tuple[int, int]
) -> np.ndarray:
    """Decoded pixels → the policy's ``(height, width, 3)`` RGB uint8 crop."""
    return np.ascontiguousarray(resize(to_rgb(crop(pixels, box), encoding), size))


def stamp_seconds(sec: int, nanosec: int) -> float:
    """A header stamp in seconds."""
    return sec + nanosec * 1e-9


def is_stale(stamp: float | None, now: float, max_age_s: float) -> bool:
    """True if there is no frame or it is older than ``max_age_s`` (a frame from the future is fresh)."""
    return stamp is None or not math.isfinite(stamp) or now - stamp > max_age_s


def holds_frame_of(stamp: float | None, rate_hz: float, t_ns: int) -> bool:
    """Whether a sim camera whose newest frame is stamped ``stamp`` (s) has sent the frame of sim time ``t_ns``.

    The sim cell sends a camera's frame ``k`` at the first state step at or after ``k`` periods of sim time,
    so the frame of ``t_ns`` is the one due last at or before it (a microsecond of margin for float
    seconds)."""
    if stamp is None:
        return False
    period_ns = round(1e9 / rate_hz)
    return round(stamp * 1e9) >= t_ns // period_ns * period_ns - 1000


def absent_cameras(task: TaskConfig, robot: RobotConfig) -> list[str]:
    """The task's cameras that ``robot`` does not have (a black frame stands in, flagged in ``present``)."""
    return [name for name in task.observation.cameras if name not in robot.cameras]


def check_cameras(task: TaskConfig, robot: RobotConfig) -> None:
    """``ValueError`` when ``robot`` lacks one of ``task``'s cameras and the task does not observe ``present``."""
    absent = absent_cameras(task, robot)
    if absent and MASK_KEY not in task.observation.state:
        raise ValueError(
            f"task {task.name} observes camera {absent[0]!r}, which robot {robot.name} does not define "
            f"(cameras: {', '.join(robot.cameras) or 'none'}): add it to the robot config, or add '{MASK_KEY}' to "
            "the task's observation.state (a black frame then stands in, and the policy is told)"
        )
