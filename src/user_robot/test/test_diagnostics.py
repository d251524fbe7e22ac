"""diagnostic_array: one status, formatted values, levels as DiagnosticStatus bytes."""

from __future__ import annotations

import pytest
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticStatus

from user_robot.diagnostics import ARM_BRIDGE_KEYS, WARN, diagnostic_array, values_of


def test_diagnostic_array_formats_values_and_level() -> None:
    values = dict.fromkeys(ARM_BRIDGE_KEYS, 0) | {"loop_rate_hz": 99.87654, "status": "ok", "gripper_debounced": True}
    array = diagnostic_array(Time(sec=3, nanosec=5), "robot_0/arm_bridge", "robot_0", values, WARN)
    assert array.header.stamp == Time(sec=3, nanosec=5)
    (status,) = array.status
    assert status.level == DiagnosticStatus.WARN and status.message == "warn"
    assert status.name == "robot_0/arm_bridge" and status.hardware_id == "robot_0"
    got = values_of(array)
    assert list(got) == list(ARM_BRIDGE_KEYS)
    assert got["loop_rate_hz"] == "99.88" and got["gripper_debounced"] == "true" and got["clamps_workspace"] == "0"


def test_diagnostic_array_rejects_unknown_level() -> None:
    with pytest.raises(ValueError, match="level"):
        diagnostic_array(Time(), "x", "x", {}, 7)
