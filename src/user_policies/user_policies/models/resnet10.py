"""Pixel observation encoder: ResNet-10-style backbone + per-camera spatial learned embedding (SERL recipe).

Per camera: uint8 HxWx3 → ImageNet-normalised float → ResNet-10 (GroupNorm, one basic block per stage,
64-128-256-512 channels, /32 spatially) → [1x1 conv to ``reduced_channels``] → spatial learned embedding
(``spatial_features`` per channel) → Linear → LayerNorm → tanh (``image_latent_dim``).
State: Linear → LayerNorm → tanh (``state_latent_dim``).
The backbone is shared across cameras (one batched pass); with ``freeze_encoder`` it takes no gradient
and runs without autograd. A pretrained backbone is a local safetensors file of :class:`ResNet10` keys.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from user_policies.policy_spec import PolicySpec

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
STAGE_CHANNELS = (64, 128, 256, 512)


FROZEN_BACKBONE_SEED = 0
"""Seed of a frozen backbone's random initialisation (without a pretrained file): every process that
builds the policy gets the same frozen tensors, so published weights leave them out."""


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(4, channels)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with GroupNorm and a (projected when needed) residual."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.norm1 = _norm(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.norm2 = _norm(out_ch)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), _norm(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual block output."""
        y = torch.relu(self.norm1(self.conv1(x)))
        return torch.relu(self.norm2(self.conv2(y)) + self.shortcut(x))


class ResNet10(nn.Module):
    """ResNet-10 feature extractor: (N, 3, H, W) normalised floats → (N, 512, ceil(H/32), ceil(W/32))."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), _norm(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        blocks, last = [], 64
        for i, ch in enumerate(STAGE_CHANNELS):
            blocks.append(BasicBlock(last, ch, 1 if i == 0 else 2))
            last = ch
        self.stages = nn.Sequential(*blocks)
        self.out_channels = last

    def draw_weights(self, seed: int) -> None:
        """Draw the convolutions' weights again (PyTorch's default initialisation) from a generator of their
        own: the same tensors in every process, whatever other threads draw from the global one meanwhile."""
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for module in self.modules():
                if isinstance(module, nn.Conv2d):
                    nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)

    @staticmethod
    def output_size(height: int, width: int) -> tuple[int, int]:
        """Spatial size of the feature map for an input of ``height`` x ``width``."""
        for _ in range(5):  # stem conv, max pool, three strided stages
            height, width = (height - 1) // 2 + 1, (width - 1) // 2 + 1
        return height, width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map of a batch of normalised images."""
        return self.stages(self.stem(x))


class SpatialLearnedEmbedding(nn.Module):
    """Per channel, ``num_features`` learned spatial weightings summed over H, W (SERL's pooling)."""

    def __init__(self, channels: int, height: int, width: int, num_features: int) -> None:
        super().__init__()
        self.kernel = nn.Parameter(torch.randn(channels, height, width, num_features) / (height * width) ** 0.5)
        self.out_dim = channels * num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) → (N, C * num_features)."""
        return torch.einsum("nchw,chwf->ncf", x, self.kernel).flatten(1)


def images_to_float(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, 3) → ImageNet-normalised float (N, 3, H, W)."""
    x = images.permute(0, 3, 1, 2).to(mean.dtype) / 255.0
    return (x - mean) / std


class ObservationEncoder(nn.Module):
    """Observation dict → feature vector; identity on ``state`` for a state-only spec (no cameras).

    Shared by the actor and the critics: the critic loss trains it, the actor reads it detached (DrQ).
    """

    def __init__(self, spec: PolicySpec) -> None:
        super().__init__()
        self.cameras = spec.image_keys
        self.freeze_backbone = spec.freeze_encoder
        if not self.cameras:
            self.out_dim = spec.state_dim
            self.part_dims: tuple[int, ...] = (spec.state_dim,)
            return
        self.backbone = ResNet10()
        if self.freeze_backbone:  # the same frozen features on every machine: weights never carry them
            self.backbone.draw_weights(FROZEN_BACKBONE_SEED)
        height, width = ResNet10.output_size(*spec.image_size)
        self.map_shape = (self.backbone.out_channels, height, width)
        self.heads = nn.ModuleDict()
        channels = spec.reduced_channels or self.backbone.out_channels
        for cam in self.cameras:
            reduce = [nn.Conv2d(self.backbone.out_channels, channels, 1)] if spec.reduced_channels else []
            pool = SpatialLearnedEmbedding(channels, height, width, spec.spatial_features)
            self.heads[cam] = nn.Sequential(
                *reduce,
                pool,
                nn.Linear(pool.out_dim, spec.image_latent_dim),
                nn.LayerNorm(spec.image_latent_dim),
                nn.Tanh(),
            )
        self.state_proj = nn.Sequential(
            nn.Linear(spec.state_dim, spec.state_latent_dim), nn.LayerNorm(spec.state_latent_dim), nn.Tanh()
        )
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        if self.freeze_backbone:
            self.backbone.requires_grad_(False)
        self.out_dim = spec.image_latent_dim * len(self.cameras) + spec.state_latent_dim
        self.part_dims = (spec.image_latent_dim,) * len(self.cameras) + (spec.state_latent_dim,)
        """Widths of the feature vector's parts: one per camera, then the state (for token-based policies)."""

    def load_backbone(self, path: str | Path) -> None:
        """Load the backbone from a local safetensors file of :class:`ResNet10` keys (strict)."""
        tensors = load_file(str(path), device=str(self.mean.device))
        self.backbone.load_state_dict(tensors, strict=True)

    def backbone_features(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Backbone maps of all cameras in one batched pass: (num_cameras * N, C, h, w)."""
        x = images_to_float(torch.cat([obs[cam] for cam in self.cameras]), self.mean, self.std)
        if self.freeze_backbone:
            with torch.no_grad():
                return self.backbone(x)
        return self.backbone(x)

    def forward(self, obs: Mapping[str, torch.Tensor], maps: torch.Tensor | None = None) -> torch.Tensor:
        """(N, out_dim) features of a batched observation dict.

        ``maps`` are precomputed :meth:`backbone_features` of ``obs`` (a learner's cache for a frozen
        backbone); without them the backbone runs on the images.
        """
        state = obs["state"].float()
        if not self.cameras:
            return state
        maps = (self.backbone_features(obs) if maps is None else maps).chunk(len(self.cameras))
        parts = [self.heads[cam](m) for cam, m in zip(self.cameras, maps, strict=True)]
        return torch.cat([*parts, self.state_proj(state)], dim=-1)
