"""Pixel encoder and CNN actor: 2 cameras at 128x128, a frozen pretrained backbone from safetensors."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from user_policies.models import MLP, ResNet10
from user_policies.policies.base import build_policy, frozen_state
from user_policies.policy_spec import PolicySpec
from user_policies.weights_codec import decode_weights, encode_weights, tensors_sha256

torch.set_num_threads(1)
CAMERAS = ("wrist", "front")


def _pixel_obs(batch: int, size: tuple[int, int] = (128, 128), seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    obs = {cam: torch.randint(0, 256, (batch, *size, 3), generator=g, dtype=torch.uint8) for cam in CAMERAS}
    obs["state"] = torch.randn(batch, 5, generator=g)
    return obs


@pytest.mark.parametrize("size", [(128, 128), (64, 80), (97, 33)])
def test_resnet10_output_size_matches_forward(size: tuple[int, int]) -> None:
    net = ResNet10()
    with torch.no_grad():
        out = net(torch.zeros(1, 3, *size))
    assert out.shape == (1, 512, *ResNet10.output_size(*size))


def test_mlp_is_linear_layernorm_relu() -> None:
    mlp = MLP(4, (8, 8), out_dim=2)
    kinds = [type(m).__name__ for m in mlp.net]
    assert kinds == ["Linear", "LayerNorm", "ReLU", "Linear", "LayerNorm", "ReLU", "Linear"]
    assert mlp(torch.zeros(3, 4)).shape == (3, 2)


def test_cnn_actor_two_cameras_with_frozen_pretrained_backbone(tmp_path) -> None:
    torch.manual_seed(0)
    pretrained = ResNet10()
    path = tmp_path / "resnet10.safetensors"
    save_file(pretrained.state_dict(), str(path))
    spec = PolicySpec(state_dim=5, action_dim=6, kind="cnn", cameras=CAMERAS, pretrained_encoder=str(path))
    torch.manual_seed(1)
    actor = build_policy(spec)
    for name, value in pretrained.state_dict().items():
        assert torch.equal(actor.encoder.backbone.state_dict()[name], value), name
    assert not any(p.requires_grad for p in actor.encoder.backbone.parameters())

    obs = _pixel_obs(4)
    features = actor.encoder(obs)
    assert features.shape == (4, 2 * 256 + 64)
    assert bool((features.abs() <= 1).all())  # tanh latents
    action, log_prob = actor.sample(obs)
    assert action.shape == (4, 6) and log_prob.shape == (4,)
    (action.sum() + log_prob.sum()).backward()
    assert all(p.grad is None for p in actor.encoder.backbone.parameters())
    assert actor.encoder.heads["wrist"][1].weight.grad.abs().sum() > 0  # heads still train

    single = {k: v[0].numpy() for k, v in obs.items()}
    act = actor.act(single, deterministic=True)
    assert act.shape == (1, 6) and act.dtype == np.float32 and np.all(np.abs(act) <= 1)


def test_cameras_are_read_by_name_not_position() -> None:
    spec = PolicySpec(state_dim=5, action_dim=2, kind="cnn", cameras=CAMERAS, image_size=(64, 64))
    torch.manual_seed(0)
    actor = build_policy(spec)
    obs = _pixel_obs(2, (64, 64))
    swapped = {**obs, "wrist": obs["front"], "front": obs["wrist"]}
    with torch.no_grad():
        assert not torch.allclose(actor(obs)[0], actor(swapped)[0])


def test_cnn_weights_round_trip_fp16_and_no_pretrained_file_needed(tmp_path) -> None:
    spec = PolicySpec(state_dim=5, action_dim=2, kind="cnn", cameras=CAMERAS, image_size=(64, 64),
                      pretrained_encoder=str(tmp_path / "not_on_this_machine.safetensors"))
    torch.manual_seed(0)
    learner_side = build_policy(spec, load_pretrained=False)
    packet = encode_weights(learner_side.state_dict(), policy_id="p", version=1, embodiments=["sim"], dtype="float16")
    actor_side = build_policy(spec, load_pretrained=False)
    actor_side.load_state_dict(decode_weights(packet), strict=True)
    obs = {k: v[0].numpy() for k, v in _pixel_obs(1, (64, 64)).items()}
    np.testing.assert_allclose(actor_side.act(obs, True), learner_side.act(obs, True), atol=5e-2)


def test_a_frozen_backbone_is_the_same_in_every_build_while_another_thread_draws_random_numbers() -> None:
    """(An actor builds its network on the weights thread while the control thread samples actions.)"""
    spec = PolicySpec(state_dim=5, action_dim=2, kind="cnn", cameras=CAMERAS, image_size=(64, 64))
    stop = threading.Event()

    def draw() -> None:
        while not stop.is_set():
            torch.rand(64)

    sampler = threading.Thread(target=draw)
    sampler.start()
    try:
        builds = [build_policy(spec) for _ in range(3)]
    finally:
        stop.set()
        sampler.join()
    digests = {tensors_sha256(frozen_state(b)) for b in builds}
    assert frozen_state(builds[0]) and len(digests) == 1
    assert not torch.equal(builds[0].encoder.heads["wrist"][1].weight, builds[1].encoder.heads["wrist"][1].weight)


def test_a_channel_reduction_trains_and_shrinks_what_each_version_carries() -> None:
    plain = PolicySpec(state_dim=5, action_dim=6, kind="cnn", cameras=CAMERAS)
    reduced = PolicySpec(state_dim=5, action_dim=6, kind="cnn", cameras=CAMERAS, reduced_channels=32)
    sizes = {}
    for spec in (plain, reduced):
        actor = build_policy(spec)
        frozen = frozen_state(actor)
        sizes[spec.reduced_channels] = sum(v.numel() for k, v in actor.state_dict().items() if k not in frozen)
    assert sizes[32] * 6 < sizes[0]  # the 4096 -> 256 projections were most of it

    torch.manual_seed(0)
    actor = build_policy(reduced)
    conv = actor.encoder.heads["wrist"][0]
    assert isinstance(conv, torch.nn.Conv2d) and conv.out_channels == 32
    action, log_prob = actor.sample(_pixel_obs(3))
    (action.sum() + log_prob.sum()).backward()
    assert conv.weight.grad.abs().sum() > 0 and all(p.grad is None for p in actor.encoder.backbone.parameters())
    with pytest.raises(ValueError, match="reduced_channels must be >= 0"):
        PolicySpec(kind="cnn", cameras=CAMERAS, reduced_channels=-1)
