"""The VLA policy kind: the instruction and the cameras reach the action expert, chunks have the spec's
shape, flow matching fits a language-dependent target, and the task's instruction becomes the state's bytes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from user_policies.observation import INSTRUCTION_BYTES, ArmSample, StateEncoder, instruction_slice, state_dim
from user_policies.policies.base import build_policy
from user_policies.policy_spec import PolicySpec
from user_robot.task_config import load_task

PROPRIO = 5
SMALL = {"d_model": 32, "n_heads": 2, "prefix_layers": 1, "expert_layers": 1, "patch_size": 8, "flow_steps": 4}
SPEC = PolicySpec(kind="vla", state_dim=PROPRIO + INSTRUCTION_BYTES, action_dim=3, cameras=("wrist",),
                  image_size=(16, 16), chunk_size=4, instruction_slice=(PROPRIO, INSTRUCTION_BYTES), options=SMALL)


def _state(text: str, proprio: float = 0.0) -> np.ndarray:
    data = np.frombuffer(text.encode(), dtype=np.uint8)
    return np.concatenate([np.full(PROPRIO, proprio), np.pad(data, (0, INSTRUCTION_BYTES - len(data)))]).astype(
        np.float32)


def _obs(text: str, image: int = 0) -> dict[str, np.ndarray]:
    return {"state": _state(text), "wrist": np.full((16, 16, 3), image, np.uint8)}


def test_the_instruction_and_the_camera_change_the_chunk_and_deterministic_chunks_repeat() -> None:
    torch.manual_seed(0)
    policy = build_policy(SPEC).eval()
    chunk = policy.act(_obs("insert the peg"), deterministic=True)
    assert chunk.shape == (4, 3) and np.abs(chunk).max() <= 1.0
    np.testing.assert_array_equal(chunk, policy.act(_obs("insert the peg"), deterministic=True))
    assert not np.allclose(chunk, policy.act(_obs("put the duck in the bin"), deterministic=True))
    assert not np.allclose(chunk, policy.act(_obs("insert the peg", image=200), deterministic=True))
    assert not np.allclose(chunk, policy.act(_obs("insert the peg"), deterministic=False))


def test_a_chunk_is_the_same_alone_and_beside_a_longer_instruction() -> None:
    """The bytes past a batch's longest instruction are left out: padding, masked either way."""
    torch.manual_seed(0)
    policy = build_policy(SPEC).eval()
    short, long = _obs("go"), _obs("put the duck in the bin and then insert the peg", image=90)
    batch = {key: torch.from_numpy(np.stack([short[key], long[key]])) for key in short}
    with torch.no_grad():
        _, mask = policy.prefix_tokens(batch)
        together = policy.act_batch(batch, deterministic=True)
    assert mask.shape == (2, 1 + 4 + len("put the duck in the bin and then insert the peg"))
    np.testing.assert_allclose(together[0].numpy(), policy.act(short, deterministic=True), atol=1e-5)
    np.testing.assert_allclose(together[1].numpy(), policy.act(long, deterministic=True), atol=1e-5)


def test_flow_matching_learns_what_each_instruction_asks_for() -> None:
    """One proprioceptive state, two instructions asking for opposite chunks: only the language tells them
    apart, so a fit that gets both right reads it."""
    torch.manual_seed(0)
    spec = dataclasses.replace(SPEC, cameras=())
    policy = build_policy(spec)
    optimizer = torch.optim.Adam(policy.parameters(), lr=3e-3)
    states = torch.from_numpy(np.stack([_state("go left"), _state("go right")] * 32))
    targets = torch.tensor([-0.6, 0.6]).repeat(32)[:, None, None].expand(64, 4, 3).contiguous()
    for _ in range(300):
        loss = policy.imitation_loss({"state": states}, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        left, right = policy.act_batch({"state": states[:2]}, deterministic=True)
    assert float(left.mean()) < -0.4 and float(right.mean()) > 0.4, (left, right)


def test_images_must_cut_into_whole_patches() -> None:
    with pytest.raises(ValueError, match=r"not a multiple of options\.patch_size 8"):
        build_policy(dataclasses.replace(SPEC, image_size=(20, 16)))


def test_the_tasks_instruction_is_its_utf8_bytes_in_the_state_and_the_spec_says_where() -> None:
    base = load_task("pick_and_place")
    task = dataclasses.replace(base, observation=dataclasses.replace(
        base.observation, state=("tcp_pose", "instruction", "gripper")))
    assert state_dim(task) == 6 + INSTRUCTION_BYTES + 1 and instruction_slice(task) == (6, INSTRUCTION_BYTES)
    arm = ArmSample(xyz=np.array(task.target.xyz), quat=np.array([1.0, 0, 0, 0]), linear_velocity=np.zeros(3),
                    angular_velocity=np.zeros(3), force=np.zeros(3), torque=np.zeros(3), gripper_width=0.04,
                    stamp=0.0)
    state = StateEncoder(task, 0.08).encode(arm)
    text = bytes(state[6:6 + INSTRUCTION_BYTES].astype(np.uint8)).rstrip(b"\0").decode()
    assert text == base.instruction == "put the duck in the bin"
    for instruction in ("", "x" * (INSTRUCTION_BYTES + 1)):
        with pytest.raises(ValueError, match=r"needs an instruction of 1 to 64 UTF-8 bytes.*pick_and_place.yaml"):
            StateEncoder(dataclasses.replace(task, instruction=instruction), 0.08)
    assert instruction_slice(base) == (0, 0)


def test_fine_tuning_trains_the_expert_or_adapters_and_lora_starts_as_its_base(tmp_path) -> None:
    from safetensors.torch import save_file

    torch.manual_seed(0)
    base = build_policy(SPEC).eval()
    path = tmp_path / "base.safetensors"
    save_file(base.state_dict(), str(path))
    expert = build_policy(dataclasses.replace(SPEC, options={**SMALL, "trainable": "expert"},
                                              pretrained_policy=str(path)))
    trained = {n for n, p in expert.named_parameters() if p.requires_grad}
    assert trained and all(n.startswith(("action_", "time_mlp", "expert.", "out_norm", "head")) for n in trained)
    lora = build_policy(dataclasses.replace(SPEC, options={**SMALL, "trainable": "lora"}, pretrained_policy=str(path)))
    adapters = {n for n, p in lora.named_parameters() if p.requires_grad} - trained
    assert adapters and all(n.startswith("prefix.") and n.endswith((".a", ".b")) for n in adapters)
    assert any("in_proj_weight" in n for n in adapters)  # the fused attention projection too
    obs = _obs("insert the peg", image=50)
    np.testing.assert_allclose(lora.eval().act(obs, deterministic=True), base.act(obs, deterministic=True), atol=1e-5)
