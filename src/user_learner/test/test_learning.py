"""SAC and RLPD actually learn: a 2-D point-reaching task written here (state obs, seconds on a CPU)."""

from __future__ import annotations

import numpy as np
import torch

from user_learner.algorithms.sac import SAC, SACConfig
from user_learner.replay_buffer import MixedSampler, ReplayBuffer
from user_policies.policies.gaussian import GaussianPolicy
from user_policies.policy_spec import PolicySpec

torch.set_num_threads(1)
SPEC = PolicySpec(state_dim=2, action_dim=2, hidden_dims=(64, 64))
CFG = SACConfig(batch_size=128, critic_hidden_dims=(64, 64), num_critics=10, gamma=0.9)


class PointReach:
    """Point mass moved by 0.2 * action towards the origin; 20 steps, truncated.

    Dense: reward -‖pos‖ from a uniform start. Sparse: reward 1 and termination within 0.2 of the
    origin, starting on the unit circle (random actions rarely get there).
    """

    def __init__(self, seed: int, sparse: bool) -> None:
        self.rng, self.sparse = np.random.default_rng(seed), sparse

    def reset(self) -> dict[str, np.ndarray]:
        self.t = 0
        angle = self.rng.uniform(0, 2 * np.pi)
        self.pos = np.array([np.cos(angle), np.sin(angle)]) if self.sparse else self.rng.uniform(-1, 1, 2)
        return {"state": self.pos.astype(np.float32)}

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool]:
        self.pos = np.clip(self.pos + 0.2 * np.clip(action, -1, 1), -1.5, 1.5)
        self.t += 1
        dist = float(np.linalg.norm(self.pos))
        terminated = self.sparse and dist < 0.2
        reward = float(terminated) if self.sparse else -dist
        return {"state": self.pos.astype(np.float32)}, reward, terminated, self.t >= 20


def expert(obs: dict[str, np.ndarray]) -> np.ndarray:
    return np.clip(-obs["state"] / 0.2, -1, 1)


def evaluate(actor: GaussianPolicy, sparse: bool, episodes: int = 20) -> tuple[float, float]:
    """(mean return, success rate) of the deterministic policy."""
    env, returns, successes = PointReach(1234, sparse), [], []
    for _ in range(episodes):
        obs, total = env.reset(), 0.0
        while True:
            obs, reward, terminated, truncated = env.step(actor.act(obs, deterministic=True)[0])
            total += reward
            if terminated or truncated:
                break
        returns.append(total)
        successes.append(terminated)
    return float(np.mean(returns)), float(np.mean(successes))


def train(steps: int, sparse: bool, demos: int = 0, seed: int = 0) -> tuple[SAC, list[int]]:
    """Online training from scratch; returns the agent and the demo rows of every sampled batch."""
    torch.manual_seed(seed)  # exploration noise in Actor.act
    sac = SAC(CFG, SPEC, seed=seed)
    online = ReplayBuffer(5000, SPEC.observation_shapes(), 2)
    demo = ReplayBuffer(2000, SPEC.observation_shapes(), 2)
    demo_env = PointReach(seed + 1, sparse)
    for _ in range(demos):
        obs = demo_env.reset()
        while True:
            action = expert(obs)
            next_obs, reward, terminated, truncated = demo_env.step(action)
            demo.add(obs, action, reward, next_obs, terminated, intervened=True)
            obs = next_obs
            if terminated or truncated:
                break
    sampler = MixedSampler(online, demo, demo_ratio=0.5 if demos else 0.0)
    env, rng, demo_rows = PointReach(seed + 2, sparse), np.random.default_rng(seed), []
    obs = env.reset()
    for step in range(steps):
        action = rng.uniform(-1, 1, 2) if step < 100 else sac.policy.act(obs)[0]
        next_obs, reward, terminated, truncated = env.step(action)
        online.add(obs, action, reward, next_obs, terminated)
        obs = env.reset() if terminated or truncated else next_obs
        if len(online) >= 100:
            batch = sampler.sample(sac.rows_per_update, rng)
            demo_rows.append(int(batch["intervened"].sum()))
            sac.update(batch)
    return sac, demo_rows


def test_sac_learns_dense_point_reaching() -> None:
    untrained = evaluate(SAC(CFG, SPEC, seed=0).policy, sparse=False)[0]
    sac, _ = train(500, sparse=False)
    learned = evaluate(sac.policy, sparse=False)[0]
    # Random/untrained policies lose ~10-20 per episode; reaching the origin in ~4 steps costs ~2.
    assert untrained < -8.0 and learned > -4.0, (untrained, learned)


def test_rlpd_with_demos_beats_sac_on_sparse_reward() -> None:
    sac, sac_demo_rows = train(500, sparse=True)
    rlpd, rlpd_demo_rows = train(500, sparse=True, demos=10)
    assert set(sac_demo_rows) == {0}
    assert set(rlpd_demo_rows) == {rlpd.rows_per_update // 2}  # every batch is 50/50 online/demo
    sac_success, rlpd_success = evaluate(sac.policy, True)[1], evaluate(rlpd.policy, True)[1]
    assert rlpd_success >= 0.9 and rlpd_success > sac_success + 0.3, (sac_success, rlpd_success)
