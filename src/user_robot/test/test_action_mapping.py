"""Normalized action ↔ pose target, in both frames, and the pose maths under it."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from user_robot.action_mapping import GRIPPER_CLOSE, GRIPPER_OPEN, action_toward, apply_action
from user_robot.pose_math import quat_angle, quat_from_rpy, rpy_from_quat, wrap_angle
from user_robot.task_config import ActionConfig

DOWN = quat_from_rpy([np.pi, 0.0, 0.0])  # gripper pointing down
unit = st.floats(-1.0, 1.0, allow_nan=False)


def test_base_frame_translation_and_gripper() -> None:
    cfg = ActionConfig(dims=7, frame="base", translation_scale=0.02)
    t = apply_action(np.array([1, -0.5, 0, 0, 0, 0, 0.9]), np.zeros(3), DOWN, cfg)
    np.testing.assert_allclose(t.xyz, [0.02, -0.01, 0.0])
    assert quat_angle(t.quat, DOWN) < 1e-9
    assert t.gripper == GRIPPER_CLOSE
    assert apply_action(np.array([0, 0, 0, 0, 0, 0, -0.9]), np.zeros(3), DOWN, cfg).gripper == GRIPPER_OPEN
    assert apply_action(np.array([0, 0, 0, 0, 0, 0, 0.2]), np.zeros(3), DOWN, cfg).gripper is None


def test_ee_frame_uses_tool_axes() -> None:
    # With the tool pointing down (roll = π), tool +z is base -z and tool +y is base -y.
    cfg = ActionConfig(dims=6, frame="ee", translation_scale=0.01, gripper="none")
    t = apply_action(np.array([0, 1, 1, 0, 0, 0]), np.zeros(3), DOWN, cfg)
    np.testing.assert_allclose(t.xyz, [0.0, -0.01, -0.01], atol=1e-12)
    # A yaw about the tool axis is a yaw about base -z.
    cfg = ActionConfig(dims=6, frame="ee", rotation_scale=0.1, gripper="none")
    t = apply_action(np.array([0, 0, 0, 0, 0, 1]), np.zeros(3), DOWN, cfg)
    assert abs(wrap_angle(rpy_from_quat(t.quat)[2] + 0.1)) < 1e-9


def test_actions_are_clipped() -> None:
    cfg = ActionConfig(dims=6, translation_scale=0.01)
    t = apply_action(np.array([50.0, 0, 0, 0, 0, 0]), np.zeros(3), DOWN, cfg)
    np.testing.assert_allclose(t.xyz, [0.01, 0, 0])


@settings(max_examples=300, deadline=None)
@given(st.lists(unit, min_size=6, max_size=6), st.sampled_from(["base", "ee"]), st.floats(-np.pi, np.pi))
def test_action_toward_inverts_apply_action(a: list[float], frame: str, yaw: float) -> None:
    cfg = ActionConfig(dims=6, frame=frame, translation_scale=0.02, rotation_scale=0.1, gripper="none")
    start = quat_from_rpy([np.pi, 0.0, yaw])
    xyz = np.array([0.5, 0.1, 0.2])
    t = apply_action(np.array(a), xyz, start, cfg)
    np.testing.assert_allclose(action_toward(xyz, start, t.xyz, t.quat, cfg), a, atol=1e-7)


@settings(max_examples=300, deadline=None)
@given(st.floats(-3.1, 3.1), st.floats(-1.5, 1.5), st.floats(-3.1, 3.1))
def test_rpy_roundtrip(r: float, p: float, y: float) -> None:
    np.testing.assert_allclose(wrap_angle(rpy_from_quat(quat_from_rpy([r, p, y])) - [r, p, y]), 0, atol=1e-7)
