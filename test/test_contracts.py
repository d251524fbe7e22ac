"""The pure contract constants (user_robot.contracts) match the interface definitions."""

from __future__ import annotations

from user_interfaces.msg import Transition
from user_robot import contracts


def test_transition_codes_match_the_message() -> None:
    names = [n for n in dir(contracts) if n.startswith(("END_", "REWARD_", "TRUTH_")) and n != "REWARD_SOURCES"]
    assert len(names) == 14
    for name in names:
        assert getattr(contracts, name) == getattr(Transition, name), name
    assert set(contracts.REWARD_SOURCES.values()) == {getattr(Transition, n) for n in names if n.startswith("REWARD_")}
