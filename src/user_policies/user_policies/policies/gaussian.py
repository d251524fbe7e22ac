"""Tanh-Gaussian policy (SAC/RLPD): encoder → LayerNorm MLP → mean and log-std of a squashed Gaussian.

Kinds ``mlp`` (state only) and ``cnn`` (cameras through the ResNet-10 encoder): one class, one
action per inference (H = 1).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from user_policies.models.mlp import MLP
from user_policies.policies.base import POLICIES, StochasticPolicy, pre_tanh, weighted_mean
from user_policies.policy_spec import PolicySpec

LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def tanh_log_det(pre_tanh: torch.Tensor) -> torch.Tensor:
    """log |d tanh(u) / du| summed over the last dim (numerically stable)."""
    return (2.0 * (math.log(2.0) - pre_tanh - F.softplus(-2.0 * pre_tanh))).sum(-1)


def gaussian_log_density(eps: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log N(mean + std·eps; mean, std²) summed over the last dim."""
    return (-0.5 * eps.pow(2) - log_std - LOG_SQRT_2PI).sum(-1)


def tanh_log_prob(pre_tanh: torch.Tensor, eps: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log π(tanh(u)) for u = mean + std * eps, with the tanh change of variables."""
    return gaussian_log_density(eps, log_std) - tanh_log_det(pre_tanh)


@dataclasses.dataclass(frozen=True)
class GaussianOptions:
    """Bounds of the pre-tanh log standard deviation."""

    log_std_min: float = -5.0
    log_std_max: float = 2.0

    def __post_init__(self) -> None:
        if not self.log_std_min < self.log_std_max:
            raise ValueError("log_std_min must be below log_std_max")


@POLICIES.register("mlp")
@POLICIES.register("cnn")
class GaussianPolicy(StochasticPolicy):
    """SAC actor. Its ``state_dict`` is what the learner publishes and the actor node loads (strict)."""

    Options = GaussianOptions

    def __init__(self, spec: PolicySpec) -> None:
        super().__init__(spec)
        self.trunk = MLP(self.encoder.out_dim, spec.hidden_dims)
        self.head = nn.Linear(self.trunk.out_dim, 2 * spec.action_dim)

    @classmethod
    def check_spec(cls, spec: PolicySpec) -> None:
        """``mlp`` reads no cameras, ``cnn`` at least one; one action per inference."""
        if spec.kind == "cnn" and not spec.cameras:
            raise ValueError("kind 'cnn' needs at least one camera")
        if spec.kind == "mlp" and spec.cameras:
            raise ValueError(f"kind 'mlp' reads the state only, got cameras {list(spec.cameras)} (use kind 'cnn')")
        if spec.chunk_size != 1:
            raise ValueError(f"Gaussian policies return one action per inference: chunk_size must be 1, got "
                             f"{spec.chunk_size}")

    @classmethod
    def kind_for(cls, kind: str, obs: str) -> str:
        """``cnn`` for pixel observations, ``mlp`` for state."""
        return "cnn" if obs == "pixels" else "mlp"

    def distribution(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, log_std) of the pre-tanh Gaussian from encoder features; log_std in [min, max]."""
        mean, raw = self.head(self.trunk(features)).chunk(2, dim=-1)
        return mean, self._log_std(raw)

    def _log_std(self, raw: torch.Tensor) -> torch.Tensor:
        low, high = self.options.log_std_min, self.options.log_std_max
        return low + 0.5 * (high - low) * (torch.tanh(raw) + 1.0)

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

    def imitation_loss(
        self,
        obs: Mapping[str, torch.Tensor],
        chunks: torch.Tensor,
        generator: torch.Generator | None = None,
        weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Behaviour cloning of the target actions (N, 1, A): the squared error of the deterministic action
        tanh(mean), plus the negative log-likelihood of the targets under the tanh-Gaussian through the
        log-std outputs alone (the mean and the trunk held fixed: it fits the spread, nothing else).
        Measured on HG-DAgger (BENCHMARKS.md): an NLL that also moves the mean weighs each row by 1/σ², so
        the rows of smallest spread decide the fit, and the policy got worse as takeovers accumulated; the
        squared error keeps every row's pull equal.
        """
        hidden = self.trunk(self.encoder(obs))
        mean = self.head(hidden).chunk(2, dim=-1)[0]
        log_std = self._log_std(self.head(hidden.detach()).chunk(2, dim=-1)[1])
        target = chunks[:, 0]
        squared = (torch.tanh(mean) - target).pow(2).sum(-1)
        u, fixed = pre_tanh(target), mean.detach()
        nll = -tanh_log_prob(u, (u - fixed) / log_std.exp(), log_std)
        return weighted_mean(squared + nll, weights)

    def act_batch(self, batch: Mapping[str, torch.Tensor], deterministic: bool) -> torch.Tensor:
        """(N, 1, A): tanh of the mean (deterministic) or of a sample."""
        mean, log_std = self(batch)
        pre_tanh = mean if deterministic else mean + log_std.exp() * torch.randn_like(mean)
        return torch.tanh(pre_tanh).unsqueeze(1)
