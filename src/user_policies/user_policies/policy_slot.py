"""The actor's current policy: verified weights swapped in atomically, the old kept on any error.

:meth:`PolicySlot.load_message` runs on the weights thread: it decodes and verifies a
``PolicyWeights`` message (sha256, size, embodiment, architecture, tensor shapes, finiteness),
loads it into a spare network and only then swaps the reference the control loop reads, so a
tick never sees half-loaded weights and a corrupted message changes nothing. Two networks are
kept (double buffering): building a CNN per update would hold the GIL for ~100 ms and stall the
control loop; copying tensors into an existing one does not.

Weights that leave a frozen encoder out (``frozen_sha256`` in their metadata) load into a network
that built it itself (the fixed-seed initialisation, or the same local pretrained file), after its
frozen tensors' hash matched the learner's.

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

from user_policies.policies.base import build_policy, frozen_state
from user_policies.policy_spec import SPEC_METADATA_KEY, PolicySpec
from user_policies.weights_codec import (
    FROZEN_METADATA_KEY,
    WeightsRejectedError,
    check_signature,
    decode_weights,
    packet_from_msg,
    tensors_sha256,
)


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
        device: str = "cpu",
    ) -> None:
        """``device``: where the networks run (``cpu``, ``cuda``, ``cuda:1``)."""
        self.embodiment = embodiment
        self.device = device
        self.learner_id = learner_id  # the learner followed ("" = the next one heard)
        self.secret = secret
        self._newest = 0  # newest version taken from the followed learner
        self.state_dim = state_dim
        self.action_dim = action_dim
        self.cameras = tuple(cameras)
        self._current: tuple[torch.nn.Module, int, PolicySpec] | None = None
        self._spare: tuple[torch.nn.Module, PolicySpec] | None = None
        self._in_use: dict[int, threading.Lock] = {}
        self._frozen: dict[int, tuple[frozenset[str], str]] = {}  # network -> its frozen tensors' names, sha256
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
            frozen_sha = packet.metadata.get(FROZEN_METADATA_KEY)
            network = self._spare_for(spec, frozen_sha)
            left_out = self._frozen[id(network)][0] if frozen_sha else frozenset()
            expected = {name: tuple(t.shape) for name, t in network.state_dict().items() if name not in left_out}
            tensors = decode_weights(packet, expected_shapes=expected, embodiment=self.embodiment)
            with self._in_use[id(network)]:  # a tick may still be using it (it was current before)
                network.load_state_dict(tensors, strict=not frozen_sha)
            if not frozen_sha:
                self._frozen.pop(id(network), None)  # its frozen tensors are now the learner's
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

    def _spare_for(self, spec: PolicySpec, frozen_sha: str | None) -> torch.nn.Module:
        """The network to load into: the previous one if the architecture is unchanged (and, for weights
        without the frozen encoder, its frozen tensors are the learner's), else a new one."""
        spare = self._spare
        if spare is None or spare[1] != spec or (frozen_sha and self._frozen_digest(spare[0]) != frozen_sha):
            try:
                network = build_policy(spec, load_pretrained=bool(frozen_sha), device=self.device).eval()
            except OSError as exc:
                raise WeightsRejectedError(
                    f"metadata_json.{FROZEN_METADATA_KEY}: the weights leave the frozen encoder out and this actor "
                    f"cannot build it: {exc}"
                ) from exc
            self._in_use[id(network)] = threading.Lock()
            self._frozen.pop(id(network), None)  # (an entry of a collected network with the same id)
            self._spare = (network, spec)
            if frozen_sha and self._frozen_digest(network) != frozen_sha:
                raise WeightsRejectedError(
                    f"metadata_json.{FROZEN_METADATA_KEY}: the learner's frozen encoder differs from the one this "
                    f"actor builds (another pretrained_encoder file, or another version of the code)"
                )
        return self._spare[0]

    def _frozen_digest(self, network: torch.nn.Module) -> str:
        """sha256 of ``network``'s frozen tensors (computed once per network and kept until a complete load)."""
        if id(network) not in self._frozen:
            frozen = frozen_state(network)
            self._frozen[id(network)] = (frozenset(frozen), tensors_sha256(frozen))
        return self._frozen[id(network)][1]

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

