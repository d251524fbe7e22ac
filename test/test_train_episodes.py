"""``user-rl train --episodes N`` stops once N episodes ended, and in the synchronous pipeline once the learner
has trained on the last of them too (its final checkpoint holds those updates)."""

from __future__ import annotations

from user_interfaces.msg import EpisodeResult, LearnerStatus
from user_learner.cli import train
from user_learner.cli.runner import EpisodeLog


def episode(robot: str, versions: list[int]) -> EpisodeResult:
    return EpisodeResult(robot_id=robot, length=50, policy_versions=versions)


def test_async_stops_at_the_nth_episode() -> None:
    log, done = EpisodeLog(), train.EpisodesDone(2, trained=False)
    log.add(episode("robot_0", [1]))
    assert not done(log)
    log.add(episode("robot_0", [2]))
    assert done(log)


def test_sync_waits_for_weights_newer_than_every_robots_last_episode() -> None:
    log, done = EpisodeLog(), train.EpisodesDone(2, trained=True)
    log.learner = LearnerStatus(version=3)  # (trained on the first episodes; the last two ran on v3 and v4)
    log.add(episode("robot_0", [3]))
    log.add(episode("robot_1", [3, 4]))
    assert not done(log)
    log.learner = LearnerStatus(version=4)
    assert not done(log)  # robot_1's last episode ran on v4 in part
    log.learner = LearnerStatus(version=5)
    assert done(log)


def test_sync_gives_up_waiting_for_a_learner_that_never_publishes(monkeypatch, capsys) -> None:
    log, done = EpisodeLog(), train.EpisodesDone(1, trained=True)
    log.add(episode("robot_0", [7]))
    assert not done(log)
    monkeypatch.setattr(train, "SYNC_FINAL_WAIT_S", 0.0)
    assert done(log)
    assert "no learner weights trained on the last episode" in capsys.readouterr().err
