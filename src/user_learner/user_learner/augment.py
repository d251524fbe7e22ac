"""DrQ image augmentation: per-sample random shift (replicate-pad then crop), batched, on the batch's device."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch


def random_shift(images: torch.Tensor, pad: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Shift each image of (N, H, W, C) by a random integer offset in [-pad, pad]², edges replicated.

    Equals padding by ``pad`` with edge replication and a random HxW crop (DrQ); any dtype (uint8 too).
    """
    if pad <= 0:
        return images
    n, h, w = images.shape[:3]
    device = images.device
    shifts = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator, device=device) - pad
    rows = (torch.arange(h, device=device) + shifts[:, :1]).clamp_(0, h - 1)
    cols = (torch.arange(w, device=device) + shifts[:, 1:]).clamp_(0, w - 1)
    batch = torch.arange(n, device=device)[:, None, None]
    return images[batch, rows[:, :, None], cols[:, None, :]]


def augment_observation(
    obs: Mapping[str, torch.Tensor], cameras: Iterable[str], pad: int, generator: torch.Generator | None = None
) -> dict[str, torch.Tensor]:
    """Copy of ``obs`` with :func:`random_shift` applied to each camera image."""
    out = dict(obs)
    for cam in cameras:
        out[cam] = random_shift(obs[cam], pad, generator)
    return out
