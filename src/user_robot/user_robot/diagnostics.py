"""Build ``diagnostic_msgs/DiagnosticArray`` messages for ``/diagnostics`` (rqt_runtime_monitor, aggregator).

Every USER node (arm bridge, actor, learner) reports through :func:`diagnostic_array`, so keys are
formatted one way everywhere. The documented keys per node are listed in ``docs/ros_workflows.md``.
Pure: message classes only, no rclpy.
"""

from __future__ import annotations

from collections.abc import Mapping

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from std_msgs.msg import Header

OK = 0
WARN = 1
ERROR = 2
STALE = 3
_LEVELS = (DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR, DiagnosticStatus.STALE)

ARM_BRIDGE_KEYS = (
    "status",
    "loop_rate_hz",
    "loop_jitter_ms",
    "state_age_ms",
    "joint_states_age_ms",
    "clamps_workspace",
    "clamps_translation_step",
    "clamps_rotation_step",
    "rejected_nonfinite",
    "watchdog_holds",
    "gripper_debounced",
    "commands_stale",
    "commands_foreign_frame",
    "commands_foreign_source",
)
"""Keys the arm bridge publishes (status name ``<robot_id>/arm_bridge``)."""

ACTOR_KEYS = (
    "loop_rate_hz",
    "loop_period_p50_ms",
    "loop_period_p99_ms",
    "camera_age_ms",
    "state_age_ms",
    "weight_version",
    "weight_age_s",
    "episode",
    "intervened_steps",
    "chunk_inference_ms",
    "chunk_held_ticks",
)
"""Keys the actor publishes (status name ``<robot_id>/actor``)."""

LEARNER_KEYS = (
    "updates",
    "updates_per_second",
    "online_buffer_size",
    "demo_buffer_size",
    "transitions_received",
    "transitions_duplicate",
    "weight_version",
    "publish_latency_ms",
)
"""Keys the learner publishes (status name ``learner``)."""


def format_value(value: object) -> str:
    """Format one value the way rqt shows it: floats with 4 significant digits, bools lower-case."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def diagnostic_array(
    stamp: Time,
    name: str,
    hardware_id: str,
    values: Mapping[str, object],
    level: int = OK,
    message: str = "",
) -> DiagnosticArray:
    """One ``DiagnosticArray`` with a single status ``name`` (e.g. ``"robot_0/arm_bridge"``).

    ``level`` is :data:`OK`, :data:`WARN`, :data:`ERROR` or :data:`STALE`; ``message`` defaults to
    ``"ok"``/``"warn"``/``"error"``/``"stale"``. Values keep their insertion order.
    """
    if level not in range(len(_LEVELS)):
        raise ValueError(f"level must be 0..3 (OK, WARN, ERROR, STALE), got {level}")
    status = DiagnosticStatus(
        level=_LEVELS[level],
        name=name,
        hardware_id=hardware_id,
        message=message or ("ok", "warn", "error", "stale")[level],
        values=[KeyValue(key=str(k), value=format_value(v)) for k, v in values.items()],
    )
    return DiagnosticArray(header=Header(stamp=stamp), status=[status])


def values_of(array: DiagnosticArray) -> dict[str, str]:
    """The key/value pairs of all statuses in ``array`` (for tests and tools)."""
    return {kv.key: kv.value for status in array.status for kv in status.values}

