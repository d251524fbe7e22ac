"""Frozen-backbone cache: same features as recomputing, computed once per stored image, refreshed on overwrite."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from user_learner.algorithms.backbone_cache import BackboneCache
from user_learner.algorithms.sac import SAC, SACConfig
from user_learner.replay_buffer import MixedSampler, ReplayBuffer
from user_policies.policies.base import build_policy
from user_policies.policy_spec import PolicySpec

torch.set_num_threads(1)
SPEC = PolicySpec(state_dim=3, action_dim=2, kind="cnn", cameras=("wrist", "front"), image_size=(32, 32),
                  hidden_dims=(16, 16), image_latent_dim=16, state_latent_dim=8)


def add_episode(buf: ReplayBuffer, rng: np.random.Generator, length: int) -> None:
    def obs() -> dict[str, np.ndarray]:
        out = {c: rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for c in SPEC.cameras}
        return out | {"state": rng.normal(size=3).astype(np.float32)}

    current = obs()
    for t in range(length):
        nxt = obs()
        buf.add(current, rng.uniform(-1, 1, 2), 0.0, nxt, t == length - 1)
        current = nxt


def test_cached_maps_match_the_backbone_and_are_computed_once() -> None:
    torch.manual_seed(0)
    encoder = build_policy(SPEC).encoder
    cache = BackboneCache(encoder)
    rng = np.random.default_rng(0)
    buf = ReplayBuffer(40, SPEC.observation_shapes(), 2)
    add_episode(buf, rng, 10)
    batch = buf.gather(np.flatnonzero(buf.valid))
    with torch.no_grad():
        expected = encoder(batch["obs"])
        got = encoder(batch["obs"], cache.maps(batch["obs"], batch["obs_ref"]))
        torch.testing.assert_close(got, expected, atol=2e-2, rtol=0)
        assert cache.computed == 10
        cache.maps(batch["next_obs"], batch["next_obs_ref"])
        assert cache.computed == 11  # next_obs rows are the following obs rows, plus the final observation
        cache.maps(batch["obs"], batch["obs_ref"])
        assert cache.computed == 11

        add_episode(buf, rng, 35)  # wraps the ring: old rows get new content and generations
        batch = buf.gather(np.flatnonzero(buf.valid))
        before = cache.computed
        torch.testing.assert_close(encoder(batch["obs"], cache.maps(batch["obs"], batch["obs_ref"])),
                                   encoder(batch["obs"]), atol=2e-2, rtol=0)
        assert len(batch["action"]) == 38  # 35 new transitions + 3 of the first episode still in the ring
        assert cache.computed - before == 35  # only the new ones (rows reused with a new generation included)


def test_mixed_buffers_are_kept_apart_and_stale_ones_dropped() -> None:
    encoder = build_policy(SPEC).encoder
    cache = BackboneCache(encoder)
    rng = np.random.default_rng(1)
    online, demo = ReplayBuffer(30, SPEC.observation_shapes(), 2), ReplayBuffer(30, SPEC.observation_shapes(), 2)
    add_episode(online, rng, 8)
    add_episode(demo, rng, 8)
    batch = MixedSampler(online, demo, 0.5).sample(16, rng)
    with torch.no_grad():
        torch.testing.assert_close(encoder(batch["obs"], cache.maps(batch["obs"], batch["obs_ref"])),
                                   encoder(batch["obs"]), atol=2e-2, rtol=0)
    cache.retain(torch.tensor([online.uid]))
    assert set(cache._stores) == {online.uid}


def test_sac_with_cache_matches_sac_without_drq_and_skips_the_backbone() -> None:
    cfg = SACConfig(batch_size=8, num_critics=3, critic_hidden_dims=(16, 16), drq_pad=0)
    rng = np.random.default_rng(2)
    buf = ReplayBuffer(64, SPEC.observation_shapes(), 2)
    add_episode(buf, rng, 30)
    plain, cached = SAC(cfg, SPEC, seed=0), SAC(dataclasses.replace(cfg, cache_backbone=True), SPEC, seed=0)
    batch = buf.sample(plain.rows_per_update, rng)
    first_plain, first_cached = plain.update(batch), cached.update(batch)
    for key, value in first_plain.items():
        assert first_cached[key] == pytest.approx(value, rel=2e-2, abs=1e-3), key
    computed = cached.backbone_cache.computed
    cached.update(batch)
    assert cached.backbone_cache.computed == computed  # the second pass over the same rows is all hits
    cached.load_state_dict(plain.state_dict())
    assert not cached.backbone_cache._stores  # weights replaced: cache cleared


def test_cache_needs_a_frozen_backbone() -> None:
    spec = dataclasses.replace(SPEC, freeze_encoder=False)
    with pytest.raises(ValueError, match="frozen backbone"):
        SAC(SACConfig(cache_backbone=True), spec)
