"""The learned reward through the real graph: a classifier trained on recorded sim frames ends episodes.

Two scripted-expert episodes are recorded with camera images, a classifier is trained on them with
``user-rl reward train``, and the sim robot side runs peg insertion with ``reward.source:
classifier`` (hold 3 steps): every Transition says its reward came from the classifier, carries
the classifier's verdict on its frame and the sim cell's ground truth beside it; rewards follow the
verdicts and an episode ends exactly when the verdict has held for 3 frames. A success label given
through the teleop ``label`` service early in an episode ends that episode on the frame it was
given for, recorded as solved although the ground truth says not (and before the classifier
could have ended it). A model for another task or
image size is refused before any node starts.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading

import pytest

from user_learner.cli import main as cli
from user_learner.cli.collect import record_demos
from user_learner.cli.sim import run_episodes
from user_learner.graph import build_graph
from user_policies.success_classifier import ClassifierSpec, SuccessClassifier, save_classifier
from user_robot.config_loader import CONFIG_DIR_ENV, UsageError, write_config_copy
from user_robot.contracts import END_SUCCESS, REWARD_CLASSIFIER, TRUTH_SOLVED, TRUTH_UNSOLVED

TASK = "peg_insertion"
HOLD = 3


def runs_of_solved(flags: list[bool]) -> list[int]:
    """Indices where a streak of HOLD solved frames completes."""
    out, streak = [], 0
    for i, flag in enumerate(flags):
        streak = streak + 1 if flag else 0
        if streak >= HOLD:
            out.append(i)
    return out


def test_classifier_reward_ends_episodes_on_held_verdicts_and_labels_reach_their_frame(tmp_path, monkeypatch):
    from user_interfaces.msg import Transition
    from user_interfaces.srv import LabelEpisode
    from user_robot.nodes.qos import TRANSITIONS

    recording = write_config_copy(tmp_path / "rec_config", {f"tasks/{TASK}": {"reward.success_hold_steps": 4}})
    monkeypatch.setenv(CONFIG_DIR_ENV, str(recording))
    _, code = record_demos(TASK, "sim", 2, tmp_path / "frames", obs="pixels", real_time_factor=4.0,
                           log_dir=tmp_path / "logs", timeout=240.0)
    assert code == 0
    model = tmp_path / "model"
    assert cli.main(["reward", "train", "--task", TASK, "--bags", str(tmp_path / "frames"), "--out", str(model),
                     "--epochs", "4", "--val-fraction", "0"]) == 0

    config = write_config_copy(tmp_path / "config", {f"tasks/{TASK}": {
        "reward.source": "classifier", "reward.classifier": str(model), "reward.success_hold_steps": HOLD}})
    monkeypatch.setenv(CONFIG_DIR_ENV, str(config))
    messages: list = []
    lock = threading.Lock()
    label_sent: list[int] = []  # the step the episode had reached when the label was asked for

    def setup(node) -> None:
        client = node.create_client(LabelEpisode, "/robot_0/label")

        def on_transition(msg) -> None:
            with lock:
                messages.append(msg)
                episodes = list(dict.fromkeys(m.episode_id for m in messages))
            # the third episode from step 3 on (long before the expert could insert the peg), asked again at
            # every step until it ends: a request made before the service was discovered can be lost
            third = len(episodes) == 3 and msg.episode_id == episodes[2]
            if third and msg.step >= 3 and not (msg.terminated or msg.truncated) and client.service_is_ready():
                label_sent.append(msg.step)
                client.call_async(LabelEpisode.Request(label=LabelEpisode.Request.LABEL_SUCCESS))

        node.create_subscription(Transition, "/user/transitions", on_transition, TRANSITIONS)

    def finished(_log) -> bool:  # every episode's final message is in (it may follow its result)
        with lock:
            return sum(m.terminated or m.truncated for m in messages) >= 3

    log, code = run_episodes(TASK, "sim", 3, expert="always", real_time_factor=4.0, log_dir=tmp_path / "run",
                             timeout=300.0, setup_monitor=setup, done=finished)
    assert code == 0, log.summary()
    assert "ground_truth_success=" in log.summary()
    by_episode: dict[str, list] = {}
    for m in messages:
        by_episode.setdefault(m.episode_id, []).append(m)
    assert len(by_episode) >= 3 and label_sent
    for number, (episode_id, steps) in enumerate(list(by_episode.items())[:3]):
        steps.sort(key=lambda m: m.step)
        assert steps[-1].terminated or steps[-1].truncated, episode_id
        assert all(m.reward_source == REWARD_CLASSIFIER for m in steps)
        assert all(m.truth in (TRUTH_SOLVED, TRUTH_UNSOLVED) for m in steps)  # the ground truth, logged beside
        flags = [bool(m.solved) for m in steps]
        for m, following in itertools.pairwise(steps):  # the reward of an action is the next frame's verdict
            assert m.reward == (1.0 if following.solved else 0.0), (episode_id, m.step)
        final = steps[-1]
        completed = runs_of_solved(flags)
        if number == 2:  # labelled: ended by the person's word on the frame it reached, not by the classifier
            assert final.end_reason == END_SUCCESS and final.solved and final.truth == TRUTH_UNSOLVED, final.step
            assert not runs_of_solved(flags[:-1]), flags
            continue
        if final.end_reason == END_SUCCESS:  # ends exactly when the verdict has held HOLD frames
            assert completed == [len(flags) - 1], flags
        else:
            assert not completed, flags
    assert any(m.truth == TRUTH_SOLVED for m in messages)  # the expert did insert the peg

    other = ClassifierSpec("pick_and_place", ("wrist", "front"), (128, 128))
    save_classifier(SuccessClassifier(dataclasses.replace(other, width=4)), tmp_path / "other")
    with pytest.raises(UsageError, match="trained for task 'pick_and_place'"):
        build_graph(TASK, side="robot", reward_classifier=str(tmp_path / "other"))
    small = dataclasses.replace(other, task=TASK, image_size=(64, 64), width=4)
    save_classifier(SuccessClassifier(small), tmp_path / "small")
    with pytest.raises(UsageError, match="reads 64x64 images, the task gives 128x128"):
        build_graph(TASK, side="robot", reward_classifier=str(tmp_path / "small"))
