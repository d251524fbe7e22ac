"""Soft Actor-Critic with a REDQ-style critic ensemble, DrQ for pixels; RLPD is SAC with 50/50 demo batches.

Read top to bottom like CleanRL's SAC:

* critics: ``num_critics`` LayerNorm MLP Q-functions evaluated as one batched module (stacked
  weights); the TD target takes the min over ``num_target_critics`` randomly chosen target critics,
  the actor maximises the ensemble mean;
* one :meth:`SAC.update` = ``critic_actor_ratio`` critic steps on disjoint minibatches, then one
  actor and temperature step on the last minibatch (SERL's high-UTD update);
* pixels (``kind="cnn"``): the observation encoder lives in the actor (so it is published with it),
  is trained by the critic loss only and read detached by the actor (DrQ); images get a random shift;
  targets use the online encoder without gradient (DrQ-v2);
* temperature: learned ``log α`` towards entropy ``-target_entropy_scale * |A|``;
* the policy is any :class:`~user_policies.policies.base.StochasticPolicy` (tanh-Gaussian ``mlp``/``cnn``,
  ``flow``): SAC only needs reparameterised actions and their log-probabilities;
* optional ``cache_backbone``: a frozen backbone's maps come from a :class:`BackboneCache` instead
  of being recomputed for every minibatch; DrQ then picks among ``cache_views`` shifted versions of
  each image whose maps the cache keeps (1: the image alone, no augmentation);
* optional ``autocast: bf16``: forward passes in bfloat16 under ``torch.autocast`` (tensor cores on a
  GPU), losses, targets, optimiser state and weights in float32;
* optional ``compile``: the critic ensemble's forward (and its backward) through ``torch.compile``;
  ``reduce-overhead`` replays them as CUDA graphs (a GPU's launch overhead is most of a state update).

RLPD (Ball et al. 2023, registered as ``rlpd``) is this SAC with ``demo_ratio`` of every batch from
the demo buffer (:class:`user_learner.replay_buffer.MixedSampler`) and no entropy term in the target.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
from collections.abc import Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from user_learner.algorithms.backbone_cache import BackboneCache
from user_learner.algorithms.base import ALGORITHMS, Algorithm
from user_learner.algorithms.update_metrics import UpdateMetrics
from user_learner.augment import augment_observation
from user_learner.replay_buffer import Batch
from user_policies.policies.base import StochasticPolicy
from user_robot.config_loader import check_ranges


@dataclasses.dataclass(frozen=True)
class SACConfig:
    """SAC / RLPD hyperparameters (RECIPES defaults)."""

    batch_size: int = 256
    lr_actor: float = 3e-4
    lr_critic: float = 3e-4
    lr_temperature: float = 3e-4
    gamma: float = 0.97
    tau: float = 0.005
    init_temperature: float = 0.01
    target_entropy_scale: float = 0.5
    num_critics: int = 10
    num_target_critics: int = 2
    critic_actor_ratio: int = 2
    critic_hidden_dims: tuple[int, ...] = (256, 256)
    grad_clip: float = 10.0
    backup_entropy: bool = True
    drq_pad: int = 4
    cache_backbone: bool = False  # pixels, frozen backbone: maps computed once per stored image
    cache_views: int = 1  # with cache_backbone: maps of this many DrQ-shifted versions per image (1: no shift)
    demo_ratio: float = 0.0  # share of every batch from the demo buffer (RLPD: 0.5)
    autocast: str = "none"  # "bf16": forward passes in bfloat16 (losses and weights stay float32)
    compile: str = "none"  # torch.compile mode of the critic ensemble: none, default, reduce-overhead (CUDA graphs)

    def __post_init__(self) -> None:
        check_ranges(self, positive=("lr_actor", "lr_critic", "lr_temperature", "critic_hidden_dims"),
                     non_negative=("grad_clip", "drq_pad", "target_entropy_scale"))
        if self.compile not in ("none", "default", "reduce-overhead", "max-autotune"):
            raise ValueError(f"compile must be none, default, reduce-overhead or max-autotune, got {self.compile!r}")
        if self.autocast not in ("none", "bf16"):
            raise ValueError(f"autocast must be 'none' or 'bf16', got {self.autocast!r}")
        if not 0.0 <= self.demo_ratio < 1.0:
            raise ValueError(f"demo_ratio must be in [0, 1), got {self.demo_ratio}")
        if not 1 <= self.num_target_critics <= self.num_critics:
            raise ValueError("num_target_critics must be in [1, num_critics]")
        if self.cache_views < 1 or (self.cache_views > 1 and self.drq_pad < 1):
            raise ValueError("cache_views must be >= 1, and cache_views > 1 needs drq_pad >= 1 (the shift)")
        if self.critic_actor_ratio < 1 or self.batch_size < 1:
            raise ValueError("critic_actor_ratio and batch_size must be positive")
        if not (0.0 < self.tau <= 1.0 and 0.0 <= self.gamma < 1.0 and self.init_temperature > 0.0):
            raise ValueError("need 0 < tau <= 1, 0 <= gamma < 1, init_temperature > 0")


class CriticEnsemble(nn.Module):
    """``num_critics`` LayerNorm MLP Q-functions as stacked weights: one batched matmul per layer, no loop."""

    def __init__(self, in_dim: int, hidden_dims: Sequence[int], num_critics: int) -> None:
        super().__init__()
        dims = [in_dim, *hidden_dims, 1]
        self.num_critics = num_critics
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.norm_weights = nn.ParameterList()
        self.norm_biases = nn.ParameterList()
        for fan_in, fan_out in itertools.pairwise(dims):
            bound = 1.0 / math.sqrt(fan_in)  # nn.Linear's default init, per member
            self.weights.append(nn.Parameter(torch.empty(num_critics, fan_in, fan_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(num_critics, 1, fan_out).uniform_(-bound, bound)))
        for width in hidden_dims:
            self.norm_weights.append(nn.Parameter(torch.ones(num_critics, 1, width)))
            self.norm_biases.append(nn.Parameter(torch.zeros(num_critics, 1, width)))

    def forward(
        self, x: torch.Tensor, members: torch.Tensor | None = None, detach_params: bool = False
    ) -> torch.Tensor:
        """Q-values (E, N) of inputs (N, in_dim) for all members, or the ``members`` index subset.

        ``detach_params`` lets gradients reach ``x`` (the actor's action) but not the critic weights.
        """

        def param(p: torch.Tensor) -> torch.Tensor:
            p = p if members is None else p[members]
            return p.detach() if detach_params else p

        h = x
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.matmul(h, param(w)) + param(b)  # (N, in) @ (E, in, out) broadcasts to (E, N, out)
            if i < last:
                normed = F.layer_norm(h, h.shape[-1:])  # per-member affine below: weights differ per critic
                h = F.relu(torch.addcmul(param(self.norm_biases[i]), normed, param(self.norm_weights[i])))
        return h.squeeze(-1)


def split_batch(batch: Batch, parts: int) -> Iterator[Batch]:
    """``parts`` strided minibatches (rows k, k+parts, …): each keeps a MixedSampler batch's demo share."""
    for k in range(parts):
        yield {
            key: {n: t[k::parts] for n, t in value.items()} if isinstance(value, dict) else value[k::parts]
            for key, value in batch.items()
        }


@ALGORITHMS.register("sac")
class SAC(Algorithm):
    """SAC learner state: policy (published), critic ensemble + targets, temperature, optimisers, RNG."""

    Config = SACConfig
    policy_class = StochasticPolicy
    cfg: SACConfig
    policy: StochasticPolicy

    def build(self) -> None:
        """Critic ensemble and targets, temperature, one optimiser each for policy, critic, temperature."""
        cfg, spec = self.cfg, self.spec
        if spec.chunk_size != 1:
            raise ValueError(f"{type(self).__name__} trains one action per step: chunk_size must be 1")
        in_dim = self.policy.encoder.out_dim + spec.action_dim
        self.critic = CriticEnsemble(in_dim, cfg.critic_hidden_dims, cfg.num_critics).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self._critic, self._critic_target = self.critic, self.critic_target  # (what the update calls)
        if cfg.compile != "none":
            self._critic = torch.compile(self.critic, mode=cfg.compile)
            self._critic_target = torch.compile(self.critic_target, mode=cfg.compile)
        self.log_alpha = torch.tensor(math.log(cfg.init_temperature), device=self.device, requires_grad=True)
        self.target_entropy = -cfg.target_entropy_scale * spec.action_dim
        encoder_params = [p for p in self.policy.encoder.parameters() if p.requires_grad]
        policy_params = [p for n, p in self.policy.named_parameters() if not n.startswith("encoder.")]
        fused = self.device.type == "cuda"  # one kernel per optimiser step instead of one per tensor group
        self.optimizers = {
            "actor": torch.optim.Adam(policy_params, lr=cfg.lr_actor, fused=fused),
            "critic": torch.optim.Adam([*self.critic.parameters(), *encoder_params], lr=cfg.lr_critic, fused=fused),
            "temperature": torch.optim.Adam([self.log_alpha], lr=cfg.lr_temperature, fused=fused),
        }
        self.backbone_cache = (
            BackboneCache(self.policy.encoder, views=cfg.cache_views, pad=cfg.drq_pad, generator=self.generator,
                          device=self.device)
            if cfg.cache_backbone and spec.image_keys
            else None
        )

    @property
    def demo_ratio(self) -> float:
        """``cfg.demo_ratio``."""
        return self.cfg.demo_ratio

    @property
    def batch_images(self) -> bool:
        """With the backbone cache, batches come without images: a stored image is read once, when cached."""
        return self.backbone_cache is None

    @property
    def device_bytes_per_row(self) -> int:
        """The backbone cache's maps of one stored row (``cache_views`` per camera, float16)."""
        return 0 if self.backbone_cache is None else self.backbone_cache.row_bytes

    @property
    def rows_per_update(self) -> int:
        """Batch rows one :meth:`update` consumes: ``batch_size * critic_actor_ratio``."""
        return self.cfg.batch_size * self.cfg.critic_actor_ratio

    @property
    def alpha(self) -> torch.Tensor:
        """Current temperature α (detached)."""
        return self.log_alpha.detach().exp()

    def _autocast(self) -> torch.autocast:
        """The forward passes' precision: bfloat16 under ``autocast: bf16``, else unchanged."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.autocast == "bf16")

    def _encode(self, obs: dict[str, torch.Tensor], refs: torch.Tensor | None) -> torch.Tensor:
        if self.backbone_cache is not None:
            if refs is None:
                raise ValueError("cache_backbone needs batches that carry obs refs (ReplayBuffer.sample)")
            return self.policy.encoder(obs, self.backbone_cache.maps(obs, refs, self.image_source))
        if self.spec.image_keys and self.cfg.drq_pad > 0:
            obs = augment_observation(obs, self.spec.image_keys, self.cfg.drq_pad, self.generator)
        return self.policy.encoder(obs)

    def _clip_step(self, name: str, loss: torch.Tensor) -> None:
        opt = self.optimizers[name]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for group in opt.param_groups for p in group["params"]]
        nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
        opt.step()

    def _update_critic(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One TD step; returns (loss, mean Q, encoder features of obs) for the actor step."""
        cfg = self.cfg
        with self._autocast():
            features = self._encode(batch["obs"], batch.get("obs_ref"))
            with torch.no_grad():
                next_features = self._encode(batch["next_obs"], batch.get("next_obs_ref"))
                next_action, next_log_prob = self.policy.sample_from_features(next_features, self.generator)
                members = torch.randperm(cfg.num_critics, generator=self.generator, device=self.device)
                next_q = self._critic_target(
                    torch.cat([next_features, next_action.to(next_features.dtype)], -1),
                    members[: cfg.num_target_critics],
                ).min(0).values.float()
            q = self._critic(torch.cat([features, batch["action"].to(features.dtype)], -1)).float()
        with torch.no_grad():
            if cfg.backup_entropy:
                next_q = next_q - self.alpha * next_log_prob.float()
            target = batch["reward"] + cfg.gamma * (1.0 - batch["done"]) * next_q
        loss = F.mse_loss(q, target.expand_as(q))
        self._clip_step("critic", loss)
        with torch.no_grad():
            torch._foreach_lerp_(list(self.critic_target.parameters()), list(self.critic.parameters()), cfg.tau)
        return loss.detach(), q.detach().mean(), features.detach()

    def _update_actor(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One actor and temperature step on detached features; returns (actor loss, mean log-prob)."""
        with self._autocast():
            action, log_prob = self.policy.sample_from_features(features, self.generator)
            q = self._critic(torch.cat([features, action.to(features.dtype)], -1), detach_params=True).mean(0).float()
        log_prob = log_prob.float()
        actor_loss = (self.alpha * log_prob - q).mean()
        self._clip_step("actor", actor_loss)
        temperature_loss = -(self.log_alpha.exp() * (log_prob.detach() + self.target_entropy)).mean()
        self._clip_step("temperature", temperature_loss)
        return actor_loss.detach(), log_prob.detach().mean()

    def update(self, batch: Batch) -> UpdateMetrics:
        """One learner update on a batch of :attr:`rows_per_update` rows (see module doc); its metrics are
        read from the device when first read (:class:`UpdateMetrics`).

        ``batch`` is a :meth:`ReplayBuffer.sample` / :meth:`MixedSampler.sample` dict on this device.
        """
        if self.cfg.compile == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()  # (the last update's graph outputs are no longer read)
        if self.backbone_cache is not None and "obs_ref" in batch:
            self.backbone_cache.retain(torch.cat([batch["obs_ref"][:, 0], batch["next_obs_ref"][:, 0]]))
        critic_losses, q_means = [], []
        features = torch.empty(0)
        for minibatch in split_batch(batch, self.cfg.critic_actor_ratio):
            loss, q_mean, features = self._update_critic(minibatch)
            critic_losses.append(loss)
            q_means.append(q_mean)
        actor_loss, log_prob = self._update_actor(features)
        self.num_updates += 1
        stats = torch.stack([torch.stack(critic_losses).mean(), actor_loss, self.alpha, -log_prob,
                             torch.stack(q_means).mean()])
        return UpdateMetrics(("critic_loss", "actor_loss", "alpha", "entropy", "q_mean"), stats)

    def checkpoint_modules(self) -> dict[str, nn.Module]:
        """Policy, critics and target critics."""
        return {"policy": self.policy, "critic": self.critic, "critic_target": self.critic_target}

    def extra_state(self) -> dict[str, torch.Tensor]:
        """The temperature."""
        return {"log_alpha": self.log_alpha.detach()}

    def load_extra_state(self, tensors: Mapping[str, torch.Tensor]) -> None:
        """Restore the temperature; the backbone cache is cleared (the backbone may have changed)."""
        with torch.no_grad():
            self.log_alpha.copy_(tensors["log_alpha"])
        if self.backbone_cache is not None:
            self.backbone_cache.clear()


@dataclasses.dataclass(frozen=True)
class RLPDConfig(SACConfig):
    """RLPD: SAC with symmetric online/demo batches and no entropy term in the TD target."""

    backup_entropy: bool = False
    demo_ratio: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.demo_ratio < 1.0:
            raise ValueError("rlpd needs 0 < demo_ratio < 1 (0.5 = RLPD's symmetric sampling)")


@ALGORITHMS.register("rlpd")
class RLPD(SAC):
    """RLPD (Ball et al. 2023): :class:`SAC` on batches mixed from online and demo data."""

    Config = RLPDConfig
