"""CameraSet on a real node over real DDS, fed by realsense2_camera stand-ins (/camera/<name>/color/image_raw).

Covers: both configured cameras arrive as 128×128×3 RGB crops of the 640×480 stream (rgb8 and
bgr8 alike), and freshness: a camera that stops, or sends frames stamped
too long ago, is reported stale while the other stays fresh. Each stream runs in its own process
and every wait is for an event, so a loaded machine only slows the test down.
"""

from __future__ import annotations

import dataclasses
import os
import time

import driver_standins as standins
import numpy as np
import pytest

from user_robot.nodes.cameras import CameraSet
from user_robot.robot_config import load_robot
from user_robot.task_config import load_task


@pytest.fixture
def harness():
    h = standins.Harness()
    yield h
    h.close()


def test_frames_crops_and_staleness(spawn, harness) -> None:
    robot = load_robot("franka")  # /camera/{wrist,front}/color/image_raw, 640x480, crop [80, 0, 480, 480]
    task = load_task("peg_insertion")  # cameras wrist + front, 128x128
    max_age_s = task.observation.max_age_s
    standins.start(spawn, "realsense", "wrist", "rgb8", 15.0)  # each stream in its own process
    standins.start(spawn, "realsense", "front", "bgr8", 15.0)
    node = harness.node("actor_probe")
    cams = CameraSet(node, robot, task)
    assert cams.stale() == ["wrist", "front"] and cams.max_age_ms() == float("inf")

    # Fresh: a frame from each within max_age (asked until it holds: this process may be slow to take them).
    standins.wait_until(lambda: not cams.stale(), 30.0, "fresh frames from both cameras")
    frames = cams.latest()
    assert set(frames) == {"wrist", "front"}
    for name, (frame, _) in frames.items():
        assert frame.shape == (128, 128, 3) and frame.dtype == np.uint8, name
        # The crop keeps columns 80..560 of the 640-px 0..255 gradient: ~32..223 after resizing.
        gradient = frame[64, :, 2 if name == "front" else 0].astype(int)
        assert 28 <= gradient[0] <= 38 and 215 <= gradient[-1] <= 228 and np.all(np.diff(gradient) >= 0)
    np.testing.assert_array_equal(frames["wrist"][0][:, :, 2], 200)  # rgb8: blue channel
    np.testing.assert_array_equal(frames["front"][0][:, :, 0], 200)  # bgr8 converted: red channel
    arrived = cams.wait_newer(0, 10.0)  # arrivals are counted and waited for (the success classifier sleeps on it)
    assert arrived > 0 and cams.wait_newer(arrived, 10.0) > arrived

    # The front camera stops: stale once its last frame is older than max_age; the wrist stays fresh.
    standins.set_parameters(node, "/camera/front/realsense_front", publishing=False)
    standins.wait_until(lambda: cams.stale() == ["front"], 30.0, "front stale")
    assert cams.max_age_ms() > max_age_s * 1e3

    # Frames keep arriving but are stamped 3 s in the past (a stalled pipeline): stale too.
    standins.set_parameters(node, "/camera/front/realsense_front", stamp_offset_s=3.0, publishing=True)
    standins.wait_until(lambda: (f := cams.latest().get("front")) and time.time() - f[1] > 2.5, 30.0, "old frames")
    assert "front" in cams.stale()
    standins.set_parameters(node, "/camera/front/realsense_front", stamp_offset_s=0.0)
    standins.wait_until(lambda: "front" not in cams.stale(), 30.0, "front fresh again")
    assert cams.stale(max_age_s=0.0) == ["wrist", "front"]


def test_unknown_camera_is_named(harness) -> None:
    robot = load_robot("franka")
    task = load_task("peg_insertion")
    task = dataclasses.replace(task, observation=dataclasses.replace(task.observation, cameras=("side",)))
    with pytest.raises(ValueError, match=r"'side'.*wrist, front"):
        CameraSet(harness.node("probe"), robot, task)


def test_sim_cell_cameras(spawn, harness) -> None:
    """The sim cell renders the same realsense2_camera topics (relative, in the robot namespace)."""
    ns = f"/camera_test_{os.getpid()}"
    spawn(["-m", "user_robot.nodes.sim_cell", "--ros-args", "-r", f"__ns:={ns}", "-p", "robot:=sim"])
    cams = CameraSet(harness.node("actor_probe", ns), load_robot("sim"), load_task("peg_insertion"))
    standins.wait_until(lambda: not cams.stale(), 60.0, "fresh frames from the sim cell")
    for name, (frame, _) in cams.latest().items():
        assert frame.shape == (128, 128, 3) and frame.dtype == np.uint8, name
        assert frame.std() > 5, f"{name} looks blank"
