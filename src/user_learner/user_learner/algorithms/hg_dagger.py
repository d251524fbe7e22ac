"""HG-DAgger (Kelly et al. 2019, "HG-DAgger: Interactive Imitation Learning with Human Experts"), as
the seed and RLinf run it on real robots: the policy acts, a human takes over when it goes wrong, and
the policy is trained by imitation on what the human did.

Online rows are the human-intervened steps only (the executed action is the human's), mixed at
``demo_ratio`` with the initial demos (the demo buffer; intervened steps are not copied into it).
Options RLinf users know: ``only_full_chunks`` (a row counts only if the H steps of the chunk it
starts were all intervened), ``only_successful`` (only steps of episodes that ended in success), and
``window`` (only the newest N of the rows left). The loss is the policy kind's own imitation loss
(:meth:`~user_policies.policies.base.Policy.imitation_loss`: negative log-likelihood for Gaussian
policies, flow matching for flow and chunked ones), so every registered kind trains with it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from user_learner.algorithms.base import ALGORITHMS, Algorithm
from user_learner.replay_buffer import Batch, ReplayBuffer


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

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.lr <= 0 or self.window < 0 or self.grad_clip < 0:
            raise ValueError("need batch_size >= 1, lr > 0, window >= 0 and grad_clip >= 0")
        if not 0.0 <= self.demo_ratio <= 1.0:
            raise ValueError(f"demo_ratio must be in [0, 1], got {self.demo_ratio}")


def select_intervened(
    buffer: ReplayBuffer,
    chunk_size: int = 1,
    only_full_chunks: bool = False,
    only_successful: bool = False,
    window: int = 0,
) -> np.ndarray:
    """The rows of ``buffer`` HG-DAgger learns from (see the module docstring)."""
    rows = np.flatnonzero(buffer.valid & buffer.intervened)
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

    def build(self) -> None:
        cfg: HGDAggerConfig = self.cfg
        self.optimizers["policy"] = torch.optim.AdamW(
            self.policy.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
        )

    @property
    def rows_per_update(self) -> int:
        return self.cfg.batch_size

    @property
    def demo_ratio(self) -> float:
        return self.cfg.demo_ratio

    def select_online(self, buffer: ReplayBuffer) -> np.ndarray:
        cfg: HGDAggerConfig = self.cfg
        return select_intervened(buffer, self.spec.chunk_size, cfg.only_full_chunks, cfg.only_successful, cfg.window)

    def update(self, batch: Batch) -> dict[str, float]:
        """One gradient step of the imitation loss on the batch's (intervened or demo) action chunks."""
        chunks = target_chunks(batch)
        self.policy.train()
        loss = self.policy.imitation_loss(batch["obs"], chunks, self.generator)
        optimizer = self.optimizers["policy"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.cfg.grad_clip)
        optimizer.step()
        self.num_updates += 1
        return {"imitation_loss": float(loss.detach()), "intervened_share": float(batch["intervened"].float().mean())}

    @torch.no_grad()
    def validation_metrics(self, batch: Batch) -> dict[str, float]:
        """On a batch it does not train on (held-out demos): the imitation ``loss`` and ``action_error``,
        the mean absolute error of the deterministic chunk (comparable across policy kinds)."""
        chunks = target_chunks(batch)
        self.policy.eval()
        loss = float(self.policy.imitation_loss(batch["obs"], chunks, self.generator))
        error = float((self.policy.act_batch(batch["obs"], deterministic=True) - chunks).abs().mean())
        return {"loss": loss, "action_error": error}
