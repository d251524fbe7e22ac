"""What a policy is, as data: the architecture an actor needs to rebuild a learner's network.

A :class:`PolicySpec` travels as JSON in ``PolicyWeights.metadata_json`` (key ``"policy_spec"``), so
an actor can build the exact module whose ``state_dict`` the payload holds.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Literal

SPEC_METADATA_KEY = "policy_spec"
"""Key of the spec's JSON inside ``PolicyWeights.metadata_json``."""


@dataclasses.dataclass(frozen=True)
class PolicySpec:
    """Architecture of a tanh-Gaussian actor (and of the observation encoder it shares with critics).

    ``kind="mlp"`` reads only ``state``; ``kind="cnn"`` also reads one uint8 HxWx3 image per camera
    through a ResNet-10-style backbone (shared across cameras) with a spatial learned embedding per camera.
    """

    state_dim: int
    action_dim: int
    kind: Literal["mlp", "cnn"] = "mlp"
    cameras: tuple[str, ...] = ()
    image_size: tuple[int, int] = (128, 128)
    hidden_dims: tuple[int, ...] = (256, 256)
    encoder: Literal["resnet10"] = "resnet10"
    pretrained_encoder: str | None = None
    freeze_encoder: bool = True
    image_latent_dim: int = 256
    state_latent_dim: int = 64
    spatial_features: int = 8
    log_std_min: float = -5.0
    log_std_max: float = 2.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "cameras", tuple(self.cameras))
        object.__setattr__(self, "image_size", tuple(int(s) for s in self.image_size))
        object.__setattr__(self, "hidden_dims", tuple(int(h) for h in self.hidden_dims))
        if self.state_dim <= 0 or self.action_dim <= 0:
            raise ValueError(f"state_dim and action_dim must be positive, got {self.state_dim}, {self.action_dim}")
        if self.kind not in ("mlp", "cnn"):
            raise ValueError(f"kind must be 'mlp' or 'cnn', got {self.kind!r}")
        if self.kind == "cnn" and not self.cameras:
            raise ValueError("kind 'cnn' needs at least one camera")
        if "state" in self.cameras or len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f"camera names must be unique and not 'state', got {self.cameras}")
        if len(self.image_size) != 2 or min(self.image_size) < 16:
            raise ValueError(f"image_size must be (H, W) with H, W >= 16, got {self.image_size}")
        if self.encoder != "resnet10":
            raise ValueError(f"encoder must be 'resnet10', got {self.encoder!r}")
        if not self.log_std_min < self.log_std_max:
            raise ValueError("log_std_min must be below log_std_max")

    @property
    def image_keys(self) -> tuple[str, ...]:
        """Camera names the policy reads (empty for ``kind="mlp"``)."""
        return self.cameras if self.kind == "cnn" else ()

    def observation_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of each unbatched observation entry: ``state`` (D,) and per camera (H, W, 3) uint8."""
        shapes: dict[str, tuple[int, ...]] = {"state": (self.state_dim,)}
        for cam in self.image_keys:
            shapes[cam] = (*self.image_size, 3)
        return shapes

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able mapping."""
        data = dataclasses.asdict(self)
        data["cameras"] = list(self.cameras)
        data["image_size"] = list(self.image_size)
        data["hidden_dims"] = list(self.hidden_dims)
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
