"""Behaviour cloning from demo recordings: the policy HG-DAgger (or RL) starts from.

A :class:`~user_learner.learner_core.LearnerCore` running an imitation algorithm (``hg_dagger`` by
default) fills its demo buffer from the training episodes and trains on them alone (no robot, no
ROS graph); whole episodes are held out for a validation loss. The result is an ordinary learner
checkpoint: ``user-rl eval --checkpoint`` measures it and ``user-rl train --init`` starts from it;
``policy.safetensors`` beside it is the base a recipe fine-tunes part of (``policy.pretrained_policy``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from user_learner.bags.transition_bag import Episode, episode_records
from user_learner.episode_assembler import EpisodeAssembler
from user_learner.learner_core import LearnerCore
from user_learner.replay_buffer import MixedSampler, ReplayBuffer

POLICY_FILE = "policy.safetensors"
"""The clone's whole policy, beside its checkpoint (``policy.pretrained_policy`` of a fine-tuning recipe)."""


@dataclasses.dataclass(frozen=True)
class PretrainResult:
    """What a cloning run did."""

    checkpoint: Path
    policy_file: Path  # the whole policy's tensors: a ``pretrained_policy`` base to fine-tune part of
    train_episodes: int
    val_episodes: int
    demo_transitions: int
    updates: int
    train_loss: float
    val_before: dict[str, float]  # held-out loss and action error before training ({} without held-out episodes)
    val_after: dict[str, float]


def split_episodes(
    episodes: Sequence[Episode], val_fraction: float, seed: int
) -> tuple[list[Episode], list[Episode]]:
    """(train, validation): a seeded ``val_fraction`` of whole episodes held out, at least one episode kept
    for training, none held out from fewer than two."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    order = np.random.default_rng(seed).permutation(len(episodes))
    held = min(round(val_fraction * len(episodes)), len(episodes) - 1) if len(episodes) > 1 else 0
    val = {int(i) for i in order[:held]}
    return [e for i, e in enumerate(episodes) if i not in val], [e for i, e in enumerate(episodes) if i in val]


class Pretrainer:
    """Clones demos into ``core``'s policy; :meth:`run` trains, validates and checkpoints."""

    def __init__(self, core: LearnerCore, train: Sequence[Episode], val: Sequence[Episode]) -> None:
        if not core.algorithm.trains_on_demos_alone or not hasattr(core.algorithm, "validation_metrics"):
            raise ValueError(f"algorithm {core.cfg.algorithm!r} does not clone demos (use hg_dagger)")
        if not train:
            raise ValueError("no complete demo episode to train on")
        self.core = core
        self.train_episodes, self.val_episodes = len(train), len(val)
        self.demo_transitions = core.add_demos(episode_records(train))
        self.val_sampler: MixedSampler | None = None
        if val:
            shapes = core.spec.observation_shapes()
            buffer = ReplayBuffer(max(2, sum(len(e.steps) + 1 for e in val)), shapes, core.task.action.dims)
            assembler = EpisodeAssembler()
            for record in episode_records(val):
                for t in assembler.add(dataclasses.replace(record, obs=core.keep_observation(dict(record.obs))))[0]:
                    buffer.add(t.obs, t.action, t.reward, t.next_obs, t.done, t.intervened, stream=t.robot_id)
            self.val_sampler = MixedSampler(buffer, None, 0.0, chunk_size=core.spec.chunk_size)

    def validation(self, batches: int = 4) -> dict[str, float]:
        """Mean held-out ``loss`` and ``action_error`` over ``batches`` seeded batches ({} without)."""
        if self.val_sampler is None:
            return {}
        rng = np.random.default_rng(0)  # the same batches every time: the curve shows the policy, not the draw
        rows, algorithm = self.core.algorithm.rows_per_update, self.core.algorithm
        metrics = [
            algorithm.validation_metrics(self.val_sampler.sample(rows, rng, self.core.device))  # type: ignore[attr-defined]
            for _ in range(batches)
        ]
        return {key: float(np.mean([m[key] for m in metrics])) for key in metrics[0]}

    def run(
        self, updates: int, validate_every: int = 200, advance: Callable[[dict], None] = lambda _m: None
    ) -> PretrainResult:
        """Train ``updates`` steps (validating every ``validate_every``), then checkpoint."""
        first = self.validation()
        val, recent = first, []

        def take(metrics: Mapping[str, float]) -> None:
            recent.append(metrics["imitation_loss"])
            del recent[:-50]
            advance({"loss": float(np.mean(recent)), **{f"val_{k}": v for k, v in val.items()}})

        pending = None  # the last update's metrics, read once the next update is queued (no device sync per update)
        for i in range(1, updates + 1):
            metrics = self.core.update()
            if pending is not None:
                take(pending)
            pending = metrics
            if i % validate_every == 0 or i == updates:
                val = self.validation()
                self.core.scalars({f"pretrain/val_{k}": v for k, v in val.items()}, self.core.counters.updates)
        if pending is not None:
            take(pending)
        from safetensors.torch import save_file

        policy_file = self.core.log_dir / POLICY_FILE
        save_file({k: v.contiguous() for k, v in self.core.algorithm.policy.state_dict().items()}, str(policy_file))
        return PretrainResult(
            checkpoint=self.core.save(),
            policy_file=policy_file,
            train_episodes=self.train_episodes,
            val_episodes=self.val_episodes,
            demo_transitions=self.demo_transitions,
            updates=self.core.counters.updates,
            train_loss=float(np.mean(recent)) if recent else float("nan"),
            val_before=first,
            val_after=val,
        )
