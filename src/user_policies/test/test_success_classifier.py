"""Success classifiers: the model directory, refusals naming what differs, and the off-tick judge."""

from __future__ import annotations

import dataclasses
import json
import time

import numpy as np
import pytest
import torch

from user_policies.classifier_reward import ClassifierReward
from user_policies.success_classifier import (
    SPEC_FILE,
    WEIGHTS_FILE,
    ClassifierSpec,
    SuccessClassifier,
    check_classifier,
    load_classifier,
    save_classifier,
)

SPEC = ClassifierSpec("peg_insertion", ("wrist", "front"), (32, 32), width=8, threshold=0.7)


def frames(seed: int, n: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {c: rng.integers(0, 255, (n, 32, 32, 3), dtype=np.uint8) for c in SPEC.cameras}


@pytest.mark.parametrize("encoder", ["conv", "resnet10"])
def test_saved_model_loads_with_its_spec_and_gives_the_same_probabilities(tmp_path, encoder) -> None:
    torch.manual_seed(0)
    spec = dataclasses.replace(SPEC, encoder=encoder, freeze_encoder=encoder == "resnet10", metrics={"precision": 0.99})
    model = SuccessClassifier(spec)
    if spec.freeze_encoder:
        assert not any(p.requires_grad for p in model.encoders.parameters())
    save_classifier(model, tmp_path / "m")
    loaded = load_classifier(tmp_path / "m")
    assert loaded.spec == spec
    batch = {c: torch.from_numpy(v) for c, v in frames(1, 4).items()}
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(batch), model(batch))
    one = {c: v[0] for c, v in frames(1).items()}
    assert 0.0 <= loaded.probability(one) <= 1.0


def test_a_broken_model_directory_names_the_file_and_key(tmp_path) -> None:
    save_classifier(SuccessClassifier(SPEC), tmp_path / "m")
    spec_file = tmp_path / "m" / SPEC_FILE
    data = json.loads(spec_file.read_text())
    spec_file.write_text(json.dumps({**data, "colour": 1}))
    with pytest.raises(ValueError, match=r"classifier\.json: unknown key\(s\) colour"):
        load_classifier(tmp_path / "m")
    del data["cameras"]
    spec_file.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="required key 'cameras' is missing"):
        load_classifier(tmp_path / "m")
    (tmp_path / "m" / WEIGHTS_FILE).unlink()
    with pytest.raises(ValueError, match=r"classifier\.safetensors: no such file"):
        load_classifier(tmp_path / "m")
    other = dataclasses.replace(SPEC, width=16)
    save_classifier(SuccessClassifier(SPEC), tmp_path / "n")
    (tmp_path / "n" / SPEC_FILE).write_text(other.to_json())
    with pytest.raises(ValueError, match="does not match"):
        load_classifier(tmp_path / "n")


def test_a_model_for_another_task_cameras_or_size_is_refused_naming_what_differs() -> None:
    check_classifier(SPEC, "peg_insertion", ("wrist", "front", "side"), (32, 32))  # a subset of cameras is fine
    with pytest.raises(ValueError, match="trained for task 'peg_insertion', this is 'pick_and_place'"):
        check_classifier(SPEC, "pick_and_place", SPEC.cameras, (32, 32))
    with pytest.raises(ValueError, match=r"reads camera\(s\) front, which the task does not observe \(wrist\)"):
        check_classifier(SPEC, "peg_insertion", ("wrist",), (32, 32))
    with pytest.raises(ValueError, match="reads 32x32 images, the task gives 128x128"):
        check_classifier(SPEC, "peg_insertion", SPEC.cameras, (128, 128))


class Cameras:
    """The newest frame per camera with a stamp, as CameraSet gives them (each new stamp is one arrival)."""

    def __init__(self) -> None:
        self.stamp = -1.0
        self.images = {c: np.zeros((32, 32, 3), np.uint8) for c in SPEC.cameras}
        self.waits = 0

    def latest(self) -> dict[str, tuple[np.ndarray, float]]:
        return {} if self.stamp < 0 else {c: (img, self.stamp) for c, img in self.images.items()}

    def wait_newer(self, seen: int, timeout_s: float) -> int:
        self.waits += 1
        arrivals = max(0, int(self.stamp))
        if arrivals <= seen:
            time.sleep(timeout_s)
        return arrivals


class Fixed(SuccessClassifier):
    """The real module with its verdict set from the mean pixel, counting its calls."""

    calls = 0

    def forward(self, images):
        Fixed.calls += 1
        mean = images["wrist"].float().mean(dim=(1, 2, 3)) / 255.0
        return torch.logit(mean.clamp(1e-4, 1 - 1e-4))


def test_the_judge_runs_once_per_new_frame_set_and_its_verdict_ages() -> None:
    cams = Cameras()
    judge = ClassifierReward(Fixed(SPEC), SPEC.threshold, cams)
    assert judge.judge_once(-1.0) == -1.0 and not judge.solved(0.0, 1.0)  # no frames yet
    cams.stamp = 5.0
    cams.images = {c: np.full((32, 32, 3), 204, np.uint8) for c in SPEC.cameras}  # P = 0.8 >= 0.7
    before = Fixed.calls
    assert judge.judge_once(-1.0) == 5.0 and judge.judge_once(5.0) == 5.0  # the same frames: judged once
    assert Fixed.calls == before + 1
    assert judge.solved(5.2, 0.25) and not judge.solved(5.3, 0.25)  # too old a verdict is no success
    cams.stamp, cams.images = 6.0, {c: np.full((32, 32, 3), 153, np.uint8) for c in SPEC.cameras}  # P = 0.6
    judge.start()
    try:
        deadline = time.monotonic() + 5.0
        while judge.latest()[1] != 6.0 and time.monotonic() < deadline:
            time.sleep(0.01)
        probability, stamp, seconds = judge.latest()
        assert stamp == 6.0 and abs(probability - 0.6) < 0.01 and seconds >= 0.0
        assert not judge.solved(6.0, 0.25)
        calls, waits = Fixed.calls, cams.waits
        time.sleep(0.5)  # no new frame: the thread sleeps in wait_newer, it does not spin or judge again
        assert Fixed.calls == calls and cams.waits - waits <= 7
    finally:
        judge.stop()
