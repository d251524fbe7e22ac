"""Vision-language-action policy (π0's layout at small scale): a transformer prefix over image patches,
the proprioceptive state and the instruction, and an action expert that flows a chunk of actions.

Prefix tokens: each camera's uint8 image cut into ``patch_size`` patches (one convolution, shared by
the cameras, plus a learned position per patch and an embedding per camera); the state without its
instruction bytes (one token, Linear); the instruction's UTF-8 bytes (``spec.instruction_slice`` of
the state: the task's ``instruction`` key), one token per byte (an embedding of 256, a learned
position; padding is masked, and left out past the batch's longest instruction). ``prefix_layers``
transformer layers (pre-norm, FFN 4·d, GELU) mix them. The action expert is a transformer decoder of
``expert_layers`` layers: one query per chunk step (Linear A→d, a learned position and a time embedding)
attending to the prefix, and a linear velocity head. Sizes scale by ``d_model`` and the layer counts
(the defaults: ~5M parameters).
``trainable`` picks what fine-tuning trains: ``all``, the action ``expert`` only, or ``lora``
(low-rank adapters on the prefix transformer's weight matrices, and the action expert); the rest is
frozen, so with ``spec.pretrained_policy`` (the base, a local file) weights carry only what trains.

Flow matching (π0): with x₀ ~ N(0, I) and the target chunk x₁ (actions in [-1, 1]), the velocity at
x_t = (1 − t) x₀ + t x₁, t ~ U(0, 1), should be x₁ − x₀. Acting integrates ``flow_steps`` Euler steps
from x₀ (zeros when deterministic) over one prefix, computed once, and clips to [-1, 1]. Trained by
behaviour cloning and HG-DAgger (``imitation_loss``); it has no log-probability for SAC.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Literal

import torch
from torch import nn
from torch.nn.utils import parametrize

from user_policies.policies.base import POLICIES, Policy, weighted_mean
from user_policies.policies.flow import check_width, sinusoidal
from user_policies.policy_spec import PolicySpec


@dataclasses.dataclass(frozen=True)
class VLAOptions:
    """VLA sizes and flow settings (π0: H = 50 at 50 Hz, 10 steps; here H comes from ``spec.chunk_size``)."""

    d_model: int = 256
    n_heads: int = 4
    prefix_layers: int = 4
    expert_layers: int = 2
    patch_size: int = 16
    flow_steps: int = 10
    trainable: Literal["all", "expert", "lora"] = "all"
    lora_rank: int = 8
    lora_alpha: float = 16.0

    def __post_init__(self) -> None:
        check_width(self.d_model, self.n_heads)
        if min(self.prefix_layers, self.expert_layers, self.patch_size, self.flow_steps, self.lora_rank) < 1:
            raise ValueError("prefix_layers, expert_layers, patch_size, flow_steps and lora_rank must be >= 1")
        if self.trainable not in ("all", "expert", "lora"):
            raise ValueError(f"trainable must be all, expert or lora, got {self.trainable!r}")


class LoRA(nn.Module):
    """A low-rank update of a frozen weight W (out × in): W + (alpha / rank) · B A, B starting at zero (a
    ``torch.nn.utils.parametrize`` parametrization, so it fits fused weights such as attention's in_proj)."""

    def __init__(self, weight: torch.Tensor, rank: int, alpha: float) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.empty(rank, weight.shape[1]))
        self.b = nn.Parameter(torch.zeros(weight.shape[0], rank))
        nn.init.kaiming_uniform_(self.a, a=5**0.5)
        self.scale = alpha / rank

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        """The adapted weight."""
        return weight + self.scale * self.b @ self.a


def _layer(cls: type, d: int, heads: int) -> nn.Module:
    return cls(d, heads, 4 * d, dropout=0.0, activation="gelu", batch_first=True, norm_first=True)


@POLICIES.register("vla")
class VLAPolicy(Policy):
    """See the module docstring."""

    Options = VLAOptions
    shared_encoder = False

    @classmethod
    def check_spec(cls, spec: PolicySpec) -> None:
        """Images must cut into whole patches."""
        patch = cls.parse_options(spec.options).patch_size
        if spec.image_keys and any(size % patch for size in spec.image_size):
            raise ValueError(f"image_size {list(spec.image_size)} is not a multiple of options.patch_size {patch}")

    def __init__(self, spec: PolicySpec) -> None:
        super().__init__(spec)
        o: VLAOptions = self.options
        d = o.d_model
        start, length = spec.instruction_slice
        self.instruction = slice(start, start + length)
        keep = torch.ones(spec.state_dim, dtype=torch.bool)
        keep[self.instruction] = False
        self.register_buffer("proprio", keep.nonzero().flatten(), persistent=False)
        self.state_in = nn.Linear(int(keep.sum()), d)
        self.byte_embed = nn.Embedding(256, d)
        self.byte_positions = nn.Parameter(torch.zeros(1, max(length, 1), d))
        if spec.image_keys:
            patches = (spec.image_size[0] // o.patch_size) * (spec.image_size[1] // o.patch_size)
            self.patchify = nn.Conv2d(3, d, o.patch_size, stride=o.patch_size)
            self.patch_positions = nn.Parameter(torch.zeros(1, patches, d))
            self.camera_embed = nn.Parameter(torch.zeros(len(spec.image_keys), 1, d))
        self.prefix = nn.TransformerEncoder(_layer(nn.TransformerEncoderLayer, d, o.n_heads), o.prefix_layers,
                                            enable_nested_tensor=False)
        self.prefix_norm = nn.LayerNorm(d)
        self.action_in = nn.Linear(spec.action_dim, d)
        self.time_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.action_positions = nn.Parameter(torch.zeros(1, spec.chunk_size, d))
        self.expert = nn.TransformerDecoder(_layer(nn.TransformerDecoderLayer, d, o.n_heads), o.expert_layers)
        self.out_norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, spec.action_dim)
        for parameter in (self.byte_positions, self.action_positions,
                          *((self.patch_positions, self.camera_embed) if spec.image_keys else ())):
            nn.init.normal_(parameter, std=0.02)

    def finish_build(self) -> None:
        """``trainable``: all; the action expert only (the prefix frozen); or LoRA adapters on every weight
        matrix of the prefix transformer plus the action expert (the prefix's own weights frozen)."""
        o: VLAOptions = self.options
        if o.trainable == "all":
            return
        expert = {id(p) for m in (self.action_in, self.time_mlp, self.expert, self.out_norm, self.head)
                  for p in m.parameters()} | {id(self.action_positions)}
        for parameter in self.parameters():
            parameter.requires_grad_(id(parameter) in expert)
        if o.trainable == "lora":
            for module in list(self.prefix.modules()):
                for name in ("in_proj_weight", "weight"):
                    weight = getattr(module, name, None)
                    if isinstance(weight, nn.Parameter) and weight.dim() == 2:
                        parametrize.register_parametrization(module, name, LoRA(weight, o.lora_rank, o.lora_alpha))

    def prefix_tokens(self, obs: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(prefix (N, T, d) after the prefix transformer, padding mask (N, T): True where a token is padding)."""
        state = obs["state"]
        tokens = [self.state_in(state[:, self.proprio])[:, None]]
        for i, cam in enumerate(self.spec.image_keys):
            image = obs[cam].permute(0, 3, 1, 2).float() / 127.5 - 1.0
            patches = self.patchify(image).flatten(2).transpose(1, 2)
            tokens.append(patches + self.patch_positions + self.camera_embed[i])
        padding = [torch.zeros(state.shape[0], sum(t.shape[1] for t in tokens), dtype=torch.bool, device=state.device)]
        if self.instruction.stop > self.instruction.start:
            ids = state[:, self.instruction].round().clamp(0, 255).long()
            used = int((ids != 0).sum(1).max())  # (bytes past the batch's longest instruction: padding only)
            ids = ids[:, : max(used, 1)]
            tokens.append(self.byte_embed(ids) + self.byte_positions[:, : ids.shape[1]])
            padding.append(ids == 0)
        mask = torch.cat(padding, dim=1)
        return self.prefix_norm(self.prefix(torch.cat(tokens, dim=1), src_key_padding_mask=mask)), mask

    def velocity(self, x: torch.Tensor, t: torch.Tensor, prefix: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The flow's velocity (N, H, A) at noisy chunks x (N, H, A) and times t (N,) in [0, 1]."""
        h = self.action_in(x) + self.time_mlp(sinusoidal(t, self.options.d_model))[:, None] + self.action_positions
        return self.head(self.out_norm(self.expert(h, prefix, memory_key_padding_mask=mask)))

    def imitation_loss(
        self,
        obs: Mapping[str, torch.Tensor],
        chunks: torch.Tensor,
        generator: torch.Generator | None = None,
        weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Flow matching: ||v(x_t, t) − (x₁ − x₀)||² at t ~ U(0, 1), per row, weighted."""
        x0 = torch.randn(chunks.shape, generator=generator, device=chunks.device, dtype=chunks.dtype)
        t = torch.rand(chunks.shape[0], generator=generator, device=chunks.device, dtype=chunks.dtype)
        prefix, mask = self.prefix_tokens(obs)
        v = self.velocity((1 - t[:, None, None]) * x0 + t[:, None, None] * chunks, t, prefix, mask)
        return weighted_mean((v - (chunks - x0)).pow(2).flatten(1).mean(-1), weights)

    def act_batch(self, batch: Mapping[str, torch.Tensor], deterministic: bool) -> torch.Tensor:
        """(N, H, A) in [-1, 1]: ``flow_steps`` Euler steps from x₀ (zeros when deterministic) over one prefix."""
        prefix, mask = self.prefix_tokens(batch)
        shape = (prefix.shape[0], self.spec.chunk_size, self.spec.action_dim)
        x = prefix.new_zeros(shape) if deterministic else torch.randn(shape, device=prefix.device)
        steps = self.options.flow_steps
        for k in range(steps):
            t = prefix.new_full((shape[0],), k / steps)
            x = x + self.velocity(x, t, prefix, mask) / steps
        return x.clamp(-1.0, 1.0)
