"""Bring your own model: a torch module from your own package, with its weights from a local file.

``options.module`` names the class (``package.module:Class``), ``options.config`` its keyword
arguments (JSON) and ``options.weights`` a local safetensors file of its ``state_dict`` (empty: its
own initialisation). Every process that builds the policy (learner, actors, ``eval``) imports the
class and reads the file itself: only the options travel in the weights message's spec, and the
file is never sent. The module's contract:

- ``forward(obs)``: ``obs`` a dict of batched tensors (``state`` float32 (N, D); each camera uint8
  (N, H, W, 3)) → action chunks (N, chunk_size, action_dim) in [-1, 1];
- optionally ``loss(obs, chunks)`` → per-row loss (N,) for target chunks (its own objective, e.g.
  flow matching); without it cloning and HG-DAgger regress the chunk (squared error);
- optionally ``reset()`` at every episode start.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from user_policies.policies.base import POLICIES, Policy, weighted_mean
from user_policies.policy_spec import PolicySpec


@dataclasses.dataclass(frozen=True)
class ExternalOptions:
    """Which module, built how, from which file."""

    module: str = ""
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    weights: str = ""


def load_class(path: str) -> type:
    """The class ``package.module:Class`` names (``ValueError`` naming what is missing)."""
    module_name, _, class_name = path.partition(":")
    if not module_name or not class_name:
        raise ValueError(f"options.module: expected 'package.module:Class', got {path!r}")
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"options.module {path!r} cannot be imported here: {exc}") from exc


@POLICIES.register("external")
class ExternalPolicy(Policy):
    """See the module docstring."""

    Options = ExternalOptions
    shared_encoder = False

    def __init__(self, spec: PolicySpec) -> None:
        super().__init__(spec)
        o: ExternalOptions = self.options
        model_class = load_class(o.module)
        try:
            self.model = model_class(**o.config)
        except TypeError as exc:  # (a keyword the class does not take, or one it needs)
            raise ValueError(f"options.config does not build {o.module}: {exc}") from exc
        if o.weights:
            from safetensors.torch import load_file

            if not Path(o.weights).is_file():
                raise ValueError(f"options.weights: no such file {o.weights!r} (a local safetensors file of "
                                 f"{o.module}'s state_dict)")
            try:
                self.model.load_state_dict(load_file(o.weights))
            except RuntimeError as exc:  # (missing or unexpected keys, other shapes)
                raise ValueError(f"options.weights {o.weights!r} does not fit {o.module} built from options.config: "
                                 f"{exc}") from exc

    @classmethod
    def check_runs(cls, spec: PolicySpec) -> None:
        """Build the model and act once on a zero observation of ``spec``'s sizes, so that a module that cannot
        be imported, a file that does not fit or a model of other sizes is named before any node starts."""
        policy = cls(spec)
        obs = {key: torch.zeros((1, *shape), dtype=torch.float32 if key == "state" else torch.uint8)
               for key, shape in spec.observation_shapes().items()}
        try:
            with torch.no_grad():
                policy.act_batch(obs, deterministic=True)
        except ValueError:
            raise
        except Exception as exc:  # (the outside model's own error, e.g. a matmul of other sizes)
            sizes = ", ".join(f"{key} {tuple(shape)}" for key, shape in spec.observation_shapes().items())
            raise ValueError(f"{policy.options.module} fails on this task's observation ({sizes}; action "
                             f"{spec.action_dim} x chunk {spec.chunk_size}): {type(exc).__name__}: {exc}") from exc

    def reset(self) -> None:
        """The model's own ``reset``, if it has one."""
        if hasattr(self.model, "reset"):
            self.model.reset()

    def act_batch(self, batch: Mapping[str, torch.Tensor], deterministic: bool) -> torch.Tensor:
        """The model's chunks, checked for shape and clipped to [-1, 1]."""
        chunks = self.model(dict(batch))
        expected = (chunks.shape[0], self.spec.chunk_size, self.spec.action_dim)
        if tuple(chunks.shape) != expected:
            raise ValueError(f"{self.options.module} returned chunks of shape {tuple(chunks.shape)}, expected "
                             f"{expected} (batch, chunk_size, action_dim)")
        return chunks.clamp(-1.0, 1.0)

    def imitation_loss(
        self,
        obs: Mapping[str, torch.Tensor],
        chunks: torch.Tensor,
        generator: torch.Generator | None = None,
        weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The model's ``loss`` per row, or the squared error of its chunks."""
        if hasattr(self.model, "loss"):
            per_row = self.model.loss(dict(obs), chunks)
        else:
            per_row = (self.model(dict(obs)) - chunks).pow(2).flatten(1).mean(-1)
        return weighted_mean(per_row, weights)
