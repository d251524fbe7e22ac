"""Velocity estimate from stamped poses, gripper width from finger joints, Franka error modes."""

from __future__ import annotations

import numpy as np

from user_robot.arm_state_core import ControlPeriodRelay, VelocityEstimator, gripper_width, robot_mode_error
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
    est.update(1.0, np.zeros(3), q)  # the same sample again (a re-publish): ignored (no division by zero)
    assert not np.any(est.linear)
    est.update(1.1, np.array([0.01, 0.0, 0.0]), q)
    np.testing.assert_allclose(est.linear, [0.1, 0.0, 0.0])
    est.update(1.05, np.ones(3), q)  # older: ignored
    np.testing.assert_allclose(est.linear, [0.1, 0.0, 0.0])
    est.update(3.0, np.array([1.0, 0.0, 0.0]), q)  # a gap (driver outage): restart at zero
    assert not np.any(est.linear)
    est.update(3.1, np.array([1.02, 0.0, 0.0]), q)
    np.testing.assert_allclose(est.linear, [0.2, 0.0, 0.0])
    est.update(3.1, np.array([0.5, 0.0, 0.0]), q)  # replaced at the same stamp (a sim restarted): restart at zero
    assert not np.any(est.linear)
    est.update(3.2, np.array([0.51, 0.0, 0.0]), q)  # ...from the pose that replaced it
    np.testing.assert_allclose(est.linear, [0.1, 0.0, 0.0])


def test_gripper_width_and_robot_modes() -> None:
    assert gripper_width([0.02, 0.02]) == 0.04
    assert robot_mode_error(2, []) is None  # move
    assert robot_mode_error(1, []) is None  # idle
    assert robot_mode_error(4, ["joint_reflex"]) == "robot mode reflex: joint_reflex"
    assert robot_mode_error(5, []) == "robot mode user_stopped"
    assert robot_mode_error(9, []) is None


def test_the_state_is_relayed_once_every_stream_reached_a_new_control_period() -> None:
    relay = ControlPeriodRelay(100_000_000, ("pose", "wrench", "gripper"))  # 10 Hz control, 5 ms sim steps
    ms = 1_000_000
    assert not relay.arrived("pose", 0) and not relay.arrived("wrench", 0)  # (the gripper not yet heard)
    assert relay.arrived("gripper", 0)  # period 0, all three in
    relayed = []
    for t in range(5 * ms, 305 * ms, 5 * ms):
        for stream in ("pose", "wrench", "gripper"):
            if relay.arrived(stream, t):
                relayed.append((stream, t))
    # once a period, when the last of the three samples of its first step came
    assert relayed == [("gripper", 100 * ms), ("gripper", 200 * ms), ("gripper", 300 * ms)]
    assert not relay.arrived("pose", 250 * ms)  # (an old sample, out of order: nothing)
    assert relay.relayed(300 * ms) and relay.relayed(250 * ms) and not relay.relayed(400 * ms)
    # a real arm's 1 kHz stamps never fall on the period's start: the first sample after it
    real = ControlPeriodRelay(100_000_000, ("pose",))
    stamps = [99_999_317 + k * ms for k in range(102)]
    assert [t for t in stamps if real.arrived("pose", t)] == [99_999_317, 100_999_317, 200_999_317]
