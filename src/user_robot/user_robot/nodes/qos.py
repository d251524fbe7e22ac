"""QoS profiles of USER topics, chosen on purpose (each says why).

Driver-facing profiles mirror what the drivers use (DRIVERS.md), so we interoperate with them.
"""

from __future__ import annotations

from rclpy.duration import Duration
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    LivelinessPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)

WEIGHTS_PARTS = 16
"""Slices a large weights payload travels in; also the latched history, so a late actor gets them all."""
WEIGHTS_PART_MB = 8.0
"""Payloads above this many MB are split (eval's; a learner's: its recipe's ``publish_part_mb``)."""
WEIGHTS = QoSProfile(
    depth=WEIGHTS_PARTS,
    history=HistoryPolicy.KEEP_LAST,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
"""Policy weights: latched (an actor that starts late gets the newest: every part of it, or the last whole
versions, of which it loads the newest)."""

TRANSITIONS = QoSProfile(
    depth=1000,
    history=HistoryPolicy.KEEP_LAST,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
"""Transitions: every step counts, so reliable with a deep queue (100 s of one robot at 10 Hz), and
transient-local so a learner that starts late or restarts still receives what the actors sent meanwhile."""

CONTROL = QoSProfile(
    depth=1,
    history=HistoryPolicy.KEEP_LAST,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
"""Commands and state between our nodes: only the latest matters, but none may be dropped silently."""

HEARTBEAT_LEASE_S = 1.0
"""DDS liveliness lease of :data:`HEARTBEAT` topics: a node killed outright is known gone this long after."""
HEARTBEAT = QoSProfile(
    depth=1,
    history=HistoryPolicy.KEEP_LAST,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
    liveliness=LivelinessPolicy.AUTOMATIC,
    liveliness_lease_duration=Duration(seconds=HEARTBEAT_LEASE_S),
)
""":data:`CONTROL` with a liveliness lease, for what a lockstep sim waits on (``actor/tick``, ``arm/state``,
``intervention``): the DDS participant asserts it on its own threads (a busy Python node does not lose
it), so the sim learns of a ``kill -9`` within the lease and goes on without that node at once instead of
after its ``lockstep_timeout_s``. A :data:`CONTROL` subscriber (lease infinite) matches it."""

STATUS = QoSProfile(
    depth=10,
    history=HistoryPolicy.KEEP_LAST,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
"""Status and episode results: late joiners (rqt, a restarted CLI) see the recent history."""

SENSOR = qos_profile_sensor_data
"""Best effort, depth 5: franka_robot_state_broadcaster's convenience topics publish this way."""

IMAGES = QoSProfile(
    depth=1,
    history=HistoryPolicy.KEEP_LAST,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
"""Camera images: realsense2_camera's default (SYSTEM_DEFAULT = reliable); we only need the latest."""

TELEOP = QoSProfile(
    depth=10,
    history=HistoryPolicy.KEEP_LAST,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
"""spacenav publishes reliable with depth 10."""

PROFILES = {
    "weights": WEIGHTS,
    "transitions": TRANSITIONS,
    "control": CONTROL,
    "status": STATUS,
    "sensor": SENSOR,
    "images": IMAGES,
    "teleop": TELEOP,
}
"""Profiles by the names config/robots/*.yaml uses."""
