"""PolicySpec: JSON round trip and validation."""

from __future__ import annotations

import json

import pytest

from user_policies.policy_spec import PolicySpec


def test_json_round_trip_preserves_every_field() -> None:
    spec = PolicySpec(
        state_dim=19, action_dim=6, kind="cnn", cameras=("wrist", "front"), image_size=(96, 128),
        hidden_dims=(128, 64), pretrained_encoder="resnet10.safetensors", freeze_encoder=False,
    )
    text = spec.to_json()
    assert json.loads(text)["cameras"] == ["wrist", "front"]
    assert PolicySpec.from_json(text) == spec


def test_observation_shapes_follow_kind() -> None:
    cnn = PolicySpec(state_dim=3, action_dim=2, kind="cnn", cameras=("wrist",), image_size=(64, 80))
    assert cnn.observation_shapes() == {"state": (3,), "wrist": (64, 80, 3)}
    mlp = PolicySpec(state_dim=3, action_dim=2, cameras=("wrist",))
    assert mlp.observation_shapes() == {"state": (3,)}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "cnn"}, "at least one camera"),
        ({"kind": "cnn", "cameras": ("state",)}, "not 'state'"),
        ({"kind": "rnn"}, "kind must be"),
        ({"image_size": (8, 8)}, "image_size"),
        ({"log_std_min": 2.0, "log_std_max": -2.0}, "log_std_min"),
    ],
)
def test_invalid_specs_are_rejected(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PolicySpec(state_dim=3, action_dim=2, **kwargs)


def test_unknown_json_key_is_rejected() -> None:
    data = PolicySpec(state_dim=3, action_dim=2).to_dict() | {"hiden_dims": [1]}
    with pytest.raises(ValueError, match="hiden_dims"):
        PolicySpec.from_dict(data)
