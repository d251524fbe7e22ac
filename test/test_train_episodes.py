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


def test_each_robots_own_steps_to_a_success_rate() -> None:
    log = EpisodeLog()
    for i in range(25):  # robot_0 fails its first 4 episodes, then succeeds; robot_1 always fails
        log.add(EpisodeResult(robot_id="robot_0", length=100 if i < 4 else 30, success=i >= 4))
        log.add(EpisodeResult(robot_id="robot_1", length=100, success=False))
    # robot_0's last 20 first hold 16 successes at its 20th episode: 4 x 100 + 16 x 30 steps of its own
    assert log.robot_steps_to(0.8) == {"robot_0": 880, "robot_1": None}
    assert log.robot_steps_to(0.8, last=30) == {"robot_0": None, "robot_1": None}
