"""The learning-data contract in one place: USER's global topic names and the Transition codes.

Pure (no ROS): cores and nodes alike import these. The END_* and REWARD_* values mirror the
constants of ``user_interfaces/msg/Transition.msg`` (a test checks that they match).
"""

from __future__ import annotations

WEIGHTS_TOPIC = "/user/policy_weights"
"""Latched ``PolicyWeights`` from the learner."""
TRANSITIONS_TOPIC = "/user/transitions"
"""``Transition`` per executed step, from every actor."""
LEARNER_STATUS_TOPIC = "/user/learner_status"
"""Periodic ``LearnerStatus``."""
ACTOR_TICK_TOPIC = "actor/tick"
"""Per robot namespace: ``std_msgs/Header`` after every control tick of the actor, stamped with the
tick's time, ``frame_id`` :data:`TICK_COMMANDED` or :data:`TICK_IDLE` (the lockstep sim waits for it)."""
TICK_COMMANDED, TICK_IDLE = "commanded", "idle"
OBJECT_STATE_TOPIC = "sim/object_state"
"""Per robot namespace, sim only: ``std_msgs/Float32MultiArray``, the object poses then the success verdict
(1.0/0.0) of one sim step; its one layout dimension is labelled :func:`object_state_label` (the scene they are
of and the step's sim time)."""


def object_state_label(scene: int, stamp_ns: int) -> str:
    """The layout label of an object state: the cell's ``scene``-th scene (0: the one it starts with) and the
    sim time (ns) of the step it shows."""
    return f"scene_{scene}_ns_{stamp_ns}"


def object_state_of(label: str) -> tuple[int, int]:
    """``(scene, stamp_ns)`` an :func:`object_state_label` names (``(-1, -1)``: none, as from a cell that does
    not label them)."""
    parts = label.split("_")
    if len(parts) == 4 and parts[0] == "scene" and parts[2] == "ns" and parts[1].isdigit() and parts[3].isdigit():
        return int(parts[1]), int(parts[3])
    return -1, -1


END_NONE, END_SUCCESS, END_FAILURE, END_TIME_LIMIT, END_STALE_INPUT, END_SAFETY, END_ABORTED = range(7)
"""``Transition.end_reason`` values."""

REWARD_SIM, REWARD_POSE_REGION, REWARD_HUMAN, REWARD_CLASSIFIER = range(4)
"""``Transition.reward_source`` values."""

REWARD_SOURCES = {"sim": REWARD_SIM, "pose_region": REWARD_POSE_REGION, "human": REWARD_HUMAN,
                  "classifier": REWARD_CLASSIFIER}
"""Task YAML ``reward.source`` → ``Transition.reward_source``."""

TRUTH_UNKNOWN, TRUTH_UNSOLVED, TRUTH_SOLVED = range(3)
"""``Transition.truth`` values: the sim cell's ground truth for a message's observation."""
