"""The safetensors weights codec: round trip and every rejection path."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from user_policies.weights_codec import WeightsRejectedError, decode_weights, encode_weights


def _packet(dtype: str = "float32"):
    torch.manual_seed(0)
    state = {"a.weight": torch.randn(8, 4), "a.bias": torch.randn(8), "steps": torch.tensor([3])}
    return state, encode_weights(state, policy_id="p", version=1, embodiments=["franka_panda"], dtype=dtype)


def test_round_trip_float32_is_exact() -> None:
    state, packet = _packet()
    out = decode_weights(packet, expected_shapes={k: v.shape for k, v in state.items()}, embodiment="franka_panda")
    for name, tensor in state.items():
        assert torch.equal(out[name], tensor)


def test_fp16_halves_payload_and_stays_close() -> None:
    state, packet32 = _packet()
    _, packet16 = _packet("float16")
    assert packet16.byte_size < packet32.byte_size
    out = decode_weights(packet16)
    assert out["a.weight"].dtype == torch.float32
    assert torch.allclose(out["a.weight"], state["a.weight"], atol=1e-2)


def test_wrong_sha256_is_rejected_with_clear_error() -> None:
    _, packet = _packet()
    bad = dataclasses.replace(packet, sha256="0" * 64)
    with pytest.raises(WeightsRejectedError, match=r"^sha256: mismatch"):
        decode_weights(bad)


def test_flipped_payload_byte_is_rejected() -> None:
    _, packet = _packet()
    corrupted = bytearray(packet.payload)
    corrupted[len(corrupted) // 2] ^= 0xFF
    with pytest.raises(WeightsRejectedError, match="sha256"):
        decode_weights(dataclasses.replace(packet, payload=bytes(corrupted)))


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"codec": "pickle"}, "^codec: "),
        ({"byte_size": 3}, "^byte_size: "),
        ({"dtype": "int8"}, "^dtype: "),
    ],
)
def test_header_mismatches_are_rejected(change: dict, match: str) -> None:
    _, packet = _packet()
    with pytest.raises(WeightsRejectedError, match=match):
        decode_weights(dataclasses.replace(packet, **change))


def test_wrong_embodiment_and_shapes_are_rejected() -> None:
    state, packet = _packet()
    with pytest.raises(WeightsRejectedError, match="embodiment"):
        decode_weights(packet, embodiment="arx5")
    shapes = {k: v.shape for k, v in state.items()}
    shapes["a.weight"] = (4, 8)
    with pytest.raises(WeightsRejectedError, match="shape"):
        decode_weights(packet, expected_shapes=shapes)


def test_nan_weights_are_rejected() -> None:
    packet = encode_weights({"w": torch.tensor([1.0, float("nan")])}, policy_id="p", version=2, embodiments=[])
    with pytest.raises(WeightsRejectedError, match="NaN"):
        decode_weights(packet)


def test_a_large_payload_travels_in_parts_that_join_in_any_order_and_only_for_the_newest_version() -> None:
    import random

    from user_interfaces.msg import PolicyWeights
    from user_policies.weights_codec import WeightsParts, packet_from_msg, packet_to_msg, split_message

    def message(version: int) -> PolicyWeights:
        tensors = {"w": torch.randn(64, 64, generator=torch.Generator().manual_seed(version))}
        packet = encode_weights(tensors, policy_id="p", version=version, embodiments=["franka_panda"], learner_id="L")
        return packet_to_msg(packet, PolicyWeights())

    small = message(1)
    assert split_message(small, part_bytes=len(small.payload), parts=4) == [small]  # fits: one whole message
    parts = split_message(message(2), part_bytes=1000, parts=4)
    assert [(p.part, p.parts) for p in parts] == [(0, 4), (1, 4), (2, 4), (3, 4)]
    assert all(len(p.payload) < 0.3 * parts[0].byte_size for p in parts) and len({p.sha256 for p in parts}) == 1

    joiner = WeightsParts()
    older = split_message(message(1), part_bytes=1000, parts=4)
    shuffled = [*parts[:2], older[0], *parts[2:3]]
    random.Random(0).shuffle(shuffled)
    assert all(joiner.add(p) is None for p in shuffled)  # the version-1 part arrived late: dropped, 2 is missing one
    whole = joiner.add(parts[3])
    assert whole is not None and whole.parts == 1
    assert torch.equal(decode_weights(packet_from_msg(whole))["w"], decode_weights(packet_from_msg(message(2)))["w"])
    assert joiner.add(older[1]) is None  # a stale version's part never completes anything
    broken = split_message(message(3), part_bytes=1000, parts=4)
    broken[1].payload = bytes(len(broken[1].payload))  # a corrupted part: the joined payload fails its sha256
    joined = [joiner.add(p) for p in broken][-1]
    with pytest.raises(WeightsRejectedError, match="sha256"):
        decode_weights(packet_from_msg(joined))
