"""PolicySpec: JSON round trip and validation."""

from __future__ import annotations

import json

import pytest

from user_policies.policies.base import build_policy
from user_policies.policy_spec import PolicySpec


def test_json_round_trip_preserves_every_field() -> None:
    spec = PolicySpec(
        state_dim=19, action_dim=6, kind="cnn", cameras=("wrist", "front"), image_size=(96, 128),
        hidden_dims=(128, 64), pretrained_encoder="resnet10.safetensors", freeze_encoder=False,
    )
    text = spec.to_json()
    assert json.loads(text)["cameras"] == ["wrist", "front"]
    assert PolicySpec.from_json(text) == spec


def test_observation_shapes_follow_cameras() -> None:
    cnn = PolicySpec(state_dim=3, action_dim=2, kind="cnn", cameras=("wrist",), image_size=(64, 80))
    assert cnn.observation_shapes() == {"state": (3,), "wrist": (64, 80, 3)}
    mlp = PolicySpec(state_dim=3, action_dim=2)
    assert mlp.observation_shapes() == {"state": (3,)}


def test_algorithm_yaml_policy_takes_the_task_fields() -> None:
    recipe = PolicySpec(kind="flow", chunk_size=4, replan_every=2)
    spec = recipe.for_task(12, 3, ("wrist",), (64, 64))
    assert (spec.state_dim, spec.action_dim, spec.cameras, spec.image_size) == (12, 3, ("wrist",), (64, 64))
    assert spec.steps_per_plan == 2 and PolicySpec(chunk_size=5).steps_per_plan == 5
    with pytest.raises(ValueError, match="positive"):
        recipe.for_task(0, 3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "cnn"}, "at least one camera"),
        ({"kind": "mlp", "cameras": ("wrist",)}, "state only"),
        ({"kind": "cnn", "cameras": ("state",)}, "not 'state'"),
        ({"kind": "rnn"}, r"unknown policy kind 'rnn' \(registered: cnn, .*flow, mlp"),
        ({"image_size": (8, 8)}, "image_size"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"chunk_size": 2, "replan_every": 3}, "replan_every"),
        ({"chunk_size": 2}, "chunk_size must be 1"),
        ({"options": {"log_std_min": 2.0, "log_std_max": -2.0}}, "log_std_min"),
        ({"options": {"log_std_mni": 2.0}}, r"options\.log_std_mni: unknown key"),
        ({"kind": "flow", "options": {"d_model": 30, "n_heads": 4}}, "multiple of n_heads"),
    ],
)
def test_invalid_specs_are_rejected(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_policy(PolicySpec(state_dim=3, action_dim=2, **kwargs))


def test_unknown_json_key_is_rejected() -> None:
    data = PolicySpec(state_dim=3, action_dim=2).to_dict() | {"hiden_dims": [1]}
    with pytest.raises(ValueError, match="hiden_dims"):
        PolicySpec.from_dict(data)
