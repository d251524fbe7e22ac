"""An "outside" model for the ``external`` policy kind: a torch module that knows nothing of USER.

It stands for a model from another code base (an openpi or LeRobot π0, your lab's network): built
from keyword arguments, its weights in a safetensors file, called with a dict of batched tensors and
returning action chunks. Use it with the recipe section

    policy:
      kind: external
      chunk_size: 4
      options:
        module: tiny_chunker:TinyChunker      # importable on every machine (PYTHONPATH or installed)
        config: {state_dim: 18, action_dim: 6, chunk_size: 4}   # peg insertion's state and action sizes
        weights: models/tiny_chunker.safetensors   # a local file on every machine (empty: fresh init)
"""

from __future__ import annotations

import torch
from torch import nn


class TinyChunker(nn.Module):
    """State → a chunk of ``chunk_size`` actions (tanh), with its own training loss (Huber)."""

    def __init__(self, state_dim: int, action_dim: int, chunk_size: int, width: int = 64) -> None:
        super().__init__()
        self.shape = (chunk_size, action_dim)
        self.net = nn.Sequential(nn.Linear(state_dim, width), nn.GELU(), nn.Linear(width, chunk_size * action_dim))

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Chunks (N, chunk_size, action_dim) in (-1, 1)."""
        return torch.tanh(self.net(obs["state"])).view(-1, *self.shape)

    def loss(self, obs: dict[str, torch.Tensor], chunks: torch.Tensor) -> torch.Tensor:
        """Per-row Huber loss against target chunks."""
        return nn.functional.smooth_l1_loss(self(obs), chunks, reduction="none").flatten(1).mean(-1)
