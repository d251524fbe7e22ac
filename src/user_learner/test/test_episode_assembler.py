"""Episode assembler: the Transition-message protocol, interleaving, truncation vs termination, gaps."""

from __future__ import annotations

import numpy as np

from user_learner.episode_assembler import END_SUCCESS, EpisodeAssembler, StepRecord

END_TIME_LIMIT = 3


def messages(robot: str, episode: str, length: int, *, terminated: bool, intervened=(), version: int = 1):
    """An episode of ``length`` steps + the final-observation message, as the actor publishes it."""
    out = [
        StepRecord(robot, episode, t, {"state": np.array([t], np.float32)}, np.array([t / 10], np.float32),
                   reward=float(t == length - 1), intervened=t in intervened, policy_version=version)
        for t in range(length)
    ]
    out.append(StepRecord(robot, episode, length, {"state": np.array([length], np.float32)}, np.zeros(0, np.float32),
                          0.0, terminated=terminated, truncated=not terminated,
                          end_reason=END_SUCCESS if terminated else END_TIME_LIMIT, policy_version=version))
    return out


def feed(assembler: EpisodeAssembler, records):
    transitions, stats = [], []
    for record in records:
        ts, s = assembler.add(record)
        transitions += ts
        if s is not None:
            stats.append(s)
    return transitions, stats


def test_terminated_episode_rebuilds_every_transition() -> None:
    transitions, stats = feed(EpisodeAssembler(), messages("r0", "e0", 5, terminated=True, intervened={1, 2}))
    assert [t.step for t in transitions] == [0, 1, 2, 3, 4]
    for t in transitions:
        assert t.next_obs["state"][0] == t.obs["state"][0] + 1
        assert t.action[0] == np.float32(t.step / 10)
    assert [t.done for t in transitions] == [False] * 4 + [True]
    assert [t.intervened for t in transitions] == [False, True, True, False, False]
    (s,) = stats
    assert (s.length, s.episode_return, s.success, s.intervened_steps, s.missing_steps) == (5, 1.0, True, 2, 0)
    assert s.terminated and not s.truncated and s.policy_version == 1


def test_truncated_episode_bootstraps() -> None:
    transitions, stats = feed(EpisodeAssembler(), messages("r0", "e0", 4, terminated=False))
    assert len(transitions) == 4 and not any(t.done for t in transitions)
    assert transitions[-1].next_obs["state"][0] == 4
    assert stats[0].truncated and not stats[0].success and stats[0].end_reason == END_TIME_LIMIT


def test_interleaved_robots_and_episodes() -> None:
    a = messages("r0", "ea", 6, terminated=True)
    b = messages("r1", "eb", 3, terminated=False, version=7)
    order = [a[0], b[0], a[1], a[2], b[1], b[2], a[3], b[3], a[4], a[5], a[6]]
    assembler = EpisodeAssembler()
    transitions, stats = feed(assembler, order)
    by_episode = {e: [t for t in transitions if t.episode_id == e] for e in ("ea", "eb")}
    assert [t.step for t in by_episode["ea"]] == list(range(6))
    assert [t.step for t in by_episode["eb"]] == list(range(3))
    for t in transitions:
        assert t.next_obs["state"][0] == t.obs["state"][0] + 1
    assert [s.episode_id for s in stats] == ["eb", "ea"] and stats[0].policy_version == 7
    assert assembler.open_episodes == 0 and assembler.dropped == 0 and assembler.transitions == 9


def test_missing_steps_drop_only_the_spanning_transitions() -> None:
    records = messages("r0", "e0", 8, terminated=True)
    del records[3]  # step 3 lost: transitions 2 (needs obs 3) and 3 (obs 3 itself) are gone
    assembler = EpisodeAssembler()
    transitions, stats = feed(assembler, records)
    assert [t.step for t in transitions] == [0, 1, 4, 5, 6, 7]
    assert assembler.dropped == 1 and stats[0].missing_steps == 1 and stats[0].length == 7


def test_lost_final_message_is_abandoned_when_the_robot_starts_again() -> None:
    first = messages("r0", "e0", 3, terminated=True)[:-1]
    assembler = EpisodeAssembler()
    transitions, stats = feed(assembler, first + messages("r0", "e1", 2, terminated=True))
    assert [t.episode_id for t in transitions] == ["e0", "e0", "e1", "e1"]
    assert [s.episode_id for s in stats] == ["e1"]
    assert assembler.dropped == 1 and assembler.open_episodes == 0


def test_too_many_open_episodes_evicts_the_oldest() -> None:
    assembler = EpisodeAssembler(max_open_episodes=2)
    for i in range(3):
        assembler.add(messages(f"r{i}", f"e{i}", 2, terminated=True)[0])
    assert assembler.open_episodes == 2 and assembler.dropped == 1


def test_a_replayed_history_is_used_once() -> None:
    assembler = EpisodeAssembler()
    a = messages("r0", "a", 6, terminated=True)
    b = messages("r1", "b", 8, terminated=False)
    first, _ = feed(assembler, a + b[:4])
    assert len(first) == 6 + 3
    again, stats = feed(assembler, a + b[:4])  # everything delivered twice
    assert again == [] and stats == [] and assembler.duplicates == 11
    rest, (done,) = feed(assembler, b[3:])  # overlapping one message, then the rest
    assert [t.step for t in rest] == [3, 4, 5, 6, 7] and done.episode_id == "b"
    assert assembler.dropped == 0


def test_after_a_resume_the_replay_adds_only_what_the_checkpoint_lacks() -> None:
    before = EpisodeAssembler()
    a = messages("r0", "a", 6, terminated=True)
    b = messages("r1", "b", 8, terminated=False)
    checkpointed, _ = feed(before, a + b[:4])  # the checkpoint holds these transitions ...
    state = before.state()
    assert state == {"finished": ["a"], "open": {"b": 3}}

    resumed = EpisodeAssembler()  # ... a restarted learner resumes from it and hears the whole history again
    resumed.load_state(state)
    replayed, (done,) = feed(resumed, a + b)
    assert [t.step for t in replayed] == [3, 4, 5, 6, 7] and done.episode_id == "b"
    steps = sorted((t.episode_id, t.step) for t in checkpointed + replayed)
    assert steps == sorted({*steps}) and len(steps) == 6 + 8  # every transition once
    assert resumed.duplicates == 7 + 3 and resumed.dropped == 0
    assert replayed[0].obs["state"][0] == 3 and replayed[0].next_obs["state"][0] == 4


def test_takeovers_and_intervention_rate() -> None:
    _, (stats,) = feed(EpisodeAssembler(), messages("r0", "e0", 8, terminated=True, intervened={0, 2, 3, 7}))
    assert stats.intervened_steps == 4 and stats.takeovers == 3 and stats.intervention_rate == 0.5


def test_a_learned_reward_is_scored_against_the_ground_truth_frame_by_frame() -> None:
    """Frames with ground truth count toward the reward source's false positive / negative rates."""
    import dataclasses

    from user_robot.contracts import TRUTH_SOLVED, TRUTH_UNKNOWN, TRUTH_UNSOLVED

    records = messages("r0", "e0", 5, terminated=True)
    # frame:     0      1     2     3     4     5 (final)
    solved = [False, True, False, False, True, True]
    truth = [TRUTH_UNSOLVED, TRUTH_UNSOLVED, TRUTH_SOLVED, TRUTH_UNKNOWN, TRUTH_SOLVED, TRUTH_SOLVED]
    records = [dataclasses.replace(r, solved=s, truth=t) for r, s, t in zip(records, solved, truth, strict=True)]
    _, (stats,) = feed(EpisodeAssembler(), records)
    assert stats.reward_confusion == (2, 1, 1, 1)  # tp (4, 5), fp (1), tn (0), fn (2); frame 3 has no truth
    assert stats.false_positive_rate == 0.5 and stats.false_negative_rate == 1 / 3
    assert stats.truth == TRUTH_SOLVED
    _, (real,) = feed(EpisodeAssembler(), messages("r0", "e1", 3, terminated=True))
    assert real.false_positive_rate is None and real.false_negative_rate is None  # a real cell: nothing to score
