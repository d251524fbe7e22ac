"""Encoder pretraining on recorded frames: the backbone learns what the images say about the state."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from user_learner.bags.transition_bag import Episode, Step
from user_learner.encoder_pretraining import pretrain_encoder, state_frames
from user_policies.models.resnet10 import ResNet10

torch.set_num_threads(1)


def square_episodes(count: int, length: int, seed: int) -> list[Episode]:
    """Frames with a bright square; the state is where it is (as a TCP pose is where the arm is)."""
    rng = np.random.default_rng(seed)
    episodes = []
    for e in range(count):
        steps = []
        for t in range(length):
            top, left = rng.integers(0, 24, 2)
            wrist = rng.integers(0, 40, (32, 32, 3), dtype=np.uint8)
            wrist[top:top + 8, left:left + 8] = 255
            front = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)  # noise: nothing to learn there
            state = np.array([top / 24, left / 24, 0.5], np.float32)  # (a constant dimension too)
            steps.append(Step(t, t, state, {"wrist": wrist, "front": front}, np.zeros(2, np.float32)))
        episodes.append(Episode("robot_0", "franka_panda", "peg_insertion", f"ep{seed}-{e}", steps))
    return episodes


def test_the_backbone_learns_to_see_the_state_and_only_the_backbone_comes_out() -> None:
    train = state_frames(square_episodes(6, 40, 0), ("wrist", "front"))
    val = state_frames(square_episodes(2, 40, 1), ("wrist", "front"))
    assert len(train) == 240 and train.states.shape == (240, 3) and train.images["wrist"].shape == (240, 32, 32, 3)
    result = pretrain_encoder(train, val, ("wrist", "front"), epochs=6, batch=16, lr=1e-3)
    assert result.held_out_r2 is not None and result.held_out_r2 > 0.7, result  # the images explain the state
    fresh = ResNet10().state_dict()
    assert result.backbone.keys() == fresh.keys()  # ResNet10 keys: what pretrained_encoder loads
    assert any(not torch.equal(result.backbone[k], fresh[k]) for k in fresh if "weight" in k)
    assert 1 <= result.epoch <= 6


def test_a_recording_without_the_cameras_is_named() -> None:
    episodes = square_episodes(1, 3, 0)
    with pytest.raises(ValueError, match="has no side image"):
        state_frames(episodes, ("wrist", "side"))
    with pytest.raises(ValueError, match="at least 2 training frames"):
        pretrain_encoder(state_frames(square_episodes(1, 1, 0), ("wrist",)), None, ("wrist",), epochs=1)
