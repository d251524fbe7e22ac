"""DrQ random shift equals replicate-pad + random crop, per sample, any dtype."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from user_learner.augment import augment_observation, random_shift


def test_each_output_is_a_crop_of_the_replicate_padded_input() -> None:
    pad = 4
    images = torch.randint(0, 256, (16, 12, 10, 3), dtype=torch.uint8)
    shifted = random_shift(images, pad, torch.Generator().manual_seed(0))
    assert shifted.dtype == torch.uint8 and shifted.shape == images.shape
    padded = F.pad(images.permute(0, 3, 1, 2).float(), (pad,) * 4, mode="replicate").permute(0, 2, 3, 1)
    offsets = set()
    for i in range(16):
        matches = [(dy, dx) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)
                   if torch.equal(padded[i, dy:dy + 12, dx:dx + 10].to(torch.uint8), shifted[i])]
        assert matches, f"sample {i} is not a shifted crop"
        offsets.add(matches[0])
    assert len(offsets) > 4  # shifts differ across the batch


def test_zero_pad_is_identity_and_state_is_untouched() -> None:
    images = torch.randint(0, 256, (2, 8, 8, 3), dtype=torch.uint8)
    assert random_shift(images, 0) is images
    obs = {"state": torch.randn(2, 3), "cam": images}
    out = augment_observation(obs, ["cam"], 2, torch.Generator().manual_seed(1))
    assert out["state"] is obs["state"] and out["cam"].shape == images.shape and obs["cam"] is images
