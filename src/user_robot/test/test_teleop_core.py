"""SpaceMouse logic: deadband, mapping, scaling, hold, input timeout, gripper channel, labels."""

from __future__ import annotations

import numpy as np
import pytest

from user_robot.robot_config import TeleopConfig
from user_robot.teleop_core import LABEL_FAILURE, LABEL_NONE, LABEL_SUCCESS, TeleopCore

CFG = TeleopConfig(
    deadband=0.1,
    axis_map=(1, 0, 2, 3, 4, 5),
    axis_scale=(1.0, -1.0, 2.0, 1.0, 1.0, 1.0),
    input_full_scale=0.5,
    hold_s=0.5,
    input_timeout_s=1.0,
    button_close=0,
    button_open=1,
    button_success=2,
    button_failure=3,
)


def test_mapping_deadband_scaling_and_clipping() -> None:
    core = TeleopCore(CFG, 6)
    core.twist([0.2, 0.1, 0.4, 0.04, -0.5, 0.0], now=0.0)
    # x <- twist y / 0.5 = 0.2; y <- -(twist x / 0.5) = -0.4; z <- 2 * 0.8 clipped; wx 0.08 in deadband.
    np.testing.assert_allclose(core.tick(0.0).action, [0.2, -0.4, 1.0, 0.0, -1.0, 0.0], atol=1e-6)


def test_hold_after_release_and_input_timeout() -> None:
    core = TeleopCore(CFG, 6)
    assert not core.tick(0.0).active
    core.twist([0.3, 0, 0, 0, 0, 0], now=1.0)
    assert core.tick(1.0).active
    core.twist([0.0] * 6, now=1.2)
    state = core.tick(1.2)
    assert state.active and not np.any(state.action)  # within the hold: active, zero action
    assert core.tick(1.45).active  # hold_s 0.5 after the last tick with input (1.0)
    assert not core.tick(1.55).active
    core.twist([0.3, 0, 0, 0, 0, 0], now=2.0)  # then the device goes silent
    assert core.tick(2.9).active
    assert not np.any(core.tick(3.1).action)  # twist older than input_timeout_s counts as zero
    assert not core.tick(3.6).active


def test_gripper_channel_is_persistent_and_buttons_are_input() -> None:
    core = TeleopCore(CFG, 7)
    assert core.tick(0.0).action[6] == 0.0
    core.joy([1, 0])
    state = core.tick(0.1)
    assert state.active and state.action[6] == 1.0
    core.joy([0, 0])
    assert core.tick(5.0).action[6] == 1.0 and not core.tick(5.0).active
    core.joy([0, 1])
    assert core.tick(5.1).action[6] == -1.0
    assert core.tick(9.0).active  # a held button keeps control (spacenav publishes buttons on change)


def test_labels_once_and_label_buttons_are_not_control() -> None:
    core = TeleopCore(CFG, 6)
    core.joy([0, 0, 1, 0])
    first = core.tick(0.0)
    assert first.label == LABEL_SUCCESS and not first.active
    assert core.tick(0.1).label == LABEL_NONE
    core.joy([0, 0, 1, 0])  # still held: no new press
    assert core.tick(0.2).label == LABEL_NONE
    core.label(LABEL_FAILURE)
    assert core.tick(0.3).label == LABEL_FAILURE
    with pytest.raises(ValueError, match="label"):
        core.label(5)


def test_bad_config_is_refused() -> None:
    with pytest.raises(ValueError, match="axis_map"):
        TeleopCore(TeleopConfig(axis_map=(0, 0, 1, 2, 3, 4)), 6)
    with pytest.raises(ValueError, match="dims"):
        TeleopCore(CFG, 5)
