"""SAC internals: the vectorised critic ensemble, parameter ownership, and learning on a pixel batch."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from user_learner.algorithms.sac import SAC, CriticEnsemble, SACConfig
from user_learner.replay_buffer import ReplayBuffer
from user_policies.policy_spec import PolicySpec

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
DEVICES = ["cpu", pytest.param("cuda", marks=CUDA)]


def to_device(batch: dict, device: str) -> dict:
    """A batch of tensors (nested one level for observations) on ``device``."""
    return {k: {n: t.to(device) for n, t in v.items()} if isinstance(v, dict) else v.to(device)
            for k, v in batch.items()}

torch.set_num_threads(1)


def loop_reference(critic: CriticEnsemble, x: torch.Tensor) -> torch.Tensor:
    """The same ensemble computed member by member with ordinary layers."""
    outs = []
    for e in range(critic.num_critics):
        h = x
        for i, (w, b) in enumerate(zip(critic.weights, critic.biases, strict=True)):
            h = F.linear(h, w[e].T, b[e, 0])
            if i < len(critic.weights) - 1:
                h = F.relu(F.layer_norm(h, h.shape[-1:], critic.norm_weights[i][e, 0], critic.norm_biases[i][e, 0]))
        outs.append(h.squeeze(-1))
    return torch.stack(outs)


def test_vectorised_ensemble_equals_member_loop_and_subsets() -> None:
    torch.manual_seed(0)
    critic = CriticEnsemble(7, (32, 16), num_critics=5)
    with torch.no_grad():
        for p in critic.norm_weights:
            p.uniform_(0.5, 1.5)  # make the per-member LayerNorm affine matter
    x = torch.randn(33, 7)
    q = critic(x)
    assert q.shape == (5, 33)
    torch.testing.assert_close(q, loop_reference(critic, x), atol=1e-5, rtol=1e-5)
    members = torch.tensor([3, 1])
    torch.testing.assert_close(critic(x, members), q[members])
    assert len({tuple(row[:3].tolist()) for row in q}) == 5  # members are independent


def test_detached_params_pass_gradient_to_input_only() -> None:
    critic = CriticEnsemble(3, (8,), num_critics=4)
    x = torch.randn(5, 3, requires_grad=True)
    critic(x, detach_params=True).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in critic.parameters())


def test_pixel_encoder_is_shared_trained_by_critic_and_frozen_backbone_stays() -> None:
    spec = PolicySpec(state_dim=3, action_dim=2, kind="cnn", cameras=("wrist", "front"), image_size=(64, 64),
                      hidden_dims=(32, 32), image_latent_dim=32, state_latent_dim=16)
    cfg = SACConfig(batch_size=16, num_critics=3, critic_hidden_dims=(32, 32), critic_actor_ratio=1, gamma=0.9)
    sac = SAC(cfg, spec, seed=0)
    encoder_params = {id(p) for p in sac.policy.encoder.parameters() if p.requires_grad}
    actor_opt = {id(p) for g in sac.optimizers["actor"].param_groups for p in g["params"]}
    critic_opt = {id(p) for g in sac.optimizers["critic"].param_groups for p in g["params"]}
    assert encoder_params and encoder_params <= critic_opt and not encoder_params & actor_opt
    assert not any(k.startswith("critic.") and "encoder" in k for k in sac.state_dict())

    rng = np.random.default_rng(0)
    buf = ReplayBuffer(64, spec.observation_shapes(), 2)
    for i in range(16):  # reward says where the bright square is in the wrist image: the critic must read pixels
        wrist = rng.integers(0, 64, (64, 64, 3), dtype=np.uint8)
        top, left = rng.integers(8, 40), 8 if i % 2 else 40
        wrist[top : top + 16, left : left + 16] = 255
        o = {"state": rng.normal(size=3).astype(np.float32), "wrist": wrist,
             "front": rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)}
        o2 = {k: v.copy() for k, v in o.items()}
        buf.add(o, rng.uniform(-1, 1, 2), float(i % 2), o2, True)
    batch = buf.gather(np.flatnonzero(buf.valid))
    backbone = {k: v.clone() for k, v in sac.policy.encoder.backbone.state_dict().items()}
    head = sac.policy.encoder.heads["wrist"][1].weight.detach().clone()
    losses = [sac.update(batch)["critic_loss"] for _ in range(30)]
    assert np.mean(losses[-5:]) < 0.1 * np.mean(losses[:3]), losses
    assert all(torch.equal(v, sac.policy.encoder.backbone.state_dict()[k]) for k, v in backbone.items())
    assert not torch.equal(head, sac.policy.encoder.heads["wrist"][1].weight)
    assert sac.num_updates == 30


def test_update_reports_finite_stats_and_temperature_moves() -> None:
    spec = PolicySpec(state_dim=4, action_dim=2, hidden_dims=(32, 32))
    sac = SAC(SACConfig(batch_size=32, num_critics=4, critic_hidden_dims=(32, 32)), spec, seed=1)
    assert sac.rows_per_update == 64
    g = torch.Generator().manual_seed(0)
    batch = {"obs": {"state": torch.randn(64, 4, generator=g)}, "next_obs": {"state": torch.randn(64, 4, generator=g)},
             "action": torch.rand(64, 2, generator=g) * 2 - 1, "reward": torch.randn(64, generator=g),
             "done": torch.zeros(64), "intervened": torch.zeros(64, dtype=torch.bool)}
    stats = sac.update(batch)
    assert set(stats) == {"critic_loss", "actor_loss", "alpha", "entropy", "q_mean"}
    assert all(np.isfinite(v) for v in stats.values())
    assert stats["alpha"] != 0.01 and abs(stats["alpha"] - 0.01) < 1e-3


@pytest.mark.parametrize("device", DEVICES)
def test_bf16_autocast_keeps_the_losses_of_float32_and_the_weights_float32(device: str) -> None:
    spec = PolicySpec(state_dim=4, action_dim=2, hidden_dims=(64, 64))
    g = torch.Generator().manual_seed(0)
    state, next_state = torch.randn(128, 4, generator=g), torch.randn(128, 4, generator=g)
    batch = {"obs": {"state": state}, "next_obs": {"state": next_state},
             "action": torch.rand(128, 2, generator=g) * 2 - 1, "reward": state[:, 0].clone(),
             "done": torch.zeros(128), "intervened": torch.zeros(128, dtype=torch.bool)}
    batch = to_device(batch, device)
    runs = {}
    for autocast in ("none", "bf16"):
        cfg = SACConfig(batch_size=64, num_critics=4, critic_hidden_dims=(64, 64), autocast=autocast)
        sac = SAC(cfg, spec, device=device, seed=3)
        runs[autocast] = [sac.update(batch) for _ in range(200)]
        assert all(p.dtype == torch.float32 for p in [*sac.policy.parameters(), *sac.critic.parameters()])
    for key in ("critic_loss", "actor_loss", "q_mean"):
        first = [runs[a][0][key] for a in ("none", "bf16")]
        assert abs(first[1] - first[0]) <= 0.03 * abs(first[0]) + 1e-3, (key, first)  # one update: same losses
    for autocast, stats in runs.items():  # and it learns as float32 does: the critic fits the reward
        assert np.mean([s["critic_loss"] for s in stats[-10:]]) < 0.2 * stats[0]["critic_loss"], autocast
    with pytest.raises(ValueError, match="autocast must be 'none' or 'bf16'"):
        SACConfig(autocast="fp8")


@pytest.mark.parametrize(("device", "mode"), [
    pytest.param("cpu", "default", marks=pytest.mark.skipif(shutil.which("c++") is None,
                                                            reason="torch.compile needs a C++ compiler on a CPU")),
    pytest.param("cuda", "reduce-overhead", marks=CUDA),  # CUDA graphs: the inputs are copied in at every call
])
def test_compiled_critics_make_the_same_update_and_keep_checkpoint_keys(device: str, mode: str) -> None:
    spec = PolicySpec(state_dim=4, action_dim=2, hidden_dims=(16, 16))
    g = torch.Generator().manual_seed(0)
    cfg = SACConfig(batch_size=16, num_critics=3, critic_hidden_dims=(16, 16))
    eager = SAC(cfg, spec, device=device, seed=4)
    compiled = SAC(dataclasses.replace(cfg, compile=mode), spec, device=device, seed=4)
    for _ in range(4):  # a new batch each time
        batch = to_device({
            "obs": {"state": torch.randn(32, 4, generator=g)}, "next_obs": {"state": torch.randn(32, 4, generator=g)},
            "action": torch.rand(32, 2, generator=g) * 2 - 1, "reward": torch.randn(32, generator=g),
            "done": torch.zeros(32), "intervened": torch.zeros(32, dtype=torch.bool)}, device)
        assert compiled.update(batch) == pytest.approx(eager.update(batch), rel=1e-4, abs=1e-6)
    assert compiled.state_dict().keys() == eager.state_dict().keys()  # checkpoints do not see the compiler
    with pytest.raises(ValueError, match="compile must be none, default"):
        SACConfig(compile="fast")
