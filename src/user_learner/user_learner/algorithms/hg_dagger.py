"""HG-DAgger (Kelly et al. 2019, "HG-DAgger: Interactive Imitation Learning with Human Experts"), as
the seed and RLinf run it on real robots: the policy acts, a human takes over when it goes wrong, and
the policy is trained by imitation on what the human did.

Online rows are the human-intervened steps only (the executed action is the human's), mixed at
``demo_ratio`` with the initial demos (the demo buffer; intervened steps are not copied into it).
Options RLinf users know: ``only_full_chunks`` (a row counts only if the H steps of the chunk it
starts were all intervened), ``only_successful`` (only steps of episodes that ended in success), and
``window`` (only the newest N of the rows left). The loss is the policy kind's own imitation loss
(:meth:`~user_policies.policies.base.Policy.imitation_loss`: squared error plus a spread-only
negative log-likelihood for Gaussian policies, flow matching for flow and chunked ones), so every
registered kind trains with it. Image policies see each camera image shifted by up to ``drq_pad``
pixels (DrQ's augmentation, in cloning too): cloned from a few demos without it, a VLA keyed on those
demos' pixels (BENCHMARKS.md).

Two corrections for what a person's SpaceMouse data looks like, both measured on sim pick-and-place
(BENCHMARKS.md): ``skip_idle`` leaves out intervened steps with every motion channel zero and the
gripper command unchanged from the observed gripper (the teleop's ``hold_s`` after the hands leave the
device: "stand still" is not what the person showed); ``gripper_change_weight`` counts a row whose
gripper command changes the observed gripper (close while open, open while closed) that many times.
The gripper channel is persistent, so on every other step it equals the observed state, and an
unweighted clone learns to copy the state and never toggles the gripper (one change in ~35 steps).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from user_learner.algorithms.base import ALGORITHMS, Algorithm
from user_learner.algorithms.update_metrics import UpdateMetrics
from user_learner.augment import augment_observation
from user_learner.replay_buffer import Batch, ReplayBuffer
from user_policies.observation import state_index
from user_robot.config_loader import FieldError, check_ranges
from user_robot.task_config import TaskConfig


@dataclasses.dataclass(frozen=True)
class HGDAggerConfig:
    """HG-DAgger's section of an algorithm YAML."""

    batch_size: int = 256
    lr: float = 1e-4
    weight_decay: float = 0.0
    grad_clip: float = 1.0  # max gradient norm (0 = no clipping)
    demo_ratio: float = 0.5  # share of every batch from the initial demos (all of it until a human intervenes)
    only_full_chunks: bool = False
    only_successful: bool = False
    window: int = 0  # only the newest N selected rows (0 = all)
    skip_idle: bool = True  # leave out intervened steps where the person's hands were off the device
    gripper_change_weight: float = 10.0  # weight of rows whose gripper command changes the gripper (1 = none)
    drq_pad: int = 4  # pixels: shift each trained image by up to this many pixels (DrQ; 0 = off)

    def __post_init__(self) -> None:
        check_ranges(self, positive=("batch_size", "lr"),
                     non_negative=("weight_decay", "grad_clip", "window", "drq_pad"))
        if not self.gripper_change_weight >= 1.0:
            raise FieldError("gripper_change_weight", f"must be >= 1, got {self.gripper_change_weight}")
        if not 0.0 <= self.demo_ratio <= 1.0:
            raise FieldError("demo_ratio", f"must be in [0, 1], got {self.demo_ratio}")


GRIPPER_OPEN_STATE = 0.5
"""The observed gripper (``gripper`` state key, -1 closed … +1 open) counts as open above this (¾ open)."""


def gripper_changes(state: np.ndarray | torch.Tensor, actions: np.ndarray | torch.Tensor, index: int,
                    threshold: float) -> np.ndarray | torch.Tensor:
    """Rows whose gripper command (the last action channel, close above +``threshold``, open below
    -``threshold``) would change the observed gripper at ``state[:, index]``."""
    opened = state[:, index] > GRIPPER_OPEN_STATE
    command = actions[:, -1]
    return (opened & (command > threshold)) | (~opened & (command < -threshold))


def idle_rows(state: np.ndarray, actions: np.ndarray, gripper_index: int | None, threshold: float) -> np.ndarray:
    """Rows where every motion channel is zero and the gripper command (if any) changes nothing: a
    teleop's hold time after the person let go of the device."""
    if gripper_index is None:
        return np.all(actions == 0.0, axis=1)
    still = np.all(actions[:, :-1] == 0.0, axis=1)
    return still & ~gripper_changes(state, actions, gripper_index, threshold)


def select_intervened(
    buffer: ReplayBuffer,
    chunk_size: int = 1,
    only_full_chunks: bool = False,
    only_successful: bool = False,
    window: int = 0,
    idle: tuple[int | None, float] | None = None,
) -> np.ndarray:
    """The rows of ``buffer`` HG-DAgger learns from (see the module docstring); ``idle`` (gripper state
    index, gripper threshold) leaves out :func:`idle_rows`."""
    rows = np.flatnonzero(buffer.valid & buffer.intervened)
    if idle is not None:
        rows = rows[~idle_rows(buffer.obs["state"][rows], buffer.action[rows], *idle)]
    if only_successful:
        rows = rows[buffer.success[rows]]
    if only_full_chunks and chunk_size > 1:
        _actions, intervened, complete = buffer.chunk_actions(rows, chunk_size)
        rows = rows[complete & intervened.all(axis=1)]
    if window:
        rows = buffer.newest(rows, window)
    return rows


def target_chunks(batch: Batch) -> torch.Tensor:
    """The batch's executed action chunks (N, H, A): ``action_chunk``, or its single actions as chunks of one."""
    chunks = batch.get("action_chunk")
    return batch["action"][:, None, :] if chunks is None else chunks


@ALGORITHMS.register("hg_dagger")
class HGDAgger(Algorithm):
    """Imitation of the human's takeovers (see the module docstring)."""

    Config = HGDAggerConfig
    intervened_steps_as_demos = False
    trains_on_demos_alone = True
    rollout_deterministic = True  # the novice acts with its mean: sampling toggled the binary gripper at random

    def build(self) -> None:
        cfg: HGDAggerConfig = self.cfg
        self.optimizers["policy"] = torch.optim.AdamW(
            [p for p in self.policy.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay
        )
        self.gripper: tuple[int | None, float] = (None, 0.5)  # (gripper state index, command threshold)
        self._selected: tuple[tuple[int, int], np.ndarray] | None = None  # ((buffer uid, mutations), rows)

    def bind_task(self, task: TaskConfig) -> None:
        """Where the observed gripper is in the state, if the task has a binary gripper channel."""
        binary = task.action.dims == 7 and task.action.gripper == "binary"
        self.gripper = (state_index(task, "gripper") if binary else None, task.action.gripper_threshold)
        self._selected = None

    def row_weights(self, batch: Batch) -> torch.Tensor | None:
        """Per-row loss weights: ``gripper_change_weight`` on rows whose command changes the gripper."""
        index, threshold = self.gripper
        if index is None or self.cfg.gripper_change_weight == 1.0:
            return None
        changes = gripper_changes(batch["obs"]["state"], target_chunks(batch)[:, 0], index, threshold)
        return 1.0 + (self.cfg.gripper_change_weight - 1.0) * changes.to(batch["action"].dtype)

    @property
    def rows_per_update(self) -> int:
        return self.cfg.batch_size

    @property
    def demo_ratio(self) -> float:
        return self.cfg.demo_ratio

    def select_online(self, buffer: ReplayBuffer) -> np.ndarray:
        """:func:`select_intervened` with this recipe's options, recomputed only when the buffer changed
        (every update asks twice; the selection reads every intervened row's state)."""
        key = (buffer.uid, buffer.mutations)
        if self._selected is None or self._selected[0] != key:
            cfg: HGDAggerConfig = self.cfg
            idle = self.gripper if cfg.skip_idle else None
            rows = select_intervened(buffer, self.spec.chunk_size, cfg.only_full_chunks, cfg.only_successful,
                                     cfg.window, idle)
            self._selected = (key, rows)
        return self._selected[1]

    def update(self, batch: Batch) -> UpdateMetrics:
        """One gradient step of the imitation loss on the batch's (intervened or demo) action chunks."""
        chunks = target_chunks(batch)
        self.policy.train()
        obs = augment_observation(batch["obs"], self.spec.image_keys, self.cfg.drq_pad, self.generator)
        loss = self.policy.imitation_loss(obs, chunks, self.generator, self.row_weights(batch))
        optimizer = self.optimizers["policy"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.cfg.grad_clip)
        optimizer.step()
        self.num_updates += 1
        stats = torch.stack([loss.detach(), batch["intervened"].float().mean()])
        return UpdateMetrics(("imitation_loss", "intervened_share"), stats)

    @torch.no_grad()
    def validation_metrics(self, batch: Batch) -> dict[str, float]:
        """On a batch it does not train on (held-out demos): the imitation ``loss`` and ``action_error``,
        the mean absolute error of the deterministic chunk (comparable across policy kinds)."""
        chunks = target_chunks(batch)
        self.policy.eval()
        loss = float(self.policy.imitation_loss(batch["obs"], chunks, self.generator))
        error = float((self.policy.act_batch(batch["obs"], deterministic=True) - chunks).abs().mean())
        return {"loss": loss, "action_error": error}
