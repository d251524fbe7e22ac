"""The scripted expert through the real topics: virtual SpaceMouse → teleop → actor → arm bridge →
the sim cell's driver topics, for every task; a random policy through the same graph fails."""

from __future__ import annotations

import pytest

from user_learner.cli.sim import run_episodes
from user_robot.config_loader import config_names

EPISODES = 20


@pytest.mark.slow
@pytest.mark.parametrize("task", config_names("tasks"))
def test_expert_succeeds_through_topics(task: str, tmp_path) -> None:
    log, code = run_episodes(task, "sim", EPISODES, expert=True, seed=1, log_dir=tmp_path, timeout=540)
    assert code == 0, log.summary()
    assert len(log.results) >= EPISODES
    assert log.success_rate(last=EPISODES) >= 0.9, log.summary()
    assert all(r.intervened_steps > 0 for r in log.results)  # the actor executed the human's actions


@pytest.mark.slow
def test_random_policy_fails_through_topics(tmp_path) -> None:
    log, code = run_episodes("peg_insertion", "sim", 10, expert=False, seed=1, log_dir=tmp_path, timeout=400)
    assert code == 0, log.summary()
    assert log.success_rate(last=10) <= 0.1, log.summary()
    assert all(r.intervened_steps == 0 for r in log.results)
