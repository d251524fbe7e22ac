"""Replay buffer: observations stored once, ring eviction, sampling, save/load; the RLPD 50/50 sampler."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from user_learner.algorithms.sac import split_batch
from user_learner.replay_buffer import MixedSampler, ReplayBuffer

SHAPES = {"state": (2,), "cam": (4, 4, 3)}


def obs(value: int) -> dict[str, np.ndarray]:
    """An observation that encodes ``value`` in every entry."""
    return {"state": np.full(2, value, np.float32), "cam": np.full((4, 4, 3), value % 256, np.uint8)}


def add_episode(buf: ReplayBuffer, start: int, length: int, terminated: bool, stream: str = "") -> None:
    for t in range(length):
        v = start + t
        buf.add(obs(v), [v], float(v), obs(v + 1), terminated and t == length - 1, intervened=t % 2 == 0,
                stream=stream)


def check_consistent(batch: dict) -> None:
    """Every sampled row: next_obs = obs + 1, action = reward = obs, images agree with state."""
    state, nxt = batch["obs"]["state"][:, 0], batch["next_obs"]["state"][:, 0]
    torch.testing.assert_close(nxt, state + 1)
    torch.testing.assert_close(batch["action"][:, 0], state)
    torch.testing.assert_close(batch["reward"], state)
    torch.testing.assert_close(batch["obs"]["cam"][:, 0, 0, 0].long(), state.long() % 256)
    torch.testing.assert_close(batch["next_obs"]["cam"][:, 0, 0, 0].long(), (state.long() + 1) % 256)


def test_episode_takes_length_plus_one_rows_and_samples_consistently() -> None:
    buf = ReplayBuffer(100, SHAPES, 1)
    add_episode(buf, 0, 10, terminated=True)
    add_episode(buf, 100, 5, terminated=False)
    assert len(buf) == 15 and buf.rows_written == 11 + 6
    batch = buf.sample(64, np.random.default_rng(0))
    check_consistent(batch)
    assert batch["obs"]["cam"].dtype == torch.uint8 and batch["obs"]["state"].dtype == torch.float32
    done_rows = batch["done"] == 1
    assert torch.equal(batch["obs"]["state"][done_rows, 0], torch.full((int(done_rows.sum()),), 9.0))
    assert 0 < int(done_rows.sum()) < 64  # only the terminal step of the terminated episode
    torch.testing.assert_close(batch["intervened"], batch["obs"]["state"][:, 0].long() % 2 == 0)


def test_interleaved_streams_still_share_observations() -> None:
    buf = ReplayBuffer(100, SHAPES, 1)
    for t in range(6):
        for stream, base in (("robot_a", 0), ("robot_b", 50)):
            v = base + t
            buf.add(obs(v), [v], float(v), obs(v + 1), False, stream=stream)
    assert len(buf) == 12 and buf.rows_written == 14
    check_consistent(buf.sample(128, np.random.default_rng(1)))


def test_non_chaining_observations_take_two_rows() -> None:
    buf = ReplayBuffer(100, SHAPES, 1)
    for v in (0, 10, 20):
        buf.add(obs(v), [v], float(v), obs(v + 1), False)
    assert len(buf) == 3 and buf.rows_written == 6


def test_ring_keeps_only_recent_transitions_and_stays_consistent() -> None:
    rng = np.random.default_rng(0)
    buf = ReplayBuffer(37, SHAPES, 1)
    start = 0
    for _ in range(40):
        length = int(rng.integers(1, 9))
        add_episode(buf, start, length, terminated=bool(rng.integers(2)), stream=str(rng.integers(2)))
        start += 1000
    assert 0 < len(buf) <= 37 and len(buf) == int(buf.valid.sum())
    batch = buf.sample(256, rng)
    check_consistent(batch)
    assert batch["obs"]["state"].min() >= (start - 1000 * 8)  # old episodes were evicted


def test_save_load_round_trip_gives_identical_samples(tmp_path) -> None:
    buf = ReplayBuffer(50, SHAPES, 1)
    for i in range(12):
        add_episode(buf, 100 * i, 6, terminated=i % 3 == 0)
    buf.save_rows(tmp_path / "rows.safetensors")
    first = buf.save_observations(tmp_path / "obs.safetensors", 0)
    assert first == buf.rows_written - buf.capacity  # wrapped: only the newest `capacity` writes exist
    loaded = ReplayBuffer.load(tmp_path / "rows.safetensors", [tmp_path / "obs.safetensors"])
    assert len(loaded) == len(buf)
    a, b = buf.sample(32, np.random.default_rng(5)), loaded.sample(32, np.random.default_rng(5))
    for key in ("action", "reward", "done", "intervened"):
        assert torch.equal(a[key], b[key])
    assert torch.equal(a["next_obs"]["cam"], b["next_obs"]["cam"])
    add_episode(loaded, 5000, 3, terminated=True)  # the loaded buffer keeps working
    check_consistent(loaded.sample(64, np.random.default_rng(0)))


def test_rejects_bad_shapes_and_empty_sampling() -> None:
    buf = ReplayBuffer(10, SHAPES, 1)
    with pytest.raises(ValueError, match="empty"):
        buf.sample(4, np.random.default_rng(0))
    with pytest.raises(ValueError, match="'cam'"):
        buf.add({"state": np.zeros(2), "cam": np.zeros((5, 4, 3))}, [0], 0.0, obs(1), False)


def test_mixed_sampler_is_half_demo_in_every_minibatch() -> None:
    online, demo = ReplayBuffer(100, SHAPES, 1), ReplayBuffer(100, SHAPES, 1)
    add_episode(online, 0, 20, terminated=False)       # states 0..19
    add_episode(demo, 500, 20, terminated=True)        # states 500..519
    sampler = MixedSampler(online, demo, demo_ratio=0.5)
    batch = sampler.sample(2 * 64, np.random.default_rng(0))
    from_demo = batch["obs"]["state"][:, 0] >= 500
    assert int(from_demo.sum()) == 64
    for minibatch in split_batch(batch, 2):
        assert int((minibatch["obs"]["state"][:, 0] >= 500).sum()) == 32
    check_consistent(batch)
    assert MixedSampler(online, ReplayBuffer(10, SHAPES, 1), 0.5).demo_rows(64) == 0  # empty demo buffer


def test_save_writes_only_filled_rows(tmp_path) -> None:
    buf = ReplayBuffer(10_000, SHAPES, 1)
    add_episode(buf, 0, 9, terminated=True)
    buf.save_rows(tmp_path / "rows.safetensors")
    buf.save_observations(tmp_path / "obs.safetensors", 0)
    assert (tmp_path / "rows.safetensors").stat().st_size < 10_000  # 10 rows, not 10 000
    assert (tmp_path / "obs.safetensors").stat().st_size < 10_000
    loaded = ReplayBuffer.load(tmp_path / "rows.safetensors", [tmp_path / "obs.safetensors"])
    assert loaded.capacity == 10_000 and len(loaded) == 9
    check_consistent(loaded.sample(16, np.random.default_rng(0)))


def test_gather_rejects_rows_without_a_transition() -> None:
    buf = ReplayBuffer(10, SHAPES, 1)
    add_episode(buf, 0, 2, terminated=True)
    with pytest.raises(IndexError):
        buf.gather(np.array([2]))  # the final observation's row


@settings(max_examples=40, deadline=None)
@given(
    capacity=st.integers(2, 24),
    steps=st.lists(st.tuples(st.integers(0, 2), st.booleans(), st.booleans()), min_size=1, max_size=60),
)
def test_every_valid_row_is_a_transition_that_was_added(capacity: int, steps: list) -> None:
    """Random interleaved streams, episode breaks and wrap-arounds: the buffer never mixes up rows."""
    buf = ReplayBuffer(capacity, {"state": (1,)}, 1)
    added: dict[int, tuple[int, bool]] = {}  # obs id -> (next obs id, done)
    last_next: dict[int, int] = {}
    order: list[int] = []
    next_id = 1
    for stream, continues, done in steps:
        if continues and stream in last_next:
            current = last_next[stream]
        else:
            current, next_id = next_id, next_id + 1
        nxt, next_id = next_id, next_id + 1
        buf.add({"state": np.array([current], np.float32)}, [float(current)], 0.0,
                {"state": np.array([nxt], np.float32)}, done, stream=str(stream))
        added[current] = (nxt, done)
        order.append(current)
        last_next[stream] = nxt
    rows = np.flatnonzero(buf.valid)
    assert len(buf) == len(rows) >= 1
    assert order[-1] in {int(buf.obs["state"][r, 0]) for r in rows}  # the newest transition always survives
    for r in rows:
        ident = int(buf.obs["state"][r, 0])
        assert buf.action[r, 0] == ident
        assert (int(buf.obs["state"][buf.next_row[r], 0]), bool(buf.done[r])) == added[ident]


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"))]


@pytest.mark.parametrize("device", DEVICES)
def test_images_kept_on_a_device_give_the_same_batches_and_checkpoints(tmp_path, device: str) -> None:
    host, kept = ReplayBuffer(37, SHAPES, 1), ReplayBuffer(37, SHAPES, 1, image_device=device)
    assert isinstance(kept.obs["cam"], torch.Tensor) and kept.obs["cam"].device.type == device
    assert isinstance(kept.obs["state"], np.ndarray)  # (host-side selections read the state)
    for i in range(15):  # wraps the ring, with streams interleaved: rows reused and overwritten
        for buf in (host, kept):
            add_episode(buf, 100 * i, 4, terminated=i % 2 == 0, stream=str(i % 3))
    assert host.rows_written == kept.rows_written  # the same next-obs reuse (compared with host copies)
    a, b = host.sample(64, np.random.default_rng(2)), kept.sample(64, np.random.default_rng(2))
    for key in ("obs", "next_obs"):
        for name in SHAPES:
            assert torch.equal(a[key][name], b[key][name].cpu()), (key, name)
    check_consistent(b)
    kept.save_rows(tmp_path / "rows.safetensors")
    kept.save_observations(tmp_path / "obs.safetensors", 0)
    loaded = ReplayBuffer.load(tmp_path / "rows.safetensors", [tmp_path / "obs.safetensors"], image_device=device)
    assert isinstance(loaded.obs["cam"], torch.Tensor)
    c = loaded.sample(64, np.random.default_rng(2))
    assert torch.equal(c["obs"]["cam"], b["obs"]["cam"]) and torch.equal(c["next_obs"]["cam"], b["next_obs"]["cam"])
    for stream, start in (("2", 1404), ("1", 1304), ("0", 100)):  # each stream's episode goes on after the resume
        for buf in (host, loaded):
            add_episode(buf, start, 2, terminated=False, stream=stream)
    assert loaded.rows_written - kept.rows_written == host.rows_written - kept.rows_written == 2 + 2 + 3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_images_on_a_gpu_written_on_one_stream_and_drawn_on_another_are_whole() -> None:
    """Transitions are added on the default stream while batches are drawn on a side stream (prefetch): a
    draw sees the rows written before it, and a write waits for the draws before it, however busy either
    stream is (``torch.cuda._sleep`` keeps one busy for a while)."""
    buf, side = ReplayBuffer(4, SHAPES, 1, image_device="cuda"), torch.cuda.Stream()
    torch.cuda._sleep(10**8)  # the default stream busy: the write below runs only after this
    buf.add(obs(7), [7], 7.0, obs(8), True)
    with torch.cuda.stream(side):
        drawn = buf.gather(np.array([0]), "cuda")
    torch.cuda.current_stream().wait_stream(side)
    assert int(drawn["obs"]["cam"].min()) == 7 and int(drawn["next_obs"]["cam"].max()) == 8
    with torch.cuda.stream(side):
        torch.cuda._sleep(10**8)  # the side stream busy: its draw runs after the overwrite is queued
        older = buf.gather(np.array([0]), "cuda")
    buf.add(obs(20), [20], 20.0, obs(21), True)  # rows 2, 3
    buf.add(obs(30), [30], 30.0, obs(31), True)  # wraps: rows 0, 1 now hold 30 and 31
    torch.cuda.synchronize()
    assert int(older["obs"]["cam"].max()) == 7 and int(older["next_obs"]["cam"].min()) == 8
    assert int(buf.obs["cam"][0].min()) == 30


def test_the_learner_keeps_images_where_its_recipe_says() -> None:
    from user_learner.algo_config import AlgorithmConfig
    from user_learner.learner_core import replay_image_device

    pixels, state = {"state": (5,), "wrist": (64, 64, 3)}, {"state": (5,)}
    for setting, device, expected in (("auto", "cpu", None), ("host", "cpu", None), ("device", "cpu", "cpu"),
                                      ("host", "cuda:0", None), ("device", "cuda:0", "cuda:0")):
        cfg = AlgorithmConfig(algorithm="rlpd", replay_images=setting)
        assert replay_image_device(cfg, pixels, device, with_demos=True) == expected, (setting, device)
        assert replay_image_device(cfg, state, device, with_demos=True) is None  # no images: nothing to move
