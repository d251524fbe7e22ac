"""Flow policy (SAC Flow; RLinf's real-world recipe): a velocity network integrated over K Euler steps.

From x₀ ~ N(0, I) (shape H × A: a chunk of H actions), K Euler steps of dt = 1/K follow the velocity
v(x_k, t_k | observation); the action is tanh(x_K). The velocity network (Flow-T) is a transformer
decoder: the noisy actions (one token per chunk step, Linear A→d plus a time embedding of
t = k/K and a learned position) are the queries, and the observation features (one token per
encoder part: each camera, the state; Linear-SiLU-Linear to d) are the memory; ``n_layers`` layers
(FFN 4·d, GELU, no dropout) and a linear velocity head, Xavier init. ``velocity: gated`` is the
paper's Flow-G: v = z ⊙ (h̃ − x) with a sigmoid gate z whose layer starts at weight 0, bias 5.

Log-probability (SAC Flow's noise-augmented rollout): each Euler step adds Gaussian noise,
x_{k+1} = x_k + v_k·dt + σ·ε_k, so the path has the tractable density
log N(x₀; 0, I) + Σ_k log N(x_{k+1}; x_k + v_k·dt, σ²), and the action's tanh adds its change of
variables. σ is fixed (``noise_std_train`` for the learner's samples, ``noise_std_rollout`` on the
robot) or learned per step (``noise: learned``, log σ clamped to [log_std_min, log_std_max]).
A deterministic action (evaluation) starts from x₀ = 0 and adds no noise.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Literal

import torch
from torch import nn

from user_policies.policies.base import POLICIES, StochasticPolicy, pre_tanh, weighted_mean
from user_policies.policies.gaussian import gaussian_log_density, tanh_log_det
from user_policies.policy_spec import PolicySpec


def check_width(d_model: int, n_heads: int) -> None:
    """``ValueError`` unless a transformer's width is a positive multiple of its head count."""
    if d_model < 1 or n_heads < 1 or d_model % n_heads:
        raise ValueError(f"d_model ({d_model}) must be a positive multiple of n_heads ({n_heads})")


@dataclasses.dataclass(frozen=True)
class FlowOptions:
    """Flow policy settings (RECIPES: d_model 256, 4 heads, 2 layers, K = 4, σ 0.3 train / 0.02 rollout)."""

    d_model: int = 256
    n_heads: int = 4
    n_layers: int = 2
    flow_steps: int = 4
    noise_std_train: float = 0.3
    noise_std_rollout: float = 0.02
    velocity: Literal["transformer", "gated"] = "transformer"
    noise: Literal["fixed", "learned"] = "fixed"
    log_std_min: float = -5.0
    log_std_max: float = 2.0

    def __post_init__(self) -> None:
        check_width(self.d_model, self.n_heads)
        if self.n_layers < 1 or self.flow_steps < 1:
            raise ValueError("n_layers and flow_steps must be >= 1")
        if self.noise_std_train <= 0 or self.noise_std_rollout < 0:
            raise ValueError("need noise_std_train > 0 and noise_std_rollout >= 0")
        if self.velocity not in ("transformer", "gated") or self.noise not in ("fixed", "learned"):
            raise ValueError("velocity must be transformer|gated and noise fixed|learned")
        if not self.log_std_min < self.log_std_max:
            raise ValueError("log_std_min must be below log_std_max")


def sinusoidal(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features (len(t), dim) of times t in [0, 1]."""
    half = dim // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half, dtype=torch.float32) / max(half, 1))
    angles = t[:, None].float() * 1000.0 * freqs[None]
    features = torch.cat([angles.sin(), angles.cos()], dim=-1)
    return nn.functional.pad(features, (0, dim - 2 * half))


def _mlp(in_dim: int, width: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, width), nn.SiLU(), nn.Linear(width, width))


@POLICIES.register("flow")
class FlowPolicy(StochasticPolicy):
    """See the module docstring."""

    Options = FlowOptions

    def __init__(self, spec: PolicySpec) -> None:
        super().__init__(spec)
        o: FlowOptions = self.options
        d = o.d_model
        self.memory_in = nn.ModuleList(_mlp(width, d) for width in self.encoder.part_dims)
        self.action_in = nn.Linear(spec.action_dim, d)
        self.time_mlp = _mlp(d, d)
        self.positions = nn.Parameter(torch.zeros(1, spec.chunk_size, d))
        layer = nn.TransformerDecoderLayer(
            d, o.n_heads, 4 * d, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.decoder = nn.TransformerDecoder(layer, o.n_layers)
        self.out_norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, spec.action_dim)
        self.gate = nn.Linear(d, spec.action_dim) if o.velocity == "gated" else None
        self.log_std_head = nn.Linear(d, spec.action_dim) if o.noise == "learned" else None
        encoder_modules = {id(m) for m in self.encoder.modules()}
        for module in self.modules():
            if isinstance(module, nn.Linear) and id(module) not in encoder_modules:
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.positions, std=0.02)
        if self.gate is not None:  # the gate starts almost open
            nn.init.zeros_(self.gate.weight)
            nn.init.constant_(self.gate.bias, 5.0)
        times = torch.arange(o.flow_steps, dtype=torch.float32) / o.flow_steps
        self.register_buffer("time_features", sinusoidal(times, d), persistent=False)

    def memory(self, features: torch.Tensor) -> torch.Tensor:
        """Observation features (N, F) → memory tokens (N, parts, d)."""
        parts = features.split(list(self.encoder.part_dims), dim=-1)
        return torch.stack([proj(part) for proj, part in zip(self.memory_in, parts, strict=True)], dim=1)

    def velocity(
        self, x: torch.Tensor, step: int | torch.Tensor, memory: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(velocity, log σ or None) at Euler step ``step`` (one for all, or one per row) for noisy actions
        x (N, H, A)."""
        steps = torch.as_tensor(step, device=x.device).reshape(-1)
        time = self.time_mlp(self.time_features[steps])  # (1 or N, d)
        h = self.action_in(x) + time[:, None, :] + self.positions
        h = self.out_norm(self.decoder(h, memory))
        v = self.head(h)
        if self.gate is not None:
            v = torch.sigmoid(self.gate(h)) * (v - x)
        log_std = None
        if self.log_std_head is not None:
            log_std = self.log_std_head(h).clamp(self.options.log_std_min, self.options.log_std_max)
        return v, log_std

    def rollout(
        self,
        features: torch.Tensor,
        noise_std: float,
        generator: torch.Generator | None = None,
        deterministic: bool = False,
        velocities: list[torch.Tensor] | None = None,
        noise: Sequence[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Integrate the flow: (x_K (N, H, A) before tanh, log-probability (N,) of tanh(x_K) along the path).

        ``velocities``, when given, collects each step's velocity; ``noise`` gives the standard-normal
        draws (x₀, ε₀, …, ε_{K-1}) instead of sampling them, to evaluate the density of a chosen path.
        """
        memory = self.memory(features)
        shape = (features.shape[0], self.spec.chunk_size, self.spec.action_dim)
        steps = self.options.flow_steps
        dt = 1.0 / steps

        draws = iter(noise) if noise is not None else None

        def standard_normal() -> torch.Tensor:
            if draws is not None:
                return next(draws)
            return torch.randn(shape, generator=generator, device=features.device, dtype=features.dtype)

        x = torch.zeros(shape, device=features.device, dtype=features.dtype) if deterministic else standard_normal()
        log_prob = gaussian_log_density(x.flatten(1), torch.zeros_like(x.flatten(1)))
        for k in range(steps):
            v, log_std = self.velocity(x, k, memory)
            if velocities is not None:
                velocities.append(v)
            mean = x + v * dt
            if deterministic:
                x = mean
                continue
            if log_std is None:
                log_std = torch.full_like(mean, math.log(max(noise_std, 1e-12)))
            eps = standard_normal()
            x = mean + log_std.exp() * eps
            log_prob = log_prob + gaussian_log_density(eps.flatten(1), log_std.flatten(1))
        return x, log_prob - tanh_log_det(x.flatten(1))

    def sample_from_features(
        self, features: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised (chunk flattened to (N, H·A) in (-1, 1), log-prob) with the training noise."""
        x, log_prob = self.rollout(features, self.options.noise_std_train, generator)
        return torch.tanh(x).flatten(1), log_prob

    def imitation_loss(
        self,
        obs: Mapping[str, torch.Tensor],
        chunks: torch.Tensor,
        generator: torch.Generator | None = None,
        weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Flow matching on the Euler grid: from x₀ ~ N(0, I) to the target chunk's pre-tanh x₁, the
        velocity at x_t = (1 - t) x₀ + t x₁ (t = k/K, k uniform) should be x₁ - x₀."""
        target = pre_tanh(chunks)
        x0 = torch.randn(target.shape, generator=generator, device=target.device, dtype=target.dtype)
        steps = torch.randint(
            0, self.options.flow_steps, (target.shape[0],), generator=generator, device=target.device
        )
        t = (steps.to(target.dtype) / self.options.flow_steps)[:, None, None]
        v, _ = self.velocity((1 - t) * x0 + t * target, steps, self.memory(self.encoder(obs)))
        return weighted_mean((v - (target - x0)).pow(2).flatten(1).mean(-1), weights)

    def act_batch(self, batch: Mapping[str, torch.Tensor], deterministic: bool) -> torch.Tensor:
        """(N, H, A): the noiseless flow from x₀ = 0 (deterministic) or a rollout-noise sample."""
        x, _ = self.rollout(self.encoder(batch), self.options.noise_std_rollout, deterministic=deterministic)
        return torch.tanh(x)
