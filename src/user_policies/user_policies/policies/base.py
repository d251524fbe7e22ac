"""The policy seam: one interface for every policy kind, and the registry by ``kind``.

A policy is a ``torch.nn.Module`` built from a :class:`~user_policies.policy_spec.PolicySpec`. The
actor calls :meth:`Policy.reset` at episode start and :meth:`Policy.act` with one observation, and
executes the returned **action chunk** (H × A, H = ``spec.chunk_size``). Its ``state_dict`` is what
the learner publishes. Kind-specific settings live in the class's ``Options`` dataclass (the
``policy.options`` section of an algorithm YAML, checked key by key).

Policies that SAC-family algorithms train also implement :class:`StochasticPolicy`: a
reparameterised sample of one action with its log-probability, from encoder features.

Add a kind: subclass :class:`Policy` in a module of ``user_policies/policies/`` (or a module named
in ``$USER_PLUGINS``) and decorate it with ``@POLICIES.register("<kind>")``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from user_policies.models.resnet10 import ObservationEncoder
from user_policies.policy_spec import PolicySpec
from user_policies.registry import Registry


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """A policy kind without options of its own."""


class Policy(nn.Module):
    """Base class of every policy kind (see the module docstring)."""

    Options: ClassVar[type] = NoOptions
    """Dataclass of the kind's own settings (``spec.options``)."""
    shared_encoder: ClassVar[bool] = True
    """Whether the kind reads observations through the shared :class:`ObservationEncoder` (``self.encoder``;
    None for a kind that tokenizes them itself)."""

    def __init__(self, spec: PolicySpec) -> None:
        super().__init__()
        self.check_spec(spec)
        self.spec = spec
        self.options = self.parse_options(spec.options)
        self.encoder = ObservationEncoder(spec) if self.shared_encoder else None

    @classmethod
    def parse_options(cls, options: Mapping[str, Any]) -> Any:
        """``spec.options`` as the kind's ``Options`` (``ValueError`` naming an unknown key)."""
        fields = {f.name for f in dataclasses.fields(cls.Options)}
        unknown = sorted(set(options) - fields)
        if unknown:
            raise ValueError(f"options.{unknown[0]}: unknown key (allowed: {', '.join(sorted(fields)) or 'none'})")
        return cls.Options(**options)

    @classmethod
    def complete_spec(cls, spec: PolicySpec) -> PolicySpec:
        """``spec`` with every option filled in (so its JSON names all of them)."""
        return dataclasses.replace(spec, options=dataclasses.asdict(cls.parse_options(spec.options)))

    @classmethod
    def check_spec(cls, spec: PolicySpec) -> None:
        """Raise ``ValueError`` when ``spec`` does not suit this kind (e.g. cameras it cannot read)."""

    @classmethod
    def check_runs(cls, spec: PolicySpec) -> None:
        """Raise ``ValueError`` naming what is wrong when a policy of ``spec`` cannot be built and run here; the
        CLI calls it before any node starts. The built-in kinds need nothing beyond :meth:`check_spec`; a kind
        built from outside code (``external``) builds itself and acts once."""

    @classmethod
    def kind_for(cls, kind: str, obs: str) -> str:
        """The kind to use for observation ``obs`` (``state`` | ``pixels``); most kinds serve both."""
        return kind

    def finish_build(self) -> None:
        """Called once the starting tensors are loaded (``spec.pretrained_policy``): a kind that trains only part
        of itself freezes the rest here (adapters go on top of the loaded weights)."""

    def reset(self) -> None:
        """Called at every episode start (clear any per-episode memory)."""

    def observation_batch(self, obs: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """ONE unbatched observation (``state`` float32[D], uint8 HxWx3 per camera) as a batch of one."""
        device = next(self.parameters()).device
        batch: dict[str, torch.Tensor] = {}
        for key, shape in self.spec.observation_shapes().items():
            if key not in obs:
                raise KeyError(f"observation has no {key!r} (has {sorted(obs)})")
            value = np.asarray(obs[key], dtype=np.float32 if key == "state" else np.uint8)
            if value.shape != shape:
                raise ValueError(f"observation {key!r} has shape {value.shape}, expected {shape}")
            batch[key] = torch.from_numpy(np.ascontiguousarray(value)).unsqueeze(0).to(device)
        return batch

    @torch.inference_mode()
    def act(self, obs: Mapping[str, np.ndarray], deterministic: bool = False) -> np.ndarray:
        """Action chunk (float32 H × A in [-1, 1]) for one unbatched observation."""
        chunk = self.act_batch(self.observation_batch(obs), deterministic)
        return chunk[0].reshape(self.spec.chunk_size, self.spec.action_dim).float().cpu().numpy()

    def act_batch(self, batch: Mapping[str, torch.Tensor], deterministic: bool) -> torch.Tensor:
        """Action chunks (N, H, A) for a batched observation dict."""
        raise NotImplementedError

    def imitation_loss(
        self,
        obs: Mapping[str, torch.Tensor],
        chunks: torch.Tensor,
        generator: torch.Generator | None = None,
        weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Behaviour-cloning loss (a scalar to minimise) of target action chunks (N, H, A) in [-1, 1]
        given a batched observation dict: what behaviour cloning and HG-DAgger train. ``weights`` (N,)
        weigh the rows (:func:`weighted_mean`; None: all equal)."""
        raise NotImplementedError(f"policy kind {self.spec.kind!r} has no imitation loss")


def weighted_mean(per_row: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """The mean of per-row losses (N,), each row counted ``weights[i]`` times (None: a plain mean)."""
    if weights is None:
        return per_row.mean()
    return (per_row * weights).sum() / weights.sum().clamp_min(1e-8)


def pre_tanh(actions: torch.Tensor, limit: float = 0.995) -> torch.Tensor:
    """atanh of actions clipped to ±``limit`` (a full-scale human command is ±1, whose atanh is infinite)."""
    return torch.atanh(actions.clamp(-limit, limit))


class StochasticPolicy(Policy):
    """A policy SAC-family algorithms can train: reparameterised single actions with log-probabilities."""

    def sample_from_features(
        self, features: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(action (N, A) in (-1, 1), log-prob (N,)) from encoder features, differentiable in both."""
        raise NotImplementedError

    def sample(
        self, obs: Mapping[str, torch.Tensor], generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised (action, log-prob) for a batched observation dict."""
        return self.sample_from_features(self.encoder(obs), generator)


POLICIES: Registry[Policy] = Registry("policies", "user_policies.policies", "policy kind")
"""Policy classes by kind."""


def policy_kinds() -> tuple[str, ...]:
    """Every registered policy kind."""
    return POLICIES.names()


def frozen_state(policy: nn.Module) -> dict[str, torch.Tensor]:
    """The tensors that take no gradient (a frozen encoder backbone), by ``state_dict`` name."""
    return {name: p for name, p in policy.named_parameters() if not p.requires_grad}


def build_policy(spec: PolicySpec, *, load_pretrained: bool = True, device: str | torch.device = "cpu") -> Policy:
    """Build the policy of ``spec.kind`` on ``device``; loads ``spec.pretrained_encoder`` and
    ``spec.pretrained_policy`` when set and asked, then lets the kind freeze what it does not train.

    A frozen backbone is the same in every process that builds the policy (a fixed-seed
    initialisation, or the pretrained file), so weights can leave it out (``frozen_sha256`` in
    :mod:`user_policies.weights_codec`). An actor receiving complete weights can skip the file
    (``load_pretrained=False``).
    """
    policy = POLICIES.get(spec.kind)(spec)
    if load_pretrained and spec.pretrained_encoder and spec.image_keys and policy.encoder is not None:
        policy.encoder.load_backbone(spec.pretrained_encoder)
    if load_pretrained and spec.pretrained_policy:
        from safetensors.torch import load_file

        try:
            policy.load_state_dict(load_file(spec.pretrained_policy))
        except RuntimeError as exc:
            raise ValueError(f"pretrained_policy {spec.pretrained_policy}: not this policy's tensors ({exc})") from exc
    policy.finish_build()
    return policy.to(device)
