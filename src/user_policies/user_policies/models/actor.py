"""Tanh-Gaussian actor (SAC): encoder → LayerNorm MLP → mean and log-std of a squashed Gaussian."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from user_policies.models.mlp import MLP
from user_policies.models.resnet10 import ObservationEncoder
from user_policies.policy_spec import PolicySpec

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def tanh_log_prob(pre_tanh: torch.Tensor, eps: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log π(tanh(u)) for u = mean + std * eps, with the tanh change of variables (numerically stable)."""
    gaussian = (-0.5 * eps.pow(2) - log_std - _LOG_SQRT_2PI).sum(-1)
    log_det = (2.0 * (math.log(2.0) - pre_tanh - F.softplus(-2.0 * pre_tanh))).sum(-1)
    return gaussian - log_det


class Actor(nn.Module):
    """SAC actor. Its ``state_dict`` is what the learner publishes and the actor node loads (strict)."""

    def __init__(self, spec: PolicySpec) -> None:
        super().__init__()
        self.spec = spec
        self.encoder = ObservationEncoder(spec)
        self.trunk = MLP(self.encoder.out_dim, spec.hidden_dims)
        self.head = nn.Linear(self.trunk.out_dim, 2 * spec.action_dim)

    def distribution(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, log_std) of the pre-tanh Gaussian from encoder features; log_std in [min, max]."""
        mean, raw = self.head(self.trunk(features)).chunk(2, dim=-1)
        low, high = self.spec.log_std_min, self.spec.log_std_max
        return mean, low + 0.5 * (high - low) * (torch.tanh(raw) + 1.0)

    def forward(self, obs: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, log_std) for a batched observation dict."""
        return self.distribution(self.encoder(obs))

    def sample_from_features(
        self, features: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised (action in (-1, 1), log-prob) from encoder features."""
        mean, log_std = self.distribution(features)
        eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        pre_tanh = mean + log_std.exp() * eps
        return torch.tanh(pre_tanh), tanh_log_prob(pre_tanh, eps, log_std)

    def sample(
        self, obs: Mapping[str, torch.Tensor], generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised (action, log-prob) for a batched observation dict."""
        return self.sample_from_features(self.encoder(obs), generator)

    @torch.inference_mode()
    def act(self, obs: Mapping[str, np.ndarray], deterministic: bool = False) -> np.ndarray:
        """Action (float32 in [-1, 1]) for ONE unbatched observation: ``state`` float32[D], uint8 HxWx3 per camera."""
        device = self.head.weight.device
        batch: dict[str, torch.Tensor] = {}
        for key, shape in self.spec.observation_shapes().items():
            if key not in obs:
                raise KeyError(f"observation has no {key!r} (has {sorted(obs)})")
            value = np.asarray(obs[key], dtype=np.float32 if key == "state" else np.uint8)
            if value.shape != shape:
                raise ValueError(f"observation {key!r} has shape {value.shape}, expected {shape}")
            batch[key] = torch.from_numpy(np.ascontiguousarray(value)).unsqueeze(0).to(device)
        mean, log_std = self(batch)
        pre_tanh = mean if deterministic else mean + log_std.exp() * torch.randn_like(mean)
        return torch.tanh(pre_tanh)[0].float().cpu().numpy()


def build_actor(spec: PolicySpec, *, load_pretrained: bool = True, device: str | torch.device = "cpu") -> Actor:
    """Build the actor for ``spec`` on ``device``; loads ``spec.pretrained_encoder`` when set and asked.

    An actor that will receive published weights can skip the file (``load_pretrained=False``): the
    encoder's weights are part of the published ``state_dict``.
    """
    actor = Actor(spec)
    if load_pretrained and spec.pretrained_encoder and spec.image_keys:
        actor.encoder.load_backbone(spec.pretrained_encoder)
    return actor.to(device)
