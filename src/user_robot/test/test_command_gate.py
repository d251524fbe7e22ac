"""CommandGate (pure): only fresh commands in the driven frame, from one source at a time, get through."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from user_robot.command_gate import BURST_GAP_S, FOREIGN_FRAME, FOREIGN_SOURCE, STALE, CommandGate

FRAME, AGE, OWNER_TIMEOUT = "base", 0.5, 1.0

commands = st.lists(
    st.tuples(
        st.floats(0.001, 0.8),  # time since the previous command
        st.floats(-0.2, 3.0),  # age of its stamp
        st.sampled_from([FRAME, "", "map", "end_effector"]),
        st.sampled_from(["actor", "stray", "replay"]),
    ),
    max_size=60,
)


@settings(max_examples=500, deadline=None, derandomize=True, database=None)
@given(commands)
def test_every_admitted_command_is_fresh_framed_and_from_the_owner(sequence) -> None:
    gate = CommandGate(FRAME, AGE, OWNER_TIMEOUT)
    now, owner, owner_seen, refused = 100.0, None, float("-inf"), 0
    for gap, age, frame, source in sequence:
        now += gap
        verdict = gate.admit(now, now - age, frame, source)
        if verdict.admitted:
            assert frame == FRAME and age <= AGE
            assert owner is None or source == owner or now - owner_seen >= OWNER_TIMEOUT
            owner, owner_seen = source, now
        else:
            assert verdict.reason in (STALE, FOREIGN_FRAME, FOREIGN_SOURCE) and verdict.detail
            refused += 1
    assert sum(gate.refused.values()) == refused


def test_refusals_are_counted_and_logged_once_per_burst() -> None:
    gate = CommandGate(FRAME, AGE, OWNER_TIMEOUT)
    assert gate.admit(0.0, 0.0, FRAME, "actor").admitted
    logs = [gate.admit(t / 10, t / 10 - 3600, FRAME, "actor").log for t in range(1, 11)]  # an hour old, at 10 Hz
    assert logs == [True] + [False] * 9 and gate.refused[STALE] == 10
    assert gate.admit(1.0 + BURST_GAP_S + 0.1, -3600, FRAME, "actor").log  # a new burst
    assert not gate.admit(3.2, 3.2, "map", "actor").admitted and gate.refused[FOREIGN_FRAME] == 1


def test_a_silent_owner_hands_over_and_a_live_one_does_not() -> None:
    gate = CommandGate(FRAME, AGE, OWNER_TIMEOUT)
    assert gate.admit(0.0, 0.0, FRAME, "actor").admitted
    assert gate.admit(0.5, 0.5, FRAME, "stray").reason == FOREIGN_SOURCE
    assert gate.admit(0.9, 0.9, FRAME, "actor").admitted
    assert gate.admit(1.8, 1.8, FRAME, "stray").reason == FOREIGN_SOURCE  # the actor spoke 0.9 s ago
    assert gate.admit(2.0, 2.0, FRAME, "restarted actor").admitted  # 1.1 s of silence
    assert gate.owner == "restarted actor"
