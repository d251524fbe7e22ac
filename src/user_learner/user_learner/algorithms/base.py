"""The algorithm seam: one interface for every learning algorithm, and the registry by name.

An algorithm is built from its YAML section (its ``Config`` dataclass) and the policy spec; the
learner core asks it how many rows one update consumes, which share of them comes from the demo
buffer and which online rows count (:meth:`Algorithm.select_online`), samples that batch, calls
:meth:`Algorithm.update` (→ metrics), publishes :meth:`Algorithm.publish_state` and checkpoints
:meth:`Algorithm.state_dict`.

Checkpoint state is generic: every module in :meth:`Algorithm.checkpoint_modules`, every optimiser
in ``self.optimizers``, the torch generator, the update count and :meth:`Algorithm.extra_state`,
as flat tensors (safetensors-ready, no pickle).

Add an algorithm: subclass :class:`Algorithm` in a module of ``user_learner/algorithms/`` (or a
module named in ``$USER_PLUGINS``), decorate it with ``@ALGORITHMS.register("<name>")`` and write
``config/algorithms/<name>.yaml`` with ``algorithm: <name>`` and a ``<name>:`` section.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from user_learner.replay_buffer import Batch, ImageSource, ReplayBuffer
from user_policies.policies.base import Policy, build_policy
from user_policies.policy_spec import PolicySpec
from user_policies.registry import Registry
from user_robot.task_config import TaskConfig


@dataclasses.dataclass(frozen=True)
class NoConfig:
    """An algorithm without settings of its own."""


class Algorithm:
    """Base class of every learning algorithm (see the module docstring)."""

    Config: ClassVar[type] = NoConfig
    """Dataclass of the algorithm's YAML section."""
    policy_class: ClassVar[type[Policy]] = Policy
    """Policies this algorithm can train (instances of this class)."""

    def __init__(self, cfg: Any, spec: PolicySpec, device: str | torch.device = "cpu", seed: int = 0) -> None:
        self.cfg, self.spec, self.device = cfg, spec, torch.device(device)
        self.num_updates = 0
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        with torch.random.fork_rng(devices=[]):  # seeded init (on CPU) without touching the global RNG
            torch.manual_seed(seed)
            self.policy = build_policy(spec, device=self.device)
            if not isinstance(self.policy, self.policy_class):
                raise ValueError(
                    f"{type(self).__name__} trains {self.policy_class.__name__}s; policy kind {spec.kind!r} is a "
                    f"{type(self.policy).__name__}"
                )
            self.build()

    def build(self) -> None:
        """Create networks (other than the policy) and optimisers; runs under the seeded RNG."""

    def bind_task(self, task: TaskConfig) -> None:
        """Take what the algorithm needs to know of the task it learns (the learner calls it once)."""

    @property
    def rows_per_update(self) -> int:
        """Batch rows one :meth:`update` consumes."""
        raise NotImplementedError

    intervened_steps_as_demos: ClassVar[bool] = True
    """Whether every human-intervened online step also joins the demo buffer (HIL-SERL's RLPD)."""
    trains_on_demos_alone: ClassVar[bool] = False
    """Whether training may start from demos before ``min_buffer`` online rows exist."""
    rollout_deterministic: ClassVar[bool] = False
    """Whether the actors act with the policy's deterministic action in training episodes too (an
    algorithm that does not explore, such as imitation)."""

    @property
    def demo_ratio(self) -> float:
        """Share of every batch drawn from the demo buffer (0 = online data only, no demo buffer)."""
        return 0.0

    @property
    def batch_images(self) -> bool:
        """Whether batches must carry their images (False: :meth:`update` fetches the few it needs, e.g. those
        not yet in a frozen backbone's cache, through :attr:`image_source`, which the learner sets)."""
        return True

    @property
    def device_bytes_per_row(self) -> int:
        """Device memory this algorithm keeps per stored observation row (e.g. a backbone cache's maps);
        the learner counts it when it decides where replay images fit."""
        return 0

    image_source: ImageSource | None = None

    def select_online(self, buffer: ReplayBuffer) -> np.ndarray | None:
        """The online rows batches are drawn from (None = every valid transition)."""
        return None

    def update(self, batch: Batch) -> Mapping[str, float]:
        """One learner update on :attr:`rows_per_update` rows; returns scalar metrics by name (on a GPU, an
        :class:`~user_learner.algorithms.update_metrics.UpdateMetrics`: nothing waits for the device until
        they are read)."""
        raise NotImplementedError

    def publish_state(self) -> dict[str, torch.Tensor]:
        """The tensors the actors load: the policy's ``state_dict``."""
        return self.policy.state_dict()

    def checkpoint_modules(self) -> dict[str, nn.Module]:
        """Modules saved in checkpoints, by prefix."""
        return {"policy": self.policy}

    def extra_state(self) -> dict[str, torch.Tensor]:
        """Further tensors to checkpoint (e.g. a temperature)."""
        return {}

    def load_extra_state(self, tensors: Mapping[str, torch.Tensor]) -> None:
        """Restore :meth:`extra_state`."""

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Everything needed to resume exactly, as flat tensors."""
        out: dict[str, torch.Tensor] = {}
        for prefix, module in self.checkpoint_modules().items():
            out.update({f"{prefix}.{k}": v for k, v in module.state_dict().items()})
        out.update({f"extra.{k}": v for k, v in self.extra_state().items()})
        out["num_updates"] = torch.tensor(self.num_updates, dtype=torch.int64)
        out["generator"] = self.generator.get_state()
        for name, opt in self.optimizers.items():
            for index, state in opt.state_dict()["state"].items():
                for key, value in state.items():
                    out[f"optim.{name}.{index}.{key}"] = torch.as_tensor(value)
        return {k: v.detach().contiguous() for k, v in out.items()}

    def load_state_dict(self, tensors: Mapping[str, torch.Tensor]) -> None:
        """Restore from :meth:`state_dict` (strict on module keys)."""
        for prefix, module in self.checkpoint_modules().items():
            sub = {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
            module.load_state_dict(sub, strict=True)
        self.load_extra_state({k[len("extra.") :]: v for k, v in tensors.items() if k.startswith("extra.")})
        self.num_updates = int(tensors["num_updates"])
        self.generator.set_state(tensors["generator"].cpu())
        for name, opt in self.optimizers.items():
            state: dict[int, dict[str, torch.Tensor]] = {}
            for key, value in tensors.items():
                if key.startswith(f"optim.{name}."):
                    index, field = key[len(f"optim.{name}.") :].split(".", 1)
                    state.setdefault(int(index), {})[field] = value
            opt.load_state_dict({"state": state, "param_groups": opt.state_dict()["param_groups"]})


ALGORITHMS: Registry[Algorithm] = Registry("algorithms", "user_learner.algorithms", "algorithm")
"""Algorithm classes by name."""


def algorithm_names() -> tuple[str, ...]:
    """Every registered algorithm name."""
    return ALGORITHMS.names()
