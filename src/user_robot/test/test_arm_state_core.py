"""Velocity estimate from stamped poses, gripper width from finger joints, Franka error modes."""

from __future__ import annotations

import numpy as np

from user_robot.arm_state_core import VelocityEstimator, gripper_width, robot_mode_error
from user_robot.pose_math import quat_from_rotvec


def test_velocity_converges_to_finite_difference() -> None:
    est = VelocityEstimator(time_constant_s=0.02)
    v, w = np.array([0.1, -0.05, 0.02]), np.array([0.0, 0.0, 0.5])
    for i in range(200):  # 1 kHz, 0.2 s
        t = i * 0.001
        est.update(t, v * t, quat_from_rotvec(w * t))
    np.testing.assert_allclose(est.linear, v, rtol=1e-4)  # e^-10 of the start-up transient left
    np.testing.assert_allclose(est.angular, w, rtol=1e-4)


def test_duplicate_stamps_and_gaps() -> None:
    est = VelocityEstimator(time_constant_s=0.0, max_gap_s=0.5)
    q = np.array([0.0, 0.0, 0.0, 1.0])
    est.update(1.0, np.zeros(3), q)
    est.update(1.0, np.ones(3), q)  # same stamp: ignored (no division by zero)
    assert not np.any(est.linear)
    est.update(1.1, np.array([0.01, 0.0, 0.0]), q)
    np.testing.assert_allclose(est.linear, [0.1, 0.0, 0.0])
    est.update(3.0, np.array([1.0, 0.0, 0.0]), q)  # a gap (driver outage): restart at zero
    assert not np.any(est.linear)


def test_gripper_width_and_robot_modes() -> None:
    assert gripper_width([0.02, 0.02]) == 0.04
    assert robot_mode_error(2, []) is None  # move
    assert robot_mode_error(1, []) is None  # idle
    assert robot_mode_error(4, ["joint_reflex"]) == "robot mode reflex: joint_reflex"
    assert robot_mode_error(5, []) == "robot mode user_stopped"
    assert robot_mode_error(9, []) is None
