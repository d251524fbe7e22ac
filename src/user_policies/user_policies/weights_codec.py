"""Policy weights on the wire: safetensors bytes + sha256, never pickle (DESIGN principle 7).

:func:`encode_weights` turns a state dict into a :class:`WeightsPacket`; :func:`decode_weights`
verifies a packet (codec, size, sha256, dtype, embodiment, tensor names and shapes) and raises
:class:`WeightsRejectedError` with the reason on any mismatch, so a receiver keeps its old weights.
Every reason starts with the message field at fault. :func:`sign_packet` and
:func:`check_signature` add and verify an HMAC-SHA256 with a shared secret
(:func:`load_secret`), so that only holders of the secret can publish weights an actor accepts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

CODEC = "safetensors"
FROZEN_METADATA_KEY = "frozen_sha256"
"""Metadata key of weights that leave the policy's frozen tensors out: their :func:`tensors_sha256`,
which the receiver's own frozen tensors must match."""
DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


class WeightsRejectedError(ValueError):
    """A weights packet failed verification; the reason says which check."""


@dataclasses.dataclass(frozen=True)
class WeightsPacket:
    """The fields of ``user_interfaces/msg/PolicyWeights`` without ROS."""

    policy_id: str
    version: int
    embodiments: tuple[str, ...]
    codec: str
    dtype: str
    sha256: str
    byte_size: int
    metadata: dict[str, Any]
    payload: bytes
    learner_id: str = ""
    signature: str = ""


def sha256_hex(payload: bytes) -> str:
    """Hex sha256 of ``payload``."""
    return hashlib.sha256(payload).hexdigest()


def tensors_sha256(tensors: Mapping[str, torch.Tensor]) -> str:
    """Hex sha256 over names, dtypes, shapes and bytes of ``tensors`` (order-independent)."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def encode_weights(
    state_dict: Mapping[str, torch.Tensor],
    *,
    policy_id: str,
    version: int,
    embodiments: Sequence[str],
    dtype: str = "float32",
    metadata: Mapping[str, Any] | None = None,
    learner_id: str = "",
) -> WeightsPacket:
    """Serialise ``state_dict`` (floating tensors cast to ``dtype``) into a verified packet."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    if version <= 0:
        raise ValueError("version must be positive (0 means 'no weights yet')")
    target = DTYPES[dtype]
    tensors = {
        name: (t.detach().to("cpu", target) if t.is_floating_point() else t.detach().cpu()).contiguous()
        for name, t in state_dict.items()
    }
    payload = st_save(tensors, metadata={"policy_id": policy_id, "version": str(version)})
    return WeightsPacket(
        policy_id=policy_id,
        version=int(version),
        embodiments=tuple(embodiments),
        codec=CODEC,
        dtype=dtype,
        sha256=sha256_hex(payload),
        byte_size=len(payload),
        metadata=dict(metadata or {}),
        payload=payload,
        learner_id=learner_id,
    )


def decode_weights(
    packet: WeightsPacket,
    *,
    expected_shapes: Mapping[str, Sequence[int]] | None = None,
    embodiment: str | None = None,
    out_dtype: torch.dtype = torch.float32,
) -> dict[str, torch.Tensor]:
    """Verify ``packet`` and return its tensors (floating ones as ``out_dtype``).

    Raises :class:`WeightsRejectedError` naming the failed check; nothing is returned partially.
    """
    if packet.codec != CODEC:
        raise WeightsRejectedError(f"codec: {packet.codec!r} is not supported (only {CODEC!r})")
    if packet.dtype not in DTYPES:
        raise WeightsRejectedError(f"dtype: {packet.dtype!r} is not one of {sorted(DTYPES)}")
    if len(packet.payload) != packet.byte_size:
        raise WeightsRejectedError(f"byte_size: {packet.byte_size}, but the payload is {len(packet.payload)} bytes")
    digest = sha256_hex(packet.payload)
    if digest != packet.sha256:
        raise WeightsRejectedError(f"sha256: mismatch: payload {digest[:12]}…, header {packet.sha256[:12]}…")
    if embodiment is not None and packet.embodiments and embodiment not in packet.embodiments:
        raise WeightsRejectedError(f"embodiments: {list(packet.embodiments)}, not this robot's {embodiment!r}")
    try:
        tensors = st_load(packet.payload)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise WeightsRejectedError(f"payload: not a valid safetensors file: {exc}") from exc
    if expected_shapes is not None:
        missing = sorted(set(expected_shapes) - set(tensors))
        extra = sorted(set(tensors) - set(expected_shapes))
        if missing or extra:
            raise WeightsRejectedError(f"payload: tensor names differ: missing {missing[:3]}, unexpected {extra[:3]}")
        for name, shape in expected_shapes.items():
            if tuple(tensors[name].shape) != tuple(shape):
                got = tuple(tensors[name].shape)
                raise WeightsRejectedError(f"payload: tensor {name!r} has shape {got}, expected {tuple(shape)}")
    for name, t in tensors.items():
        # A float64 sum of float32/16 values is finite iff every element is (no overflow possible); 5x faster.
        if t.is_floating_point() and not torch.isfinite(t.sum(dtype=torch.float64)):
            raise WeightsRejectedError(f"payload: tensor {name!r} contains NaN or inf")
    return {name: (t.to(out_dtype) if t.is_floating_point() else t) for name, t in tensors.items()}


def packet_to_msg(packet: WeightsPacket, msg: Any) -> Any:
    """Fill a ``PolicyWeights`` message (payload assigned as bytes: ~100× faster than numpy)."""
    msg.policy_id = packet.policy_id
    msg.version = packet.version
    msg.embodiments = list(packet.embodiments)
    msg.codec = packet.codec
    msg.dtype = packet.dtype
    msg.sha256 = packet.sha256
    msg.byte_size = packet.byte_size
    msg.metadata_json = json.dumps(packet.metadata, sort_keys=True)
    msg.payload = packet.payload
    msg.learner_id = packet.learner_id
    msg.signature = packet.signature
    return msg


def packet_from_msg(msg: Any) -> WeightsPacket:
    """Read a ``PolicyWeights`` message into a packet (bytes, no element-wise copy)."""
    try:
        metadata = json.loads(msg.metadata_json) if msg.metadata_json else {}
    except json.JSONDecodeError as exc:
        raise WeightsRejectedError(f"metadata_json: not valid JSON: {exc}") from exc
    payload = msg.payload
    if not isinstance(payload, (bytes, bytearray)):
        payload = memoryview(payload).tobytes()  # array('B') as delivered by rclpy
    return WeightsPacket(
        policy_id=msg.policy_id,
        version=int(msg.version),
        embodiments=tuple(msg.embodiments),
        codec=msg.codec,
        dtype=msg.dtype,
        sha256=msg.sha256,
        byte_size=int(msg.byte_size),
        metadata=metadata,
        payload=bytes(payload),
        learner_id=msg.learner_id,
        signature=msg.signature,
    )


def split_message(msg: Any, part_bytes: int, parts: int) -> list[Any]:
    """``msg`` (a ``PolicyWeights``) as it goes on the topic: itself when its payload is at most ``part_bytes``,
    else ``parts`` messages of the same type, each with a slice of the payload (``part``, ``parts`` set)."""
    payload = bytes(msg.payload)
    if len(payload) <= part_bytes or parts <= 1:
        return [msg]
    size = -(-len(payload) // parts)
    out = []
    for i in range(parts):
        piece = type(msg)()
        for name in msg.get_fields_and_field_types():
            setattr(piece, name, getattr(msg, name))
        piece.part, piece.parts, piece.payload = i, parts, payload[i * size:(i + 1) * size]
        out.append(piece)
    return out


class WeightsParts:
    """Joins the parts of split ``PolicyWeights`` messages back into whole ones (only the newest version of
    each learner is kept while its parts arrive; a whole message passes through)."""

    def __init__(self) -> None:
        self._pending: dict[str, tuple[int, dict[int, Any]]] = {}  # learner_id -> (version, parts by index)

    def add(self, msg: Any) -> Any | None:
        """The whole message once ``msg`` completes one (None while parts are missing, or for a stale part)."""
        if msg.parts <= 1:
            return msg
        version, parts = self._pending.get(msg.learner_id, (0, {}))
        if msg.version < version:
            return None
        if msg.version > version:
            version, parts = msg.version, {}
        parts[msg.part] = msg
        self._pending[msg.learner_id] = (version, parts)
        if any(i not in parts for i in range(msg.parts)):
            return None
        del self._pending[msg.learner_id]
        whole = parts[0]
        whole.payload = b"".join(bytes(parts[i].payload) for i in range(msg.parts))
        whole.part, whole.parts = 0, 1
        return whole


def _signed_bytes(packet: WeightsPacket) -> bytes:
    """Every field but the payload (its sha256 stands for it) and the signature, canonically."""
    fields = {f.name: getattr(packet, f.name) for f in dataclasses.fields(packet)}
    del fields["payload"], fields["signature"]
    return json.dumps(fields, sort_keys=True).encode()


def sign_packet(packet: WeightsPacket, secret: bytes) -> WeightsPacket:
    """``packet`` with its HMAC-SHA256 signature under ``secret``."""
    return dataclasses.replace(packet, signature=hmac.new(secret, _signed_bytes(packet), hashlib.sha256).hexdigest())


def check_signature(packet: WeightsPacket, secret: bytes) -> None:
    """Raise :class:`WeightsRejectedError` unless ``packet`` is signed with ``secret``."""
    if not packet.signature:
        raise WeightsRejectedError("signature: the weights are unsigned and this receiver requires signed weights")
    expected = hmac.new(secret, _signed_bytes(packet), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, packet.signature):
        raise WeightsRejectedError("signature: does not match (another secret, or fields changed after signing)")


def load_secret(path: str | Path) -> bytes:
    """The shared secret in the file ``path`` (surrounding whitespace removed); at least 16 bytes."""
    from user_robot.config_loader import UsageError

    try:
        secret = Path(path).read_bytes().strip()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the weights secret ({exc.strerror})") from exc
    if len(secret) < 16:
        raise UsageError(f"{path}: the weights secret must be at least 16 bytes, got {len(secret)}")
    return secret
