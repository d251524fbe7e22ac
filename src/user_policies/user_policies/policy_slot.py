"""The actor's current policy: verified weights swapped in atomically, the old kept on any error.

:meth:`PolicySlot.load_message` runs on the weights thread: it decodes and verifies a
``PolicyWeights`` message (sha256, size, embodiment, architecture, tensor shapes, finiteness),
loads it into a spare network and only then swaps the reference the control loop reads, so a
tick never sees half-loaded weights and a corrupted message changes nothing. Two networks are
kept (double buffering): building a CNN per update would hold the GIL for ~100 ms and stall the
control loop; copying tensors into an existing one does not.

Weights are taken from one learner run at a time (its ``learner_id``): the first one heard, or the
one configured; versions only need to grow within it, so a stray publisher (another learner, a
test script, a replayed bag) can neither take the robot over nor lock the real learner out with a
huge version. :meth:`PolicySlot.follow` switches learners explicitly. With a shared secret, weights
must also carry its HMAC signature.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import torch

from user_policies.policies.base import build_policy
from user_policies.policy_spec import SPEC_METADATA_KEY, PolicySpec
from user_policies.weights_codec import WeightsRejectedError, check_signature, decode_weights, packet_from_msg


class PolicySlot:
    """Holds ``(network, version)``; see the module docstring."""

    def __init__(
        self,
        embodiment: str,
        state_dim: int,
        action_dim: int,
        cameras: tuple[str, ...] = (),
        *,
        learner_id: str = "",
        secret: bytes | None = None,
    ) -> None:
        self.embodiment = embodiment
        self.learner_id = learner_id  # the learner followed ("" = the next one heard)
        self.secret = secret
        self._newest = 0  # newest version taken from the followed learner
        self.state_dim = state_dim
        self.action_dim = action_dim
        self.cameras = tuple(cameras)
        self._current: tuple[torch.nn.Module, int, PolicySpec] | None = None
        self._spare: tuple[torch.nn.Module, PolicySpec] | None = None
        self._in_use: dict[int, threading.Lock] = {}
        self._loaded_at = 0.0
        self._swap_lock = threading.Lock()
        self.rejected = 0
        self.last_latency_s = 0.0

    @property
    def version(self) -> int:
        """Version of the weights in use (0 = none yet)."""
        current = self._current
        return current[1] if current else 0

    def age_s(self) -> float:
        """Seconds since the current weights were swapped in (0 if none)."""
        return time.monotonic() - self._loaded_at if self._current else 0.0

    def follow(self, learner_id: str = "") -> None:
        """Take weights from ``learner_id`` from now on ("" = whichever learner is heard next); the
        current weights stay in use until that learner's arrive."""
        with self._swap_lock:
            self.learner_id, self._newest = learner_id, 0

    def load_message(self, msg: Any) -> str:
        """Verify and swap in a ``PolicyWeights`` message; returns '' on success or the rejection reason."""
        start = time.monotonic()
        try:
            packet = packet_from_msg(msg)
            if self.secret is not None:
                check_signature(packet, self.secret)
            if self.learner_id and packet.learner_id != self.learner_id:
                raise WeightsRejectedError(
                    f"learner_id: {packet.learner_id!r} is not the learner this actor follows ({self.learner_id!r})"
                )
            if packet.version <= self._newest:
                raise WeightsRejectedError(f"version: {packet.version} is not newer than {self._newest}")
            spec = self._spec(packet.metadata)
            self._check_spec(spec)
            network = self._spare_for(spec)
            expected = {name: tuple(t.shape) for name, t in network.state_dict().items()}
            tensors = decode_weights(packet, expected_shapes=expected, embodiment=self.embodiment)
            with self._in_use[id(network)]:  # a tick may still be using it (it was current before)
                network.load_state_dict(tensors, strict=True)
        except (WeightsRejectedError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            self.rejected += 1
            return str(exc)
        with self._swap_lock:
            if self.learner_id and packet.learner_id != self.learner_id:  # follow() was called meanwhile
                self.rejected += 1
                return f"learner_id: {packet.learner_id!r} is not the learner this actor follows"
            self.learner_id, self._newest = packet.learner_id, packet.version
            previous = self._current
            self._current = (network, packet.version, spec)
            self._loaded_at = time.monotonic()
            self._spare = (previous[0], previous[2]) if previous is not None else None
        self.last_latency_s = time.monotonic() - start
        return ""

    @staticmethod
    def _spec(metadata: dict[str, Any]) -> PolicySpec:
        if SPEC_METADATA_KEY not in metadata:
            raise WeightsRejectedError(f"metadata_json: no {SPEC_METADATA_KEY!r}: cannot build the policy")
        try:
            return PolicySpec.from_json(metadata[SPEC_METADATA_KEY])
        except (ValueError, TypeError, KeyError) as exc:
            raise WeightsRejectedError(f"metadata_json.{SPEC_METADATA_KEY}: not a policy spec ({exc})") from exc

    def _spare_for(self, spec: PolicySpec) -> torch.nn.Module:
        """The network to load into: the previous one if the architecture is unchanged, else a new one."""
        if self._spare is None or self._spare[1] != spec:
            network = build_policy(spec, load_pretrained=False).eval()
            self._in_use[id(network)] = threading.Lock()
            self._spare = (network, spec)
        return self._spare[0]

    def _check_spec(self, spec: PolicySpec) -> None:
        if spec.state_dim != self.state_dim or spec.action_dim != self.action_dim:
            raise WeightsRejectedError(
                f"metadata_json.{SPEC_METADATA_KEY}: policy expects state {spec.state_dim} / action {spec.action_dim}, "
                f"this robot has state {self.state_dim} / action {self.action_dim}"
            )
        if spec.image_keys != self.cameras:
            raise WeightsRejectedError(
                f"metadata_json.{SPEC_METADATA_KEY}: policy cameras {list(spec.image_keys)} differ from "
                f"{list(self.cameras)}"
            )

    def reset(self) -> None:
        """Episode start: reset the current policy's per-episode state."""
        current = self._current
        if current is not None:
            with self._in_use[id(current[0])]:
                current[0].reset()

    def act(self, obs: dict[str, np.ndarray], deterministic: bool) -> tuple[np.ndarray, int] | None:
        """The current policy's plan (its chunk's first ``steps_per_plan`` rows, H × A) and version.

        None before the first weights.
        """
        current = self._current
        if current is None:
            return None
        network, version, spec = current
        with self._in_use[id(network)]:
            return network.act(obs, deterministic=deterministic)[: spec.steps_per_plan], version

