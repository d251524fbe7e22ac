"""What a policy is, as data: the architecture an actor needs to rebuild a learner's network.

A :class:`PolicySpec` travels as JSON in ``PolicyWeights.metadata_json`` (key ``"policy_spec"``), so
an actor can build the exact module whose ``state_dict`` the payload holds. The same dataclass is
the ``policy:`` section of an algorithm YAML, where the task supplies the dimensions and cameras
(:meth:`PolicySpec.for_task`) and ``options`` holds the fields of the policy kind's own options
dataclass (:attr:`user_policies.policies.base.Policy.Options`).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Literal

SPEC_METADATA_KEY = "policy_spec"
"""Key of the spec's JSON inside ``PolicyWeights.metadata_json``."""

TASK_FIELDS = ("state_dim", "action_dim", "cameras", "image_size", "instruction_slice")
"""Fields the task supplies (never written in an algorithm YAML)."""


@dataclasses.dataclass(frozen=True)
class PolicySpec:
    """A policy's kind, dimensions, observation encoder and kind-specific options.

    The observation encoder is shared by every kind: ``state`` alone when ``cameras`` is empty,
    else one uint8 HxWx3 image per camera through a ResNet-10-style backbone (shared across
    cameras) with a spatial learned embedding per camera, optionally after a trainable 1x1 convolution
    to ``reduced_channels`` channels (0: none; it shrinks what trains, and so each weights version, ~6x
    at 32 channels). ``chunk_size`` is the number of actions
    one inference returns (H); the actor re-plans every ``replan_every`` steps (0 = when the chunk
    is used up). ``instruction_slice`` (start, length) is where the state holds the task's instruction
    bytes (the ``instruction`` key; (0, 0): none), which a language-conditioned kind reads as tokens.
    ``pretrained_policy``: a local safetensors file of the whole policy to start from (e.g. a clone's
    ``policy.safetensors``); what stays frozen of it is never sent, only its sha256 (each side loads the
    file itself).
    """

    kind: str = "mlp"
    state_dim: int = 0
    action_dim: int = 0
    cameras: tuple[str, ...] = ()
    image_size: tuple[int, int] = (128, 128)
    chunk_size: int = 1
    replan_every: int = 0
    hidden_dims: tuple[int, ...] = (256, 256)
    encoder: Literal["resnet10"] = "resnet10"
    pretrained_encoder: str | None = None
    pretrained_policy: str | None = None
    freeze_encoder: bool = True
    image_latent_dim: int = 256
    state_latent_dim: int = 64
    spatial_features: int = 8
    reduced_channels: int = 0
    instruction_slice: tuple[int, int] = (0, 0)
    options: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cameras", tuple(self.cameras))
        object.__setattr__(self, "instruction_slice", tuple(int(i) for i in self.instruction_slice))
        object.__setattr__(self, "image_size", tuple(int(s) for s in self.image_size))
        object.__setattr__(self, "hidden_dims", tuple(int(h) for h in self.hidden_dims))
        object.__setattr__(self, "options", dict(self.options))
        if self.state_dim < 0 or self.action_dim < 0:
            raise ValueError(f"state_dim and action_dim must be positive, got {self.state_dim}, {self.action_dim}")
        if "state" in self.cameras or len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f"camera names must be unique and not 'state', got {self.cameras}")
        if len(self.image_size) != 2 or min(self.image_size) < 16:
            raise ValueError(f"image_size must be (H, W) with H, W >= 16, got {self.image_size}")
        if self.encoder != "resnet10":
            raise ValueError(f"encoder must be 'resnet10', got {self.encoder!r}")
        if self.reduced_channels < 0:
            raise ValueError(f"reduced_channels must be >= 0 (0: no reduction), got {self.reduced_channels}")
        start, length = self.instruction_slice
        if start < 0 or length < 0 or (length and start + length > self.state_dim):
            raise ValueError(f"instruction_slice {self.instruction_slice} lies outside the state ({self.state_dim})")
        if self.chunk_size < 1 or not 0 <= self.replan_every <= self.chunk_size:
            raise ValueError(
                f"need chunk_size >= 1 and 0 <= replan_every <= chunk_size, got {self.chunk_size}, {self.replan_every}"
            )

    def for_task(
        self,
        state_dim: int,
        action_dim: int,
        cameras: tuple[str, ...] = (),
        image_size: tuple[int, int] = (128, 128),
        instruction_slice: tuple[int, int] = (0, 0),
    ) -> PolicySpec:
        """This spec with a task's dimensions and cameras (pass no cameras for a state-only policy)."""
        if state_dim <= 0 or action_dim <= 0:
            raise ValueError(f"state_dim and action_dim must be positive, got {state_dim}, {action_dim}")
        return dataclasses.replace(self, state_dim=state_dim, action_dim=action_dim, cameras=tuple(cameras),
                                   image_size=tuple(image_size), instruction_slice=tuple(instruction_slice))

    @property
    def image_keys(self) -> tuple[str, ...]:
        """Camera names the policy reads (empty for a state-only policy)."""
        return self.cameras

    @property
    def steps_per_plan(self) -> int:
        """Actions executed from one chunk before the next inference."""
        return self.replan_every or self.chunk_size

    def observation_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of each unbatched observation entry: ``state`` (D,) and per camera (H, W, 3) uint8."""
        shapes: dict[str, tuple[int, ...]] = {"state": (self.state_dim,)}
        for cam in self.image_keys:
            shapes[cam] = (*self.image_size, 3)
        return shapes

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able mapping."""
        data = dataclasses.asdict(self)
        for key in ("cameras", "image_size", "hidden_dims", "instruction_slice"):
            data[key] = list(data[key])
        return data

    def to_json(self) -> str:
        """JSON text (sorted keys), the inverse of :meth:`from_json`."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PolicySpec:
        """Build from :meth:`to_dict` output; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown PolicySpec keys: {unknown}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> PolicySpec:
        """Parse :meth:`to_json` output."""
        return cls.from_dict(json.loads(text))
