"""Pretrain the pixel recipes' frozen ResNet-10 on the frames of our own recordings (pure; no ROS).

No pretrained weights can be fetched here, and a randomly drawn backbone sees little. Every recorded
observation pairs the cameras' images with the robot's state vector (TCP pose relative to the target,
gripper, ...), a label that costs nothing on a real cell too: the pixel policies' own encoder (its
backbone trainable, its per-camera spatial embeddings) and a linear head learn to predict (the
visible part of) that state from the images alone (standardised targets, mean squared error, DrQ
shift and brightness augmentation). Whole episodes are held out; the epoch with the lowest held-out
loss is kept. What comes out is the backbone's tensors, the safetensors file of :class:`ResNet10` keys that a recipe's
``policy.pretrained_encoder`` loads and freezes.

The held-out figure is R² (1 − the standardised loss): the share of the state's variance the images
explain, 0 for a backbone that sees nothing useful.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from user_learner.bags.transition_bag import Episode
from user_learner.reward_training import augment, labelled_frames
from user_policies.models.resnet10 import ObservationEncoder
from user_policies.policy_spec import PolicySpec


@dataclasses.dataclass
class StateFrames:
    """Per camera ``(N, H, W, 3)`` uint8 images and the ``(N, S)`` state recorded with them."""

    images: dict[str, np.ndarray]
    states: np.ndarray

    def __len__(self) -> int:
        return len(self.states)


def state_frames(
    episodes: Sequence[Episode], cameras: Sequence[str], columns: np.ndarray | None = None
) -> StateFrames:
    """Every observation of ``episodes`` with its state (the ``columns`` of it; None: all); a
    :class:`ValueError` names a camera not recorded."""
    frames = labelled_frames(episodes, cameras)
    states = np.stack([step.state for episode in episodes for step in episode.steps]).astype(np.float32)
    return StateFrames(frames.images, states if columns is None else states[:, columns])


class StateFromPixels(nn.Module):
    """The pixel policies' own encoder (its backbone trainable) on the cameras alone → a linear head →
    the standardised state."""

    def __init__(self, cameras: Sequence[str], image_size: tuple[int, int], state_dim: int) -> None:
        super().__init__()
        spec = PolicySpec(state_dim=1, action_dim=1, kind="cnn", cameras=tuple(cameras), image_size=image_size,
                          freeze_encoder=False)
        self.encoder = ObservationEncoder(spec)
        self.cameras = self.encoder.cameras
        self.head = nn.Linear(spec.image_latent_dim * len(self.cameras), state_dim)

    def forward(self, images: dict[str, torch.Tensor]) -> torch.Tensor:
        """uint8 NHWC images per camera → (N, state_dim)."""
        maps = self.encoder.backbone_features(images).chunk(len(self.cameras))
        return self.head(torch.cat([self.encoder.heads[c](m) for c, m in zip(self.cameras, maps, strict=True)], -1))


@dataclasses.dataclass(frozen=True)
class EncoderResult:
    """The backbone's tensors and the figures of the kept epoch."""

    backbone: dict[str, torch.Tensor]
    train_loss: float  # standardised MSE on the training frames (augmented), last epoch
    held_out_r2: float | None  # 1 - standardised MSE on the held-out frames (None: no held-out episode)
    epoch: int  # the epoch kept (1-based)


def _loss(model: StateFromPixels, frames: StateFrames, mean: np.ndarray, std: np.ndarray, batch: int) -> float:
    model.eval()
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(frames), batch):
            images = {c: torch.from_numpy(frames.images[c][i:i + batch]) for c in model.cameras}
            target = torch.from_numpy((frames.states[i:i + batch] - mean) / std)
            total += F.mse_loss(model(images), target, reduction="sum").item()
    return total / (len(frames) * frames.states.shape[1])


def pretrain_encoder(
    train: StateFrames,
    val: StateFrames | None,
    cameras: Sequence[str],
    *,
    epochs: int = 10,
    batch: int = 32,
    lr: float = 3e-4,
    seed: int = 0,
    advance: Callable[[], None] = lambda: None,
) -> EncoderResult:
    """Train :class:`StateFromPixels` on ``train`` (see the module doc); keep the best held-out epoch."""
    if len(train) < 2:
        raise ValueError(f"need at least 2 training frames, got {len(train)}")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    size = tuple(int(v) for v in train.images[cameras[0]].shape[1:3])
    model = StateFromPixels(cameras, size, train.states.shape[1])
    mean = train.states.mean(0)
    std = np.maximum(train.states.std(0), 1e-3)  # (a constant state dimension is not a target)
    targets = torch.from_numpy((train.states - mean) / std)
    optim = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    best: tuple[float, int, dict[str, torch.Tensor]] = (math.inf, 0, {})
    train_loss = math.nan
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(train), generator=gen)
        losses = []
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            images = {c: augment(torch.from_numpy(train.images[c][idx.numpy()]), gen) for c in cameras}
            loss = F.mse_loss(model(images), targets[idx])
            optim.zero_grad()
            loss.backward()
            optim.step()
            losses.append(loss.item())
        train_loss = float(np.mean(losses))
        score = _loss(model, val, mean, std, 2 * batch) if val is not None and len(val) else train_loss
        if score < best[0]:
            best = (score, epoch, {k: v.detach().clone() for k, v in model.encoder.backbone.state_dict().items()})
        advance()
    held = 1.0 - best[0] if val is not None and len(val) else None
    return EncoderResult(best[2], train_loss, held, best[1])
