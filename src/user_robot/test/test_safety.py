"""Safety layer units: circular clipping across ±π, box, step limits, NaN, watchdog, gripper debounce."""

from __future__ import annotations

import math

import numpy as np
import pytest

from user_robot.pose_math import quat_from_rpy, rpy_from_quat
from user_robot.robot_config import SafetyConfig
from user_robot.safety import GripperDebouncer, Pose, SafetyCounters, SafetyFilter, Watchdog, circular_clip
from user_robot.task_config import ActionConfig, PoseConfig, WorkspaceConfig

TARGET = PoseConfig((0.5, 0.0, 0.1), (math.pi, 0.0, 0.0))
BOX = WorkspaceConfig((-0.05, -0.05, 0.0), (0.05, 0.05, 0.1), (-0.01, -0.01, -0.5), (0.01, 0.01, 0.5))
CFG = ActionConfig(dims=7, frame="base", translation_scale=0.02, rotation_scale=0.1)


def make_filter(step: float = 0.03, rot: float = 0.15) -> SafetyFilter:
    f = SafetyFilter(TARGET, BOX, SafetyConfig(max_translation_step=step, max_rotation_step=rot))
    f.hold(Pose.of(TARGET.xyz, quat_from_rpy(TARGET.rpy)))
    return f


@pytest.mark.parametrize(
    ("angle", "low", "high", "expected"),
    [
        (0.2, -0.5, 0.5, 0.2),
        (0.7, -0.5, 0.5, 0.5),
        (3.0, -0.5, 0.5, 0.5),  # nearer to +0.5 than to -0.5 going round through ±π
        (-3.0, -0.5, 0.5, -0.5),
        (math.pi - 0.01, 2.9, 3.5, math.pi - 0.01),  # arc crossing +π
        (-math.pi + 0.1, 2.9, 3.5, -math.pi + 0.1),  # = π + 0.1, inside that arc
        (0.0, 2.9, 3.5, 3.5),  # 2.78 rad to 3.5 the short way round, 2.9 rad to 2.9
        (1.0, -math.pi, math.pi, 1.0),
    ],
)
def test_circular_clip(angle: float, low: float, high: float, expected: float) -> None:
    got = circular_clip(angle, low, high)
    assert math.isclose(math.remainder(got - expected, 2 * math.pi), 0.0, abs_tol=1e-12)


def test_roll_near_pi_is_inside_and_clipped_continuously() -> None:
    f = make_filter()
    ws = f.workspace
    # Absolute roll -π + 0.005 is 0.005 rad from the target roll π: inside, not clipped to the far side.
    q = quat_from_rpy([-math.pi + 0.005, 0.0, 0.0])
    assert ws.contains_quat(q)
    q = quat_from_rpy([math.pi - 0.3, 0.0, 0.2])  # 0.3 rad roll beyond the box
    clipped = rpy_from_quat(ws.clip_quat(q))
    assert math.isclose(math.remainder(clipped[0] - (math.pi - 0.01), 2 * math.pi), 0.0, abs_tol=1e-9)
    assert math.isclose(clipped[2], 0.2, abs_tol=1e-9)


def test_action_clamped_to_box_and_counted() -> None:
    f = make_filter()
    pose = f.last
    for _ in range(10):
        pose, grip = f.action(np.array([0, 0, -1, 0, 0, 0, 0.9]), pose, CFG)
    assert math.isclose(pose.xyz[2], 0.1, abs_tol=1e-12)  # box bottom = target z
    assert grip == 1
    assert f.counters.clamps_workspace == 10


def test_step_limits_clamp_and_count() -> None:
    f = make_filter(step=0.005, rot=0.02)
    cfg = ActionConfig(dims=6, translation_scale=0.02, rotation_scale=0.1, gripper="none")
    pose, _ = f.action(np.array([1, 0, 0, 0, 0, 1]), f.last, cfg)
    assert math.isclose(pose.xyz[0] - TARGET.xyz[0], 0.005, abs_tol=1e-12)
    assert math.isclose(rpy_from_quat(pose.quat)[2], 0.02, abs_tol=1e-9)
    assert f.counters.clamps_translation_step == 1
    assert f.counters.clamps_rotation_step == 1


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nonfinite_action_holds_pose(bad: float) -> None:
    f = make_filter()
    before = f.last
    pose, grip = f.action(np.array([0.5, 0, 0, 0, 0, bad, 1.0]), before, CFG)
    assert pose is before
    assert grip is None
    assert f.counters.rejected_nonfinite == 1
    nan_measured = Pose(np.array([math.nan, 0, 0]), np.array([0, 0, 0, 1.0]))
    assert f.action(np.zeros(7), nan_measured, CFG)[0] is before
    assert f.counters.rejected_nonfinite == 2


def test_watchdog_counts_each_hold_once() -> None:
    counters = SafetyCounters()
    w = Watchdog(0.5, counters)
    assert not w.expired(100.0)  # never fed: not a watchdog hold (startup holds the measured pose)
    w.feed(0.0)
    assert not w.expired(0.5)
    assert w.expired(0.51) and w.expired(2.0)
    assert counters.watchdog_holds == 1
    w.feed(2.0)
    assert not w.expired(2.1)
    assert w.expired(3.0)
    assert counters.watchdog_holds == 2


def test_gripper_debounce() -> None:
    counters = SafetyCounters()
    g = GripperDebouncer(0.6, counters)
    assert g.request(1, 0.0) == 1
    assert g.request(1, 0.1) is None  # no change
    assert g.request(0, 0.3) is None  # too soon
    assert counters.gripper_debounced == 1
    assert g.request(0, 0.7) == 0
    assert g.request(1, 0.8, force=True) == 1
    assert g.request(None, 5.0) is None


def test_pitch_limits_must_avoid_singularity() -> None:
    with pytest.raises(ValueError, match="pitch"):
        SafetyFilter(TARGET, WorkspaceConfig((0,) * 3, (0,) * 3, (0, -1.6, 0), (0, 0, 0)), SafetyConfig())
