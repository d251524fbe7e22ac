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


def add_episode(buffer: ReplayBuffer, rng: np.random.Generator, length: int) -> None:
    """An episode of random observations of the buffer's shapes."""
    def obs() -> dict[str, np.ndarray]:
        return {k: (rng.normal(size=s).astype(np.float32) if k == "state" else rng.integers(0, 256, s, dtype=np.uint8))
                for k, s in buffer.obs_shapes.items()}

    current = obs()
    for t in range(length):
        nxt = obs()
        buffer.add(current, rng.uniform(-1, 1, buffer.action_dim), 0.0, nxt, t == length - 1)
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


def test_a_row_drawn_more_than_once_is_computed_once_and_read_for_every_draw() -> None:
    encoder = build_policy(SPEC).encoder
    cache = BackboneCache(encoder)
    buf = ReplayBuffer(40, SPEC.observation_shapes(), 2)
    add_episode(buf, np.random.default_rng(6), 5)
    batch = buf.gather(np.array([3, 0, 3, 3, 1, 0]))
    assert batch["obs_ref"].device.type == "cpu"  # (refs stay on the host, where the cache reads them)
    with torch.no_grad():
        got = cache.maps(batch["obs"], batch["obs_ref"])
        torch.testing.assert_close(got, encoder.backbone_features(batch["obs"]), atol=2e-2, rtol=0)
    assert cache.computed == 3


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
    views = SAC(dataclasses.replace(cfg, cache_backbone=True, cache_views=3, drq_pad=2), SPEC, seed=0)
    stats = views.update(batch)
    assert all(np.isfinite(v) for v in stats.values())
    assert views.backbone_cache.views == 3 and views.backbone_cache.computed == computed
    for agent in (cached, views):  # what the learner budgets per row is what the cache keeps per row
        agent.update(batch)
        maps, _generations = agent.backbone_cache._stores[buf.uid]
        assert agent.device_bytes_per_row == maps[0].numel() * maps.element_size() > 0
    assert plain.device_bytes_per_row == 0


def test_cache_needs_a_frozen_backbone() -> None:
    spec = dataclasses.replace(SPEC, freeze_encoder=False)
    with pytest.raises(ValueError, match="frozen backbone"):
        SAC(SACConfig(cache_backbone=True), spec)


def test_cached_views_keep_drq_augmentation_each_read_picks_one_of_them() -> None:
    torch.manual_seed(0)
    encoder = build_policy(SPEC).encoder
    cache = BackboneCache(encoder, views=4, pad=4, generator=torch.Generator().manual_seed(0))
    rng = np.random.default_rng(3)
    buf = ReplayBuffer(40, SPEC.observation_shapes(), 2)
    add_episode(buf, rng, 6)
    batch = buf.gather(np.flatnonzero(buf.valid))
    obs, refs = batch["obs"], batch["obs_ref"]
    with torch.no_grad():
        plain = encoder.backbone_features(obs)
        reads = [cache.maps(obs, refs) for _ in range(30)]
    assert cache.computed == 6  # each stored image once (its 4 views in that one visit)
    stored = cache._stores[buf.uid][0][:6].float()  # (rows, views, cameras, *map)
    layout = stored.transpose(1, 2).transpose(0, 1).reshape(2 * 6, 4, *encoder.map_shape)  # as reads: camera-major
    torch.testing.assert_close(layout[:, 0], plain, atol=2e-2, rtol=0)  # view 0: the image itself
    assert all(not torch.allclose(layout[:, 0], layout[:, v], atol=2e-2) for v in (1, 2, 3))  # others: shifted
    for read in reads:  # every sample's maps are one of its own 4 views
        distance = (read[:, None] - layout).flatten(2).abs().amax(-1)  # (samples, views)
        assert bool((distance.min(1).values < 2e-2).all())
    picked = {tuple((read[:, None] - layout).flatten(2).abs().amax(-1).argmin(1).tolist()) for read in reads}
    assert len(picked) > 1  # reads differ: a view is drawn per read, not fixed
    with pytest.raises(ValueError, match="views >= 1, and a shift pad >= 1"):
        BackboneCache(encoder, views=2, pad=0)
    with pytest.raises(ValueError, match="cache_views > 1 needs drq_pad"):
        SACConfig(cache_backbone=True, cache_views=4, drq_pad=0)


def test_batches_without_images_update_as_with_them_and_read_only_the_uncached_images() -> None:
    """With the cache, the learner's batches carry no images: the update fetches those of observations not
    cached yet through the sampler, and makes the same updates as with every image in the batch."""
    cfg = SACConfig(batch_size=8, num_critics=3, critic_hidden_dims=(16, 16), drq_pad=0, cache_backbone=True)
    rng = np.random.default_rng(3)
    online, demo = ReplayBuffer(64, SPEC.observation_shapes(), 2), ReplayBuffer(64, SPEC.observation_shapes(), 2)
    add_episode(online, rng, 30)
    add_episode(demo, rng, 20)
    with_images, lazy = MixedSampler(online, demo, 0.5), MixedSampler(online, demo, 0.5, images=False)
    full, light = SAC(cfg, SPEC, seed=0), SAC(cfg, SPEC, seed=0)
    assert not light.batch_images and SAC(dataclasses.replace(cfg, cache_backbone=False), SPEC).batch_images
    fetched = []

    def source(refs: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        fetched.append(len(refs))
        return lazy.images_of(refs, "cpu")

    light.image_source = source
    for seed in range(4):
        a, b = with_images.sample(16, np.random.default_rng(seed)), lazy.sample(16, np.random.default_rng(seed))
        assert set(b["obs"]) == set(b["next_obs"]) == {"state"} and set(a["obs"]) == {"state", *SPEC.cameras}
        assert light.update(b) == full.update(a)
    assert sum(fetched) == light.backbone_cache.computed == full.backbone_cache.computed  # each image read once
    assert sum(fetched) < 4 * 16 * 2 // 2  # under half the batches' observations (52 stored rows, 128 drawn)


def test_images_of_gives_the_images_refs_name_in_their_order_and_an_overwritten_rows_new_content() -> None:
    rng = np.random.default_rng(4)
    online, demo = ReplayBuffer(12, SPEC.observation_shapes(), 2), ReplayBuffer(12, SPEC.observation_shapes(), 2)
    add_episode(online, rng, 6)
    add_episode(demo, rng, 6)
    sampler = MixedSampler(online, demo, 0.5)
    batch = sampler.sample(10, rng)
    refs = torch.cat([batch["obs_ref"], batch["next_obs_ref"]]).flip(0)  # both buffers, interleaved
    images, generations = sampler.images_of(refs, "cpu")
    for cam in SPEC.cameras:
        assert torch.equal(images[cam], torch.cat([batch["obs"][cam], batch["next_obs"][cam]]).flip(0))
    assert torch.equal(generations, refs[:, 2])
    add_episode(online, rng, 8)  # wraps the online ring: its oldest rows now hold other observations
    images, generations = sampler.images_of(refs, "cpu")
    moved = (refs[:, 0] == online.uid) & (generations != refs[:, 2])
    assert bool(moved.any())
    rows = refs[moved, 1].numpy()
    assert torch.equal(images["wrist"][moved], torch.from_numpy(online.obs["wrist"][rows]))
    assert np.array_equal(generations[moved].numpy(), online.generation[rows])
    with pytest.raises(ValueError, match="does not hold"):
        MixedSampler(demo).images_of(refs, "cpu")


def test_the_pixel_learner_draws_batches_without_images_and_reads_them_once(tmp_path) -> None:
    """The pixel recipe (cache, batches drawn ahead): batches carry the state alone; the update reads the
    images of observations not cached yet from the learner's buffers, under its lock."""
    from user_learner.learner_core import LearnerCore
    from user_robot.config_loader import write_config_copy
    from user_robot.task_config import load_task

    task = load_task("peg_insertion")
    task = dataclasses.replace(task, observation=dataclasses.replace(task.observation, image_size=(32, 32)))
    config = write_config_copy(tmp_path / "cfg", {"algorithms/rlpd_cnn": {
        "min_buffer": 1, "rlpd.batch_size": 8, "rlpd.num_critics": 2, "rlpd.critic_hidden_dims": [16, 16],
        "policy.hidden_dims": [16, 16]}})
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("USER_CONFIG_DIR", str(config))
        core = LearnerCore(task, "rlpd", "pixels", ["franka_panda"], tmp_path / "log", tensorboard=False)
    try:
        assert core.prefetcher is not None and not core.sampler.images
        rng = np.random.default_rng(5)
        for buffer in (core.online, core.demo):
            add_episode(buffer, rng, 12)
        metrics = [core.update() for _ in range(6)]
        assert all(np.isfinite(v) for m in metrics for v in m.values())
        assert core.algorithm.backbone_cache.computed <= 2 * 13  # each stored observation at most once
    finally:
        core.close()

