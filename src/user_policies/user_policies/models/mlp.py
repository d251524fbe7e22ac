"""LayerNorm MLP: Linear → LayerNorm → ReLU per hidden layer (the SERL/RLPD critic and actor trunk)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class MLP(nn.Module):
    """``in_dim`` → hidden layers (each Linear, LayerNorm, ReLU) → optional linear ``out_dim``."""

    def __init__(self, in_dim: int, hidden_dims: Sequence[int], out_dim: int | None = None, layer_norm: bool = True):
        super().__init__()
        layers: list[nn.Module] = []
        last = in_dim
        for width in hidden_dims:
            layers += [nn.Linear(last, width), nn.LayerNorm(width) if layer_norm else nn.Identity(), nn.ReLU()]
            last = width
        if out_dim is not None:
            layers.append(nn.Linear(last, out_dim))
            last = out_dim
        self.net = nn.Sequential(*layers)
        self.out_dim = last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (..., in_dim) to (..., out_dim)."""
        return self.net(x)
