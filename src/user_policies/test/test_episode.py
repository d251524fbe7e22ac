"""The episode state machine: Transition protocol, reward timing, ends, interventions, NaN actions."""

from __future__ import annotations

import numpy as np
import pytest

from user_policies.episode import Episode, Observation
from user_policies.reward import LABEL_FAILURE, LABEL_SUCCESS, RewardTracker, in_success_region, within_pose_gate
from user_robot.contracts import END_FAILURE, END_STALE_INPUT, END_SUCCESS, END_TIME_LIMIT
from user_robot.pose_math import quat_from_rpy
from user_robot.task_config import load_task

TASK = load_task("peg_insertion")


def obs(i: int, solved: bool = False) -> Observation:
    return Observation(state=np.full(3, i, np.float32), images={}, xyz=np.zeros(3), solved=solved, stamp=float(i))


def policy(o: Observation) -> tuple[np.ndarray, int]:
    return np.full(6, 0.5, np.float32), 3


def run(ep: Episode, observations: list[Observation | None], **kw) -> list:
    records = []
    for o in observations:
        result = ep.tick(o, policy, **kw)
        records += result.records
        if result.ended:
            break
    return records


def test_success_ends_with_final_observation() -> None:
    ep = Episode(RewardTracker(TASK), 6, max_steps=100)
    records = run(ep, [obs(0), obs(1), obs(2, solved=True), obs(3)])
    assert [r.step for r in records] == [0, 1, 2]
    assert [r.reward for r in records[:2]] == [0.0, 1.0]  # reward of action 1 is seen at obs 2
    final = records[-1]
    assert final.terminated and not final.truncated and final.end_reason == END_SUCCESS
    assert final.action.size == 0 and final.obs.state[0] == 2
    assert ep.summary.success and ep.summary.length == 2 and ep.summary.policy_versions == {3}


def test_time_limit_truncates() -> None:
    ep = Episode(RewardTracker(TASK), 6, max_steps=3)
    records = run(ep, [obs(i) for i in range(10)])
    assert [r.step for r in records] == [0, 1, 2, 3]
    assert records[-1].truncated and records[-1].end_reason == END_TIME_LIMIT
    assert ep.summary.length == 3


def test_intervention_overrides_and_is_flagged() -> None:
    ep = Episode(RewardTracker(TASK), 6, max_steps=5)
    human = np.array([0, 0, -1, 0, 0, 0], np.float32)
    first = ep.tick(obs(0), policy, intervention=human)
    np.testing.assert_array_equal(first.action, human)
    records = ep.tick(obs(1), policy).records
    assert records[0].intervened and records[0].policy_version == 0
    np.testing.assert_array_equal(records[0].intervention_action, human)
    assert ep.summary.intervened_steps == 1


def test_nonfinite_policy_action_holds() -> None:
    ep = Episode(RewardTracker(TASK), 6, max_steps=5)
    result = ep.tick(obs(0), lambda o: (np.array([np.nan, 1, 1, 1, 1, np.inf]), 1))
    np.testing.assert_array_equal(result.action, np.zeros(6))
    assert ep.summary.nonfinite_actions == 1


def test_stale_input_truncates_without_the_unobserved_action() -> None:
    ep = Episode(RewardTracker(TASK), 6, max_steps=50)
    records = run(ep, [obs(0), obs(1), obs(2), None])
    assert [r.step for r in records] == [0, 1, 2]
    assert records[-1].truncated and records[-1].end_reason == END_STALE_INPUT
    assert records[-1].obs.state[0] == 2


def test_failure_label_terminates() -> None:
    ep = Episode(RewardTracker(TASK), 6, max_steps=50)
    ep.tick(obs(0), policy)
    records = ep.tick(obs(1), policy, label=LABEL_FAILURE).records
    assert records[-1].terminated and records[-1].end_reason == END_FAILURE and records[0].reward == 0.0


def test_success_needs_hold_steps_consecutive_solved_frames() -> None:
    """success_hold_steps=3: a solved streak broken before 3 goes on; three in a row end it."""
    import dataclasses

    task = dataclasses.replace(TASK, reward=dataclasses.replace(TASK.reward, success_hold_steps=3))
    ep = Episode(RewardTracker(task), 6, max_steps=50)
    pattern = [False, True, True, False, True, True, True, False]
    records = run(ep, [obs(i, solved=s) for i, s in enumerate(pattern)])
    assert records[-1].end_reason == END_SUCCESS and records[-1].obs.state[0] == 6
    assert [r.obs.solved for r in records] == pattern[:7]  # every frame carries its verdict
    assert [r.reward for r in records[:-1]] == [1.0, 1.0, 0.0, 1.0, 1.0, 1.0]


def test_a_success_label_marks_the_frame_it_was_given_for() -> None:
    """A person's success label (label service, SpaceMouse button, key) ends the episode on that frame,
    which is then recorded as solved although the task's own check says no."""
    ep = Episode(RewardTracker(TASK), 6, max_steps=50)
    ep.tick(obs(0), policy)
    ep.tick(obs(1), policy)
    records = ep.tick(obs(2), policy, label=LABEL_SUCCESS).records
    final = records[-1]
    assert final.end_reason == END_SUCCESS and final.obs.state[0] == 2 and final.obs.solved
    assert not records[0].obs.solved and records[0].reward == 1.0


def test_pose_gate() -> None:
    import dataclasses

    target = np.asarray(TASK.target.xyz)
    assert within_pose_gate(TASK, target + 1.0)  # 0 = off
    gated = dataclasses.replace(TASK, reward=dataclasses.replace(TASK.reward, pose_gate=0.01))
    assert within_pose_gate(gated, target + np.array([0.0, 0.0, 0.009]))
    assert not within_pose_gate(gated, target + np.array([0.0, 0.0, 0.011]))


def test_pose_region() -> None:
    target = np.asarray(TASK.target.xyz)
    down = quat_from_rpy(TASK.target.rpy)
    assert in_success_region(TASK, target + np.array([0.002, 0, 0]), down)
    assert not in_success_region(TASK, target + np.array([0.02, 0, 0]), down)


class ChunkPolicy:
    """Returns 3-step chunks whose rows encode (call, row); each call is a newer weights version."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, o: Observation) -> tuple[np.ndarray, int]:
        self.calls += 1
        chunk = np.zeros((3, 6), np.float32)
        chunk[:, 0] = self.calls / 10
        chunk[:, 1] = np.arange(3) / 10
        return chunk, 100 + self.calls


def test_chunks_execute_in_order_with_the_version_that_produced_each_step() -> None:
    ep, chunks = Episode(RewardTracker(TASK), 6, max_steps=20), ChunkPolicy()
    executed = [ep.tick(obs(i), chunks) for i in range(8)]
    assert chunks.calls == 3  # steps 0-2, 3-5, 6-7: a new chunk only when the last one is used up
    assert [(round(r.action[0] * 10), round(r.action[1] * 10)) for r in executed] == [
        (1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (2, 2), (3, 0), (3, 1)
    ]
    assert [r.policy_version for r in executed] == [101] * 3 + [102] * 3 + [103] * 2
    records = ep.tick(obs(8), chunks).records
    recorded = [r for r in records if r.action.size]
    assert [r.policy_version for r in recorded] == [103]
    assert ep.summary.policy_versions == {101, 102, 103}


def test_an_intervention_discards_the_rest_of_the_chunk() -> None:
    ep, chunks = Episode(RewardTracker(TASK), 6, max_steps=20), ChunkPolicy()
    ep.tick(obs(0), chunks)
    human = np.full(6, -0.5, np.float32)
    assert ep.tick(obs(1), chunks, intervention=human).intervened
    after = ep.tick(obs(2), chunks)
    assert chunks.calls == 2 and after.policy_version == 102 and round(after.action[1] * 10) == 0


def test_malformed_chunks_are_refused() -> None:
    ep = Episode(RewardTracker(TASK), 6, max_steps=20)
    with pytest.raises(ValueError, match=r"the task expects \(H, 6\)"):
        ep.tick(obs(0), lambda o: (np.zeros((2, 5), np.float32), 1))
