"""Weights that scale: a VLA fine-tuned with LoRA on a local base file publishes only its adapters and
action expert, keyed by the sha256 of the frozen base; an actor holding the same base runs exactly the
learner's policy, and one whose base differs rejects the delta and keeps its weights."""

from __future__ import annotations

import numpy as np
import torch
from safetensors.torch import save_file

from user_interfaces.msg import PolicyWeights
from user_learner.learner_core import LearnerCore
from user_policies.policies.base import build_policy
from user_policies.policy_slot import PolicySlot
from user_policies.weights_codec import FROZEN_METADATA_KEY, packet_to_msg
from user_robot.config_loader import CONFIG_DIR_ENV, write_config_copy
from user_robot.task_config import load_task

SMALL = {"d_model": 64, "n_heads": 2, "prefix_layers": 2, "expert_layers": 1, "flow_steps": 4}


def _core(tmp_path, monkeypatch, name: str, **policy) -> LearnerCore:
    config = write_config_copy(tmp_path / f"config_{name}", {"algorithms/hg_dagger": {
        "policy.kind": "vla", "policy.chunk_size": 4, **{f"policy.{k}": v for k, v in policy.items()}}})
    monkeypatch.setenv(CONFIG_DIR_ENV, str(config))
    return LearnerCore(load_task("peg_insertion"), "hg_dagger", "state", ["franka_panda"], tmp_path / name,
                       tensorboard=False)


def test_a_lora_vla_sends_only_what_trains_and_a_delta_for_another_base_is_rejected(tmp_path, monkeypatch) -> None:
    torch.manual_seed(0)
    clone = _core(tmp_path, monkeypatch, "clone", options=SMALL)  # a cloned VLA: its whole tensors are the base
    base = tmp_path / "base.safetensors"
    save_file(clone.algorithm.policy.state_dict(), str(base))
    full = clone.weights_packet()

    tuned = _core(tmp_path, monkeypatch, "lora", options={**SMALL, "trainable": "lora"}, pretrained_policy=str(base))
    trainable = {n for n, p in tuned.algorithm.policy.named_parameters() if p.requires_grad}
    assert trainable and all(".a" in n or ".b" in n or not n.startswith(("prefix.", "patch", "byte", "state_in"))
                             for n in trainable)
    delta = tuned.weights_packet()
    assert FROZEN_METADATA_KEY in delta.metadata and len(delta.payload) < 0.5 * len(full.payload)

    slot = PolicySlot("franka_panda", tuned.spec.state_dim, tuned.spec.action_dim)
    assert slot.load_message(packet_to_msg(delta, PolicyWeights())) == ""
    obs = {"state": np.random.default_rng(0).normal(size=tuned.spec.state_dim).astype(np.float32)}
    chunk, version = slot.act(obs, deterministic=True)
    np.testing.assert_allclose(chunk, tuned.algorithm.policy.act(obs, deterministic=True), atol=1e-5)
    assert version == 1

    save_file(build_policy(clone.spec).state_dict(), str(base))  # this machine's base file is another model
    error = slot.load_message(packet_to_msg(tuned.weights_packet(), PolicyWeights()))
    assert "frozen" in error, error
    assert slot.version == 1  # the old weights stay
    np.testing.assert_array_equal(slot.act(obs, deterministic=True)[0], chunk)
