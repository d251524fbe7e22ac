"""The ``last_action`` state key through the real graph: each recorded state carries the action the
previous tick sent to the arm (zero at an episode's first)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sim_collect import collect

from user_learner.bags.transition_bag import read_episodes


@pytest.mark.slow
def test_each_recorded_state_carries_the_previous_ticks_action(tmp_path: Path) -> None:
    out = collect(tmp_path, {"tasks/pick_and_place": {"observation.state": ["gripper", "last_action"]}},
                  "pick_and_place", 1)
    (episode,) = read_episodes(out, images=False)
    states = np.stack([s.state for s in episode.steps])
    actions = np.stack([s.action for s in episode.steps[:-1]])
    assert states.shape[1] == 1 + 7 and np.abs(actions).max() > 0.1  # the expert moved
    np.testing.assert_array_equal(states[0, 1:], 0.0)
    np.testing.assert_allclose(states[1:, 1:], actions, atol=1e-6)
