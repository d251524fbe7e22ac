"""Success classifiers from labelled frames of real recordings: labels, training, threshold, the CLI."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from user_learner.bags.recording import open_recording
from user_learner.bags.transition_bag import (
    TRANSITION,
    Episode,
    Step,
    TransitionBagWriter,
    read_episodes,
    transition_message,
)
from user_learner.bags.typestore import interface_msg_dir
from user_learner.cli import main as cli
from user_learner.reward_training import (
    Confusion,
    FrameSet,
    choose_threshold,
    labelled_frames,
    read_labels,
    success_steps,
    train_classifier,
    write_labels,
)
from user_policies.success_classifier import ClassifierSpec, load_classifier
from user_robot.contracts import (
    END_SUCCESS,
    END_TIME_LIMIT,
    TRANSITIONS_TOPIC,
    TRUTH_SOLVED,
    TRUTH_UNKNOWN,
    TRUTH_UNSOLVED,
)

CAMERAS = ("wrist", "front")
STEPS = 12
SUCCESS_FROM = 8  # frames 8..12 show the part home


def frame(step: int, rng: np.random.Generator, colour: int) -> np.ndarray:
    """Noise, and a bright square that moves down with the step: near 'home' at the end."""
    img = rng.integers(0, 60, (32, 32, 3), dtype=np.uint8)
    row = min(2 + 2 * step, 24)
    col = int(rng.integers(10, 16))
    img[row:row + 6, col:col + 6, colour] = 250
    return img


def episode(index: int, seed: int, success: bool = True) -> Episode:
    rng = np.random.default_rng(seed)
    steps = []
    for s in range(STEPS + 1):
        final = s == STEPS
        solved = success and s >= SUCCESS_FROM
        steps.append(Step(
            stamp_ns=(index * 100 + s) * 10**8, step=s, state=np.zeros(3, np.float32),
            images={"wrist": frame(s if success else min(s, 5), rng, 0), "front": frame(s if success else 3, rng, 1)},
            action=np.zeros(0 if final else 6, np.float32), reward=float(solved and not final),
            terminated=final and success, truncated=final and not success,
            end_reason=(END_SUCCESS if success else END_TIME_LIMIT) if final else 0,
            solved=solved, truth=TRUTH_SOLVED if solved else TRUTH_UNSOLVED,
        ))
    return Episode("robot_0", "franka_panda", "peg_insertion", f"ep{index:03d}", steps)


def record(path, episodes: list[Episode]):
    with TransitionBagWriter(path) as writer:
        for e in episodes:
            writer.write_episode(e)
    return path


def test_frames_carry_the_recordings_verdict_and_a_persons_labels_win(tmp_path) -> None:
    bag = record(tmp_path / "bag", [episode(0, 0), episode(1, 1, success=False)])
    episodes = list(read_episodes(bag))
    assert [s.solved for s in episodes[0].steps] == [s >= SUCCESS_FROM for s in range(STEPS + 1)]
    assert episodes[0].steps[3].truth == TRUTH_UNSOLVED and episodes[0].steps[9].truth == TRUTH_SOLVED
    frames = labelled_frames(episodes, CAMERAS)
    assert len(frames) == 2 * (STEPS + 1) and frames.positives == STEPS + 1 - SUCCESS_FROM
    assert frames.images["front"].shape == (2 * (STEPS + 1), 32, 32, 3)
    write_labels(bag, {"ep000": {11, 12}, "ep001": set()})
    labels = read_labels(bag)
    assert labels == {"ep000": {11, 12}, "ep001": set()}
    assert success_steps(episodes[0], labels) == {11, 12}
    assert labelled_frames(episodes, CAMERAS, labels).positives == 2
    with pytest.raises(ValueError, match="has no side image"):
        labelled_frames(episodes, ("wrist", "side"))
    # A learned reward's verdicts against the sim's ground truth: the truth labels (a false positive is a
    # negative); without ground truth (a real cell) the verdict does.
    judged = episode(2, 2)
    judged.steps[3].solved = True  # the classifier's false positive
    judged.steps[10].solved = False  # its miss
    assert success_steps(judged) == set(range(SUCCESS_FROM, STEPS + 1))
    for step in judged.steps:
        step.truth = TRUTH_UNKNOWN
    assert success_steps(judged) == {3} | set(range(SUCCESS_FROM, STEPS + 1)) - {10}
    (bag / "success_labels.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"success_labels\.json: expected"):
        read_labels(bag)


@pytest.mark.parametrize("cut", [False, True], ids=["intact", "writer_died"])
def test_a_recording_made_before_the_verdict_field_existed_still_labels_its_final_frame(tmp_path, cut) -> None:
    """Read with the definitions it was written with (also when its index is lost and the MCAP is scanned):
    the final frame of a successful episode is a success."""
    text = (interface_msg_dir() / "Transition.msg").read_text()
    old_text = text[: text.index("# --- success as judged")]
    store = get_typestore(Stores.ROS2_KILTED)
    store.register(get_types_from_msg(old_text, TRANSITION))
    new = episode(0, 0)
    writer = Writer(tmp_path / "old", version=9, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    conn = writer.add_connection(TRANSITIONS_TOPIC, TRANSITION, typestore=store)
    for step in new.steps:
        current = transition_message(new, step)
        msg = store.types[TRANSITION](**{f: getattr(current, f) for f in store.types[TRANSITION].__dataclass_fields__})
        writer.write(conn, step.stamp_ns, store.serialize_cdr(msg, TRANSITION))
    writer.close()
    if cut:  # the MCAP's closing magic lost: no index, the records are scanned
        (mcap,) = (tmp_path / "old").glob("*.mcap")
        mcap.write_bytes(mcap.read_bytes()[:-8])
        assert open_recording(tmp_path / "old").damage
    (old,) = read_episodes(tmp_path / "old")
    assert [s.solved for s in old.steps] == [False] * (STEPS + 1)
    assert success_steps(old) == {STEPS}


def test_threshold_reaches_the_target_precision_with_the_most_recall() -> None:
    probs = np.array([0.1, 0.2, 0.35, 0.4, 0.6, 0.7, 0.8, 0.9])
    labels = np.array([0, 0, 1, 0, 1, 1, 1, 1], bool)
    t = choose_threshold(probs, labels, 0.97)
    assert t == pytest.approx(0.6)
    c = Confusion.of(probs, labels, t)
    assert (c.tp, c.fp, c.tn, c.fn) == (4, 0, 3, 1) and c.precision == 1.0 and c.recall == 0.8
    assert choose_threshold(probs, labels, 0.8) == pytest.approx(0.35)  # 5 of 6 predicted: 0.83 precision
    assert c.line() == "precision=1.000 recall=0.800 tp=4 fp=0 tn=3 fn=1"
    # no success frame among the held-out ones: nothing to measure recall on, and precision only from false alarms
    quiet = Confusion.of(np.array([0.1, 0.2]), np.array([0, 0], bool), 0.5)
    assert quiet.measured() == {"precision": None, "recall": None}
    assert quiet.line() == "precision=- recall=- tp=0 fp=0 tn=2 fn=0 (no success frame)"
    assert Confusion.of(np.array([0.1, 0.9]), np.array([0, 0], bool), 0.5).line().startswith("precision=0.000 recall=-")


def test_training_separates_held_out_episodes(tmp_path) -> None:
    train_eps = [episode(i, i) for i in range(10)] + [episode(10 + i, 10 + i, success=False) for i in range(3)]
    val_eps = [episode(20 + i, 20 + i) for i in range(4)] + [episode(30, 30, success=False)]
    train, val = labelled_frames(train_eps, CAMERAS), labelled_frames(val_eps, CAMERAS)
    spec = ClassifierSpec("peg_insertion", CAMERAS, (32, 32), width=8)
    result = train_classifier(spec, train, val, epochs=12, batch=32, lr=2e-3, seed=0)
    held = result.held_out
    assert held.precision >= 0.95 and held.recall >= 0.9, held.line()
    assert result.model.spec.threshold == result.threshold
    empty = FrameSet({c: v[:3] for c, v in train.images.items()}, train.labels[:3], train.episodes[:3])
    with pytest.raises(ValueError, match="need both classes"):
        train_classifier(spec, empty, None, epochs=1)


def test_the_reward_cli_labels_trains_and_evaluates(tmp_path, monkeypatch, capsys) -> None:
    bag = record(tmp_path / "train", [episode(i, i) for i in range(8)] + [episode(9, 9, success=False)])
    held = record(tmp_path / "held", [episode(40 + i, 40 + i) for i in range(3)])
    # label: Enter takes the proposal, ranges replace it, a bad range is asked again, q saves and stops
    monkeypatch.setattr("sys.stdin", io.StringIO("\n9-12\n99\nnine\n12-9\n\nq\n"))
    assert cli.main(["reward", "label", "--bag", str(bag), "--frames-dir", str(tmp_path / "png")]) == 0
    out = capsys.readouterr().out
    assert "steps run from 0 to 12" in out and "labelled=3" in out
    assert "'nine': expected a step or a range of steps" in out and "12-9: a range goes from its first step" in out
    labels = json.loads((bag / "success_labels.json").read_text())
    assert labels == {"ep000": list(range(8, 13)), "ep001": [9, 10, 11, 12], "ep002": list(range(8, 13))}
    assert (tmp_path / "png" / "ep000" / "0012_front.png").is_file()
    model_dir = tmp_path / "model"
    args = ["reward", "train", "--task", "peg_insertion", "--bags", str(bag), "--out", str(model_dir),
            "--epochs", "10", "--batch", "32", "--lr", "2e-3", "--val-fraction", "0.25"]
    assert cli.main(args) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("reward train task=peg_insertion cameras=wrist,front image=32x32") and "threshold=" in line
    model = load_classifier(model_dir)
    assert model.spec.metrics["held_out_episodes"] == 2 and "precision" in model.spec.metrics
    assert cli.main(["reward", "eval", "--model", str(model_dir), "--bags", str(held)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "episodes=3 frames=39" in line and "precision=" in line
    assert cli.main(["reward", "train", "--task", "pick_and_place", "--bags", str(bag), "--out", str(model_dir)]) == 2
    assert "other tasks (peg_insertion) than pick_and_place" in capsys.readouterr().err
