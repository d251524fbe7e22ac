"""The learner on CUDA: the same update, checkpoint and publish path as on CPU (skipped without a GPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from user_learner.algo_config import AlgorithmConfig
from user_learner.algorithms.backbone_cache import BackboneCache
from user_learner.algorithms.sac import SAC, SACConfig
from user_learner.checkpoint import load_checkpoint, save_checkpoint
from user_learner.learner_core import replay_image_device
from user_learner.replay_buffer import MixedSampler, ReplayBuffer
from user_policies.policies.base import build_policy
from user_policies.policy_spec import PolicySpec
from user_policies.weights_codec import decode_weights, encode_weights

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]
SPEC = PolicySpec(state_dim=5, action_dim=3, kind="cnn", cameras=("wrist", "front"), image_size=(64, 64),
                  hidden_dims=(64, 64))
CFG = SACConfig(batch_size=32, num_critics=10, critic_hidden_dims=(64, 64))


def filled(seed: int, image_device: str | None = None) -> ReplayBuffer:
    rng = np.random.default_rng(seed)
    buf = ReplayBuffer(200, SPEC.observation_shapes(), 3, image_device)

    def obs() -> dict[str, np.ndarray]:
        out = {c: rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for c in SPEC.cameras}
        return out | {"state": rng.normal(size=5).astype(np.float32)}

    current = obs()
    for t in range(100):
        nxt = obs()
        buf.add(current, rng.uniform(-1, 1, 3), float(rng.normal()), nxt, t % 20 == 19)
        current = nxt
    return buf


def test_pixel_rlpd_update_checkpoint_and_publish_on_cuda(tmp_path) -> None:
    agent = SAC(CFG, SPEC, device="cuda", seed=0)
    sampler, rng = MixedSampler(filled(0), filled(1), 0.5), np.random.default_rng(0)
    for _ in range(3):
        stats = agent.update(sampler.sample(agent.rows_per_update, rng, "cuda"))
    assert all(np.isfinite(v) for v in stats.values())
    save_checkpoint(tmp_path, agent, rng=rng)
    expected = agent.update(sampler.sample(agent.rows_per_update, rng, "cuda"))
    resumed, resumed_rng = SAC(CFG, SPEC, device="cuda", seed=5), np.random.default_rng(1)
    load_checkpoint(tmp_path, resumed, rng=resumed_rng)
    got = resumed.update(sampler.sample(resumed.rows_per_update, resumed_rng, "cuda"))
    np.testing.assert_allclose(list(got.values()), list(expected.values()), rtol=1e-4)

    packet = encode_weights(agent.policy.state_dict(), policy_id="p", version=1, embodiments=["sim"], dtype="float16")
    cpu_actor = build_policy(SPEC, load_pretrained=False)
    cpu_actor.load_state_dict(decode_weights(packet), strict=True)
    obs = {c: np.zeros((64, 64, 3), np.uint8) for c in SPEC.cameras} | {"state": np.zeros(5, np.float32)}
    np.testing.assert_allclose(cpu_actor.act(obs, True), agent.policy.act(obs, True), atol=5e-2)


def test_the_backbone_cache_reads_hits_and_misses_without_waiting_for_the_gpu() -> None:
    """Batches drawn without images (the pixel recipe), their refs on the host: the cache decides which rows
    to compute there and queues every read, miss or hit, with no device sync (torch's sync debug mode
    raises on one)."""
    encoder = build_policy(SPEC).encoder.to("cuda")
    cache = BackboneCache(encoder, views=2, pad=4, generator=torch.Generator("cuda").manual_seed(0), device="cuda")
    sampler, rng = MixedSampler(filled(0, "cuda"), filled(1, "cuda"), 0.5, images=False), np.random.default_rng(0)

    def read(batch: dict) -> None:
        for key in ("obs", "next_obs"):
            cache.maps(batch[key], batch[f"{key}_ref"], lambda refs: sampler.images_of(refs, "cuda"))

    with torch.no_grad():
        read(sampler.sample(16, rng, "cuda"))  # (first calls: cuDNN picks its algorithms)
        torch.cuda.synchronize()
        warm = cache.computed
        torch.cuda.set_sync_debug_mode("error")
        try:
            for _ in range(5):
                read(sampler.sample(64, rng, "cuda"))
        finally:
            torch.cuda.set_sync_debug_mode(0)
    assert 0 < cache.computed - warm < 5 * 64 * 2  # misses computed, hits read


def test_replay_images_stay_on_the_host_when_the_backbone_cache_would_not_fit_beside_them() -> None:
    cfg = AlgorithmConfig(algorithm="rlpd", replay_images="auto", buffer_capacity=1000)
    image_bytes = torch.cuda.mem_get_info()[0] // 2 // 1000 // 2  # the images alone: a quarter of free memory
    shapes = {"state": (5,), "wrist": (image_bytes, 1, 1)}
    assert replay_image_device(cfg, shapes, "cuda", with_demos=False) == "cuda"
    assert replay_image_device(cfg, shapes, "cuda", with_demos=False, reserved_per_row=2 * image_bytes) is None
