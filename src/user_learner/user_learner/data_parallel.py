"""Data-parallel learning over several processes (``torchrun``): one learner, N ranks, one set of weights.

Rank 0 is the learner node (ROS, weights, checkpoints, TensorBoard); ranks 1..N-1 are followers
without ROS. Every rank holds the same replay data: rank 0 forwards, each round, the transitions it
received since the last as a :class:`Round` (:meth:`DataParallel.share`), and every rank ingests them at the same
point. Each rank samples its own shard of every batch (``rows_per_update / N`` rows, from its own
random stream) and runs the algorithm's update; gradients are averaged over the ranks while backward
accumulates them (a hook on every parameter an optimiser steps, the all-reduce that DDP does), so
clipping and the optimiser step see the gradient of the whole batch and all ranks take the same
step: the weights of one process updating on the concatenated shards, up to float summation order.
(Not the ``DistributedDataParallel`` wrapper: the algorithms call their networks' methods, such as
``encoder`` and ``sample_from_features``, not ``forward``.)

A rank that dies ends the others' next collective with an error; :class:`RankLostError` says which
collective and that the job stops, and ``torchrun`` names the dead rank. Nothing waits forever: the
process group has a timeout (``timeout_s``).
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import torch
import torch.distributed as dist

if TYPE_CHECKING:
    from user_learner.algorithms.base import Algorithm

T = TypeVar("T")


class RankLostError(RuntimeError):
    """Another rank of the data-parallel group is gone (or silent past the timeout): the job stops."""


@dataclasses.dataclass(frozen=True)
class Round:
    """What rank 0 tells the followers each round: new transitions (serialized), updates to run, stop."""

    transitions: tuple[bytes, ...] = ()
    updates: int = 0
    stop: bool = False


class DataParallel:
    """This process's place in the data-parallel group (see the module docstring)."""

    def __init__(self, rank: int, world_size: int) -> None:
        self.rank, self.world_size = rank, world_size

    @classmethod
    def from_env(cls, timeout_s: float = 60.0) -> DataParallel | None:
        """Join the group ``torchrun`` describes in the environment (``WORLD_SIZE`` > 1); None otherwise.

        The backend is NCCL when this process has a CUDA device, else gloo.
        """
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return None
        if not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            if backend == "nccl":
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
        return cls(dist.get_rank(), dist.get_world_size())

    @property
    def leader(self) -> bool:
        """Rank 0: the one that talks to ROS, publishes weights and writes checkpoints."""
        return self.rank == 0

    def shard_rows(self, rows: int) -> int:
        """Rows of a ``rows``-row batch that this rank samples."""
        if rows % self.world_size:
            raise ValueError(f"a batch of {rows} rows does not split over {self.world_size} ranks: choose a "
                             f"batch_size divisible by the number of ranks")
        return rows // self.world_size

    def _collective(self, what: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except (RuntimeError, dist.DistError) as exc:
            raise RankLostError(
                f"data-parallel learner, rank {self.rank} of {self.world_size}: {what} failed, another rank is gone "
                f"or silent ({str(exc).split('. ')[0] or type(exc).__name__}); the job stops "
                f"(restart it with --resume to go on from the newest checkpoint)"
            ) from exc

    def share(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (others pass anything)."""
        box = [value if self.leader else None]
        self._collective("sharing an object", lambda: dist.broadcast_object_list(box, src=0))
        return box[0]

    def attach(self, algorithm: Algorithm) -> None:
        """Give every rank rank 0's algorithm state (weights, optimiser moments, update count), a random stream of
        its own, and gradients averaged over the ranks as backward accumulates them."""
        state = algorithm.state_dict()
        layout = [(k, tuple(v.shape), str(v.dtype)) for k, v in sorted(state.items())]
        leader = self.share(layout)
        if leader != layout:
            differs = next((a, b) for a, b in zip([*leader, None], [*layout, None], strict=False) if a != b)
            raise ValueError(f"rank {self.rank}'s learner state differs from rank 0's ({differs[1]} where rank 0 has "
                             f"{differs[0]}): every rank must run the same task, algorithm and policy")
        for key, _, _ in layout:
            self._collective("sharing the starting weights", lambda t=state[key]: dist.broadcast(t, src=0))
        algorithm.load_state_dict(state)
        if self.rank:  # (rank 0 keeps its stream, a resumed one included)
            algorithm.generator.manual_seed(algorithm.generator.initial_seed() + self.rank)
        params = {id(p): p for opt in algorithm.optimizers.values() for g in opt.param_groups for p in g["params"]}
        for param in params.values():
            param.register_post_accumulate_grad_hook(self._average_grad)

    def _average_grad(self, param: torch.Tensor) -> None:
        self._collective("averaging gradients", lambda: dist.all_reduce(param.grad, op=dist.ReduceOp.SUM))
        param.grad.div_(self.world_size)

    def close(self) -> None:
        """Leave the group."""
        if dist.is_initialized():
            dist.destroy_process_group()
