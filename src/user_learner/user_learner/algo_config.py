"""Schema of ``config/algorithms/<name>.yaml``.

Load with ``user_robot.config_loader.load("algorithms", name, AlgorithmConfig)``.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from user_learner.algorithms.sac import SACConfig
from user_policies.policy_spec import PolicySpec


@dataclasses.dataclass(frozen=True)
class PolicyConfig:
    """Policy architecture choices; the task supplies dimensions and cameras (see :meth:`make_spec`)."""

    kind: Literal["mlp", "cnn"] = "mlp"
    hidden_dims: tuple[int, ...] = (256, 256)
    encoder: Literal["resnet10"] = "resnet10"
    pretrained_encoder: str | None = None
    freeze_encoder: bool = True
    image_latent_dim: int = 256
    state_latent_dim: int = 64
    spatial_features: int = 8

    def make_spec(
        self, state_dim: int, action_dim: int, cameras: tuple[str, ...] = (), image_size: tuple[int, int] = (128, 128)
    ) -> PolicySpec:
        """The :class:`PolicySpec` for a task; ``kind="mlp"`` ignores cameras (state-only policy)."""
        return PolicySpec(
            state_dim=state_dim,
            action_dim=action_dim,
            kind=self.kind,
            cameras=tuple(cameras) if self.kind == "cnn" else (),
            image_size=tuple(image_size),  # type: ignore[arg-type]
            hidden_dims=self.hidden_dims,
            encoder=self.encoder,
            pretrained_encoder=self.pretrained_encoder,
            freeze_encoder=self.freeze_encoder,
            image_latent_dim=self.image_latent_dim,
            state_latent_dim=self.state_latent_dim,
            spatial_features=self.spatial_features,
        )


@dataclasses.dataclass(frozen=True)
class AlgorithmConfig:
    """A learner recipe: the algorithm, its hyperparameters, buffers, publishing and checkpointing.

    ``utd`` is the target number of :meth:`SAC.update` calls per received transition (the learner
    throttles to it; 0 means update as fast as possible). Each update itself does
    ``sac.critic_actor_ratio`` critic steps and one actor step.
    """

    algorithm: Literal["sac", "rlpd"]
    sac: SACConfig = dataclasses.field(default_factory=SACConfig)
    policy: PolicyConfig = dataclasses.field(default_factory=PolicyConfig)
    utd: float = 1.0
    min_buffer: int = 100
    buffer_capacity: int = 200_000
    demo_capacity: int = 50_000
    demo_ratio: float = 0.0
    publish_every: int = 25
    publish_dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    checkpoint_every: int = 1000

    def __post_init__(self) -> None:
        if self.algorithm == "rlpd" and not 0.0 < self.demo_ratio < 1.0:
            raise ValueError("rlpd needs 0 < demo_ratio < 1 (0.5 = RLPD's symmetric sampling)")
        if self.algorithm == "sac" and self.demo_ratio != 0.0:
            raise ValueError("sac samples online data only: demo_ratio must be 0 (use algorithm: rlpd)")
        if self.utd < 0 or self.min_buffer < 1 or self.publish_every < 1 or self.checkpoint_every < 1:
            raise ValueError("need utd >= 0 and min_buffer, publish_every, checkpoint_every >= 1")
        if self.buffer_capacity < 2 or self.demo_capacity < 2:
            raise ValueError("buffer capacities must be at least 2")
