"""HG-DAgger: which rows it learns from, and that every registered policy kind learns by imitation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from user_learner.algorithms.base import ALGORITHMS
from user_learner.algorithms.hg_dagger import HGDAggerConfig, select_intervened
from user_learner.replay_buffer import MixedSampler, ReplayBuffer
from user_policies.policies.base import POLICIES, policy_kinds
from user_policies.policy_spec import PolicySpec

STATE, ACTION = 3, 2


def add_episode(buf: ReplayBuffer, stream: str, intervened: list[bool], success: bool, rng) -> list[int]:
    """One episode of len(intervened) steps; returns its transitions' rows (marked successful if it was)."""
    rows = []
    obs = {"state": rng.normal(size=STATE).astype(np.float32)}
    for flag in intervened:
        nxt = {"state": rng.normal(size=STATE).astype(np.float32)}
        rows.append(buf.add(obs, rng.uniform(-1, 1, ACTION), 0.0, nxt, False, flag, stream=stream))
        obs = nxt
    if success:
        buf.mark_success(rows)
    return [r for r, _gen in rows]


def test_selection_takes_intervened_steps_and_each_option_narrows_it_as_named() -> None:
    rng = np.random.default_rng(0)
    buf = ReplayBuffer(500, {"state": (STATE,)}, ACTION)
    failed = add_episode(buf, "a", [False, True, True, True, False, True], success=False, rng=rng)
    won = add_episode(buf, "a", [True, True, False, True, True, True, True, False], success=True, rng=rng)
    robot = add_episode(buf, "b", [False] * 5, success=True, rng=rng)

    every = set(select_intervened(buf))
    assert every == {failed[i] for i in (1, 2, 3, 5)} | {won[i] for i in (0, 1, 3, 4, 5, 6)}
    assert not every & set(robot)
    assert set(select_intervened(buf, only_successful=True)) == {won[i] for i in (0, 1, 3, 4, 5, 6)}
    # chunks of 3 steps, each step intervened and inside the episode
    assert set(select_intervened(buf, chunk_size=3, only_full_chunks=True)) == {failed[1], won[3], won[4]}
    assert set(select_intervened(buf, chunk_size=3)) == every  # the option is off
    assert set(select_intervened(buf, window=3)) == {won[i] for i in (4, 5, 6)}  # the newest three


def test_the_algorithms_selection_follows_every_new_takeover_and_success_mark() -> None:
    rng = np.random.default_rng(3)
    buf = ReplayBuffer(500, {"state": (STATE,)}, ACTION)
    spec = PolicySpec(state_dim=STATE, action_dim=ACTION, kind="mlp", hidden_dims=(8,))
    algo = ALGORITHMS.get("hg_dagger")(HGDAggerConfig(only_successful=True, skip_idle=False), spec, seed=0)
    first = add_episode(buf, "a", [True, True, False], success=False, rng=rng)
    assert algo.select_online(buf).tolist() == []  # its episode has not succeeded
    second = add_episode(buf, "a", [False, True], success=False, rng=rng)
    assert algo.select_online(buf).tolist() == []
    buf.mark_success([(second[1], int(buf.generation[second[1]]))])
    assert algo.select_online(buf).tolist() == [second[1]]
    buf.mark_success([(row, int(buf.generation[row])) for row in first])
    assert sorted(algo.select_online(buf).tolist()) == sorted([first[0], first[1], second[1]])
    other = ReplayBuffer(500, {"state": (STATE,)}, ACTION)  # another buffer, same count of changes
    add_episode(other, "a", [False] * 3, success=True, rng=rng)
    add_episode(other, "a", [False] * 2, success=True, rng=rng)
    assert algo.select_online(other).tolist() == []


def test_a_chunk_stops_at_its_episode_end_and_a_reused_row_is_not_marked() -> None:
    rng = np.random.default_rng(1)
    buf = ReplayBuffer(500, {"state": (STATE,)}, ACTION)
    rows = add_episode(buf, "a", [True, True], success=True, rng=rng)
    actions, intervened, complete = buf.chunk_actions(np.array(rows), 3)
    assert complete.tolist() == [False, False]
    np.testing.assert_array_equal(actions[0, :2], buf.action[rows])
    np.testing.assert_array_equal(actions[0, 2], buf.action[rows[1]])  # repeats the last action
    assert intervened.tolist() == [[True, True, False], [True, False, False]]
    small = ReplayBuffer(4, {"state": (STATE,)}, ACTION)
    state = {"state": np.zeros(STATE, np.float32)}
    early = small.add(state, np.zeros(ACTION), 0.0, state, False, True, stream="a")  # rows 0 -> 1
    add_episode(small, "b", [False], success=False, rng=rng)  # rows 2 -> 3
    add_episode(small, "c", [False], success=False, rng=rng)  # rows 0 -> 1 again
    small.mark_success([early])  # its episode ended in success, after its row was reused
    assert not small.success.any()


def test_batches_hold_intervened_rows_and_demos_at_the_ratio_and_only_demos_before_a_takeover() -> None:
    rng = np.random.default_rng(2)
    online = ReplayBuffer(1000, {"state": (STATE,)}, ACTION)
    demo = ReplayBuffer(1000, {"state": (STATE,)}, ACTION)
    add_episode(demo, "d", [False] * 50, success=True, rng=rng)
    add_episode(online, "a", [False] * 40, success=False, rng=rng)
    sampler = MixedSampler(online, demo, 0.25, select=select_intervened)
    batch = sampler.sample(64, rng)
    assert batch["obs_ref"][:, 0].eq(demo.uid).all()  # no takeover yet: demos only

    taken = add_episode(online, "a", [False, True, True, False, True], success=True, rng=rng)
    batch = sampler.sample(64, rng)
    sources = batch["obs_ref"][:, 0]
    assert int((sources == demo.uid).sum()) == 16
    online_rows = batch["obs_ref"][sources == online.uid, 1].tolist()
    assert set(online_rows) <= {taken[i] for i in (1, 2, 4)} and batch["intervened"][:48].all()


KIND_SPECS = {
    "mlp": PolicySpec(state_dim=STATE, action_dim=ACTION, kind="mlp", hidden_dims=(64, 64)),
    "cnn": PolicySpec(state_dim=STATE, action_dim=ACTION, kind="cnn", cameras=("wrist",), image_size=(16, 16),
                      hidden_dims=(64, 64)),
    "flow": PolicySpec(state_dim=STATE, action_dim=ACTION, kind="flow", chunk_size=4,
                       options={"d_model": 32, "n_heads": 2, "n_layers": 1, "flow_steps": 4}),
    "vla": PolicySpec(state_dim=STATE, action_dim=ACTION, kind="vla", chunk_size=4, cameras=("wrist",),
                      image_size=(16, 16), options={"d_model": 32, "n_heads": 2, "prefix_layers": 1,
                                                    "expert_layers": 1, "patch_size": 8, "flow_steps": 4}),
    "external": PolicySpec(state_dim=STATE, action_dim=ACTION, kind="external", chunk_size=4, options={
        "module": "tiny_chunker:TinyChunker", "config": {"state_dim": STATE, "action_dim": ACTION, "chunk_size": 4}}),
}


def expert(state: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """A smooth expert: chunks (N, H, A) from the state, well inside (-1, 1)."""
    base = torch.stack([0.6 * torch.tanh(state[:, 0] - state[:, 1]), 0.5 * torch.sin(state[:, 2])], dim=-1)
    steps = torch.arange(chunk_size, dtype=torch.float32)[None, :, None]
    return base[:, None, :] * (1.0 - 0.1 * steps)


def test_every_built_in_policy_kind_has_a_spec_here() -> None:
    built_in = {kind for kind in policy_kinds() if POLICIES.get(kind).__module__.startswith("user_policies.")}
    assert built_in == set(KIND_SPECS)  # (a test's own plug-in kind, registered by another module, is not one)


@pytest.mark.parametrize("kind", sorted(KIND_SPECS))
def test_every_policy_kind_imitates_through_hg_dagger(kind: str) -> None:
    spec = KIND_SPECS[kind]
    rows = 16 if spec.cameras else 128  # (a CPU-sized ResNet-10 batch)
    algo = ALGORITHMS.get("hg_dagger")(HGDAggerConfig(batch_size=rows, lr=3e-3), spec, seed=0)
    gen = torch.Generator().manual_seed(0)
    states = torch.randn(rows, STATE, generator=gen)
    obs = {"state": states}
    for camera in spec.cameras:
        obs[camera] = torch.randint(0, 255, (rows, *spec.image_size, 3), generator=gen, dtype=torch.uint8)
    target = expert(states, spec.chunk_size)
    batch = {"obs": obs, "action": target[:, 0], "intervened": torch.ones(rows, dtype=torch.bool)}
    if spec.chunk_size > 1:
        batch["action_chunk"] = target

    before = algo.validation_metrics(batch)
    for _ in range(100):
        metrics = algo.update(batch)
    after = algo.validation_metrics(batch)
    assert metrics["intervened_share"] == 1.0
    assert after["loss"] < before["loss"] and after["action_error"] < 0.5 * before["action_error"], (before, after)


def test_idle_takeover_steps_are_left_out_and_gripper_changes_weigh_more() -> None:
    # state: [gripper (-1 closed .. +1 open), x]; action: [dx, gripper command]
    buf = ReplayBuffer(100, {"state": (2,)}, 2)
    rows = []
    steps = [  # (gripper state, action): the person drives, closes, lets go (hold time), then nothing
        (1.0, [0.5, -1.0]), (1.0, [0.0, 1.0]), (-1.0, [0.0, 1.0]), (-1.0, [0.0, -1.0]), (-1.0, [0.2, 1.0]),
    ]
    for grip, action in steps:
        state = {"state": np.array([grip, 0.0], np.float32)}
        rows.append(buf.add(state, np.array(action), 0.0, state, False, True, stream="a")[0])
    # rows 2 (hands off, gripper kept closed) is idle; rows 1 (close while open) and 3 (open while closed)
    # change the gripper, so they are kept though no motion channel moves
    assert set(select_intervened(buf, idle=(0, 0.5))) == {rows[i] for i in (0, 1, 3, 4)}
    assert set(select_intervened(buf, idle=None)) == set(rows)
    assert set(select_intervened(buf, idle=(None, 0.5))) == set(rows)  # no gripper: no motion is all it takes

    spec = PolicySpec(kind="mlp", state_dim=2, action_dim=2, hidden_dims=(16,))
    algo = ALGORITHMS.get("hg_dagger")(HGDAggerConfig(gripper_change_weight=10.0), spec, seed=0)
    algo.gripper = (0, 0.5)
    weights = algo.row_weights(buf.gather(np.array(rows)))
    assert weights.tolist() == [1.0, 10.0, 1.0, 10.0, 1.0]
    off = ALGORITHMS.get("hg_dagger")(HGDAggerConfig(gripper_change_weight=1.0), spec, seed=0)
    off.gripper = (0, 0.5)
    assert off.row_weights(buf.gather(np.array(rows))) is None


@pytest.mark.parametrize("kind", ["mlp", "flow"])
def test_a_row_weighted_more_pulls_the_clone_toward_its_action(kind: str) -> None:
    spec = PolicySpec(kind=kind, state_dim=1, action_dim=1, hidden_dims=(32, 32))
    torch.manual_seed(0)
    obs = {"state": torch.zeros(64, 1)}  # one state, two demonstrated actions: which wins is the weights' say
    chunks = torch.tensor([0.8, -0.8]).repeat(32)[:, None, None]

    def fit(weights: torch.Tensor | None) -> float:
        algo = ALGORITHMS.get("hg_dagger")(HGDAggerConfig(lr=3e-3), spec, seed=0)
        for _ in range(150):
            loss = algo.policy.imitation_loss(obs, chunks, algo.generator, weights)
            algo.optimizers["policy"].zero_grad()
            loss.backward()
            algo.optimizers["policy"].step()
        with torch.no_grad():
            return float(algo.policy.act_batch({"state": torch.zeros(1, 1)}, deterministic=True)[0, 0, 0])

    assert fit(torch.tensor([9.0, 1.0]).repeat(32)) > 0.4  # the first counts nine times
    assert fit(torch.tensor([1.0, 9.0]).repeat(32)) < -0.4  # the second does


@pytest.mark.parametrize("pad", [0, 2])
def test_drq_pad_trains_on_images_shifted_by_at_most_pad_pixels(pad: int) -> None:
    spec = KIND_SPECS["vla"]
    algo = ALGORITHMS.get("hg_dagger")(HGDAggerConfig(batch_size=8, drq_pad=pad), spec, seed=0)
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 255, (8, *spec.image_size, 3), generator=gen, dtype=torch.uint8)
    states = torch.randn(8, STATE, generator=gen)
    target = expert(states, spec.chunk_size)
    batch = {"obs": {"state": states, "wrist": images}, "action": target[:, 0], "action_chunk": target,
             "intervened": torch.ones(8, dtype=torch.bool)}
    seen: list[dict[str, torch.Tensor]] = []
    loss = algo.policy.imitation_loss

    def recording(obs, *args, **kwargs):
        seen.append(obs)
        return loss(obs, *args, **kwargs)

    algo.policy.imitation_loss = recording
    algo.update(batch)
    trained = seen[0]["wrist"]
    assert torch.equal(seen[0]["state"], states) and torch.equal(batch["obs"]["wrist"], images)
    padded = torch.nn.functional.pad(images.permute(0, 3, 1, 2).float(), (pad,) * 4, mode="replicate")
    shifts = [(dy, dx) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)]
    h, w = spec.image_size
    found = [next((s for s in shifts if torch.equal(padded[i, :, s[0]:s[0] + h, s[1]:s[1] + w],
                                                    trained[i].permute(2, 0, 1).float())), None) for i in range(8)]
    assert None not in found  # every image is one shift of its own by at most pad pixels
    assert (len(set(found)) > 1) == (pad > 0)  # and the shifts vary (none without a pad)
    with pytest.raises(ValueError, match="drq_pad"):
        HGDAggerConfig(drq_pad=-1)
