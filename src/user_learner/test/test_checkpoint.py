"""Checkpoints: atomic directories, exact resume (identical next update), buffers and RNG restored,
observations written once (each save adds only the rows written since the last)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from user_learner.algorithms.sac import SAC, SACConfig
from user_learner.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from user_learner.replay_buffer import ReplayBuffer
from user_policies.policy_spec import PolicySpec

torch.set_num_threads(1)
SPEC = PolicySpec(state_dim=3, action_dim=2, hidden_dims=(32, 32))
CFG = SACConfig(batch_size=32, num_critics=4, critic_hidden_dims=(32, 32))


def filled_buffer(seed: int) -> ReplayBuffer:
    rng = np.random.default_rng(seed)
    buf = ReplayBuffer(500, SPEC.observation_shapes(), 2)
    obs = {"state": rng.normal(size=3).astype(np.float32)}
    for t in range(300):
        nxt = {"state": rng.normal(size=3).astype(np.float32)}
        buf.add(obs, rng.uniform(-1, 1, 2), float(rng.normal()), nxt, t % 50 == 49)
        obs = nxt
    return buf


def test_resume_gives_identical_next_update(tmp_path) -> None:
    agent, buf, rng = SAC(CFG, SPEC, seed=0), filled_buffer(0), np.random.default_rng(7)
    for _ in range(5):
        agent.update(buf.sample(agent.rows_per_update, rng))
    path = save_checkpoint(tmp_path, agent, {"online": buf}, rng=rng, metadata={"policy_version": 3})
    assert path.name == "step_000000005" and latest_checkpoint(tmp_path) == path
    expected = agent.update(buf.sample(agent.rows_per_update, rng))
    expected_params = {k: v.clone() for k, v in agent.state_dict().items()}

    resumed, resumed_rng = SAC(CFG, SPEC, seed=123), np.random.default_rng(0)
    buffers, metadata = load_checkpoint(tmp_path, resumed, rng=resumed_rng)
    assert metadata == {"policy_version": 3} and resumed.num_updates == 5 and len(buffers["online"]) == len(buf)
    got = resumed.update(buffers["online"].sample(resumed.rows_per_update, resumed_rng))
    assert got == expected
    for key, value in resumed.state_dict().items():
        assert torch.equal(value, expected_params[key]), key


def test_keeps_newest_and_leaves_no_temporaries(tmp_path) -> None:
    agent, buf, rng = SAC(CFG, SPEC, seed=0), filled_buffer(1), np.random.default_rng(0)
    for _ in range(4):
        agent.update(buf.sample(agent.rows_per_update, rng))
        save_checkpoint(tmp_path, agent, keep=2)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["latest", "step_000000003", "step_000000004"]
    assert (tmp_path / "latest").read_text() == "step_000000004"


def test_failed_save_keeps_previous_checkpoint(tmp_path) -> None:
    agent = SAC(CFG, SPEC, seed=0)
    good = save_checkpoint(tmp_path, agent)

    class Broken(ReplayBuffer):
        def save_rows(self, path) -> None:
            raise OSError("disk full")

    agent.num_updates = 1
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path, agent, {"online": Broken(4, SPEC.observation_shapes(), 2)})
    assert latest_checkpoint(tmp_path) == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", good.name]


def test_refuses_other_spec_and_missing_checkpoint(tmp_path) -> None:
    save_checkpoint(tmp_path / "a", SAC(CFG, SPEC, seed=0))
    other = SAC(CFG, PolicySpec(state_dim=4, action_dim=2, hidden_dims=(32, 32)))
    with pytest.raises(ValueError, match="another policy spec"):
        load_checkpoint(tmp_path / "a", other)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "empty", other)


def test_pixel_agent_resumes_exactly(tmp_path) -> None:
    spec = PolicySpec(state_dim=3, action_dim=2, kind="cnn", cameras=("wrist", "front"), image_size=(32, 32),
                      hidden_dims=(16, 16), image_latent_dim=16, state_latent_dim=8, freeze_encoder=False)
    cfg = SACConfig(batch_size=4, num_critics=3, critic_hidden_dims=(16, 16))
    rng = np.random.default_rng(0)
    buf = ReplayBuffer(64, spec.observation_shapes(), 2)
    for _ in range(20):
        o = {"state": rng.normal(size=3).astype(np.float32)}
        o |= {c: rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for c in spec.cameras}
        buf.add(o, rng.uniform(-1, 1, 2), 1.0, {k: v.copy() for k, v in o.items()}, False)
    agent = SAC(cfg, spec, seed=0)
    agent.update(buf.sample(agent.rows_per_update, rng))
    save_checkpoint(tmp_path, agent, rng=rng)
    expected = agent.update(buf.sample(agent.rows_per_update, rng))
    resumed, resumed_rng = SAC(cfg, spec, seed=9), np.random.default_rng(1)
    load_checkpoint(tmp_path, resumed, rng=resumed_rng)
    assert resumed.update(buf.sample(resumed.rows_per_update, resumed_rng)) == expected
    for key, value in resumed.state_dict().items():
        assert torch.equal(value, agent.state_dict()[key]), key


def pixel_buffer(capacity: int) -> ReplayBuffer:
    return ReplayBuffer(capacity, {"state": (3,), "wrist": (16, 16, 3)}, 2)


def add_steps(buf: ReplayBuffer, rng: np.random.Generator, n: int) -> None:
    """``n`` transitions of 25-step episodes (the next observation's row is reused by the next step)."""
    obs = {"state": rng.normal(size=3).astype(np.float32), "wrist": rng.integers(0, 256, (16, 16, 3), np.uint8)}
    for t in range(n):
        nxt = {"state": rng.normal(size=3).astype(np.float32), "wrist": rng.integers(0, 256, (16, 16, 3), np.uint8)}
        buf.add(obs, rng.uniform(-1, 1, 2), float(t), nxt, t % 25 == 24)
        obs = nxt


def assert_same(a: ReplayBuffer, b: ReplayBuffer) -> None:
    filled = min(a.rows_written, a.capacity)
    for key in a.obs:
        np.testing.assert_array_equal(a.obs[key][:filled], b.obs[key][:filled], err_msg=key)
    for name in ("action", "reward", "done", "valid", "next_row", "prev_row", "generation"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert (a.cursor, a.rows_written, len(a)) == (b.cursor, b.rows_written, len(b))


def observation_files(root) -> list[tuple[int, int]]:
    """(first, end) row writes of each observation file on disk, oldest first."""
    names = sorted(p.name for p in (root / "buffers" / "online").iterdir())
    return sorted((int(n.split("_")[2]), int(n.split("_")[3].split(".")[0])) for n in names)


def test_each_save_writes_only_the_new_observations_and_every_kept_checkpoint_loads(tmp_path) -> None:
    agent, rng, buf = SAC(CFG, SPEC, seed=0), np.random.default_rng(0), pixel_buffer(1000)
    snapshots = []
    for n in (300, 200, 250):
        add_steps(buf, rng, n)
        agent.num_updates += 1
        save_checkpoint(tmp_path, agent, {"online": buf}, keep=3)
        snapshots.append(copy.deepcopy(buf))
    # each run of n steps writes n + 1 rows (its first observation, then one per step)
    assert observation_files(tmp_path) == [(0, 301), (301, 502), (502, 753)]
    for step, snapshot in zip((1, 2, 3), snapshots, strict=True):
        buffers, _ = load_checkpoint(tmp_path / f"step_{step:09d}", SAC(CFG, SPEC, seed=0))
        assert_same(buffers["online"], snapshot)
    assert_same(snapshots[-1], buf)


def test_overwritten_observations_are_dropped_and_a_resumed_buffer_saves_only_what_is_new(tmp_path) -> None:
    agent, rng, buf = SAC(CFG, SPEC, seed=0), np.random.default_rng(1), pixel_buffer(200)
    for step in range(1, 6):  # 5 x 101 row writes into 200 rows: the ring wraps twice
        add_steps(buf, rng, 100)
        agent.num_updates = step
        save_checkpoint(tmp_path, agent, {"online": buf}, keep=2)
    # kept: steps 4 and 5, which need the row writes from 404 - 200 and 505 - 200 on
    assert observation_files(tmp_path) == [(202, 303), (303, 404), (404, 505)]
    resumed = SAC(CFG, SPEC, seed=0)
    buffers, _ = load_checkpoint(tmp_path, resumed)
    assert_same(buffers["online"], buf)

    add_steps(buffers["online"], rng, 50)
    resumed.num_updates = 6
    save_checkpoint(tmp_path, resumed, {"online": buffers["online"]}, keep=2)
    assert observation_files(tmp_path) == [(303, 404), (404, 505), (505, 556)]
    again, _ = load_checkpoint(tmp_path, SAC(CFG, SPEC, seed=0))
    assert_same(again["online"], buffers["online"])
