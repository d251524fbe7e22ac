"""Tanh-Gaussian policy: shapes, ranges, log-prob, act(), and weights through the codec into a fresh policy."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.distributions import Independent, Normal, TanhTransform, TransformedDistribution

from user_policies.policies.base import build_policy
from user_policies.policy_spec import SPEC_METADATA_KEY, PolicySpec
from user_policies.weights_codec import decode_weights, encode_weights

torch.set_num_threads(1)
SPEC = PolicySpec(state_dim=7, action_dim=3, hidden_dims=(32, 32))


def _obs(batch: int) -> dict[str, torch.Tensor]:
    return {"state": torch.randn(batch, SPEC.state_dim) * 3}


def test_forward_and_sample_shapes_and_ranges() -> None:
    torch.manual_seed(0)
    actor = build_policy(SPEC)
    mean, log_std = actor(_obs(64))
    assert mean.shape == log_std.shape == (64, 3)
    assert bool((log_std >= actor.options.log_std_min).all() and (log_std <= actor.options.log_std_max).all())
    action, log_prob = actor.sample(_obs(64))
    assert action.shape == (64, 3) and log_prob.shape == (64,)
    assert bool((action.abs() < 1).all()) and bool(torch.isfinite(log_prob).all())


def test_log_prob_matches_torch_tanh_transformed_normal() -> None:
    torch.manual_seed(1)
    actor = build_policy(SPEC)
    obs = _obs(256)
    generator = torch.Generator().manual_seed(3)
    action, log_prob = actor.sample(obs, generator)
    mean, log_std = actor(obs)
    reference = Independent(TransformedDistribution(Normal(mean, log_std.exp()), [TanhTransform()]), 1)
    ok = action.abs() < 0.999  # atanh in the reference loses precision at the edges
    assert ok.all(dim=-1).sum() > 200
    rows = ok.all(dim=-1)
    torch.testing.assert_close(log_prob[rows], reference.log_prob(action)[rows], atol=2e-3, rtol=1e-4)


def test_log_prob_gradient_reaches_policy_parameters() -> None:
    actor = build_policy(SPEC)
    _, log_prob = actor.sample(_obs(8))
    log_prob.mean().backward()
    assert actor.head.weight.grad is not None and actor.head.weight.grad.abs().sum() > 0


def test_act_takes_one_unbatched_numpy_observation() -> None:
    actor = build_policy(SPEC)
    obs = {"state": np.linspace(-1, 1, 7, dtype=np.float32)}
    action = actor.act(obs, deterministic=True)
    assert action.dtype == np.float32 and action.shape == (1, 3)  # a chunk of one action
    assert np.all(np.abs(action) <= 1.0)
    np.testing.assert_array_equal(action, actor.act(obs, deterministic=True))
    torch.manual_seed(0)
    stochastic = np.stack([actor.act(obs) for _ in range(20)])
    assert stochastic.std(axis=0).min() > 0
    with pytest.raises(ValueError, match="shape"):
        actor.act({"state": np.zeros(6, dtype=np.float32)})
    with pytest.raises(KeyError, match="state"):
        actor.act({})


def test_weights_round_trip_into_fresh_actor_gives_identical_actions() -> None:
    torch.manual_seed(0)
    trained = build_policy(SPEC)
    torch.manual_seed(1)
    fresh = build_policy(SPEC)
    obs = {"state": np.arange(7, dtype=np.float32) / 7}
    assert not np.array_equal(trained.act(obs, True), fresh.act(obs, True))
    packet = encode_weights(trained.state_dict(), policy_id="p", version=1, embodiments=["sim"])
    shapes = {k: tuple(v.shape) for k, v in fresh.state_dict().items()}
    fresh.load_state_dict(decode_weights(packet, expected_shapes=shapes), strict=True)
    np.testing.assert_array_equal(trained.act(obs, True), fresh.act(obs, True))


CHILD = """
import sys, json, numpy as np, torch
from user_policies.policies.base import build_policy
from user_policies.policy_spec import PolicySpec, SPEC_METADATA_KEY
from user_policies.weights_codec import WeightsPacket, decode_weights
meta = json.loads(open(sys.argv[1]).read())
payload = open(sys.argv[2], "rb").read()
packet = WeightsPacket(payload=payload, **meta)
actor = build_policy(PolicySpec.from_json(packet.metadata[SPEC_METADATA_KEY]), load_pretrained=False)
actor.load_state_dict(decode_weights(packet), strict=True)
print(json.dumps(actor.act({"state": np.arange(7, dtype=np.float32) / 7}, deterministic=True).tolist()))
"""


def test_weights_load_strictly_in_another_process(tmp_path) -> None:
    torch.manual_seed(0)
    actor = build_policy(SPEC)
    packet = encode_weights(
        actor.state_dict(), policy_id="p", version=3, embodiments=["sim"],
        metadata={SPEC_METADATA_KEY: SPEC.to_json()},
    )
    header = {k: v for k, v in vars(packet).items() if k != "payload"}
    (tmp_path / "meta.json").write_text(json.dumps(header))
    (tmp_path / "payload.safetensors").write_bytes(packet.payload)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "meta.json"), str(tmp_path / "payload.safetensors")],
        capture_output=True, text=True, check=True, timeout=120,
    )
    child = np.array(json.loads(out.stdout.strip().splitlines()[-1]), dtype=np.float32)
    np.testing.assert_array_equal(child, actor.act({"state": np.arange(7, dtype=np.float32) / 7}, True))
