"""Weights only from whom they should come: one learner run at a time, optionally signed.

Real learners (LearnerCore with real torch, each with its own log dir and so its own identity)
publish to a real PolicySlot, as the actor's weights thread does; a stray publisher is a third
learner, or a hand-edited message.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from user_interfaces.msg import PolicyWeights
from user_learner.learner_core import LearnerCore
from user_policies.observation import state_dim
from user_policies.policy_slot import PolicySlot
from user_policies.weights_codec import load_secret, packet_to_msg, sign_packet
from user_robot.config_loader import UsageError
from user_robot.task_config import load_task

TASK = load_task("peg_insertion")
SECRET = b"a shared secret of the cell, 32 b"


def learner(path) -> LearnerCore:
    return LearnerCore(TASK, "sac", "state", ["franka_panda"], path, tensorboard=False)


def message(core: LearnerCore, version: int | None = None, secret: bytes | None = None) -> PolicyWeights:
    packet = core.weights_packet()
    if version is not None:
        packet = dataclasses.replace(packet, version=version)
    if secret is not None:
        packet = sign_packet(packet, secret)
    return packet_to_msg(packet, PolicyWeights())


def slot(**kwargs) -> PolicySlot:
    return PolicySlot("franka_panda", state_dim(TASK), TASK.action.dims, **kwargs)


def test_a_stray_publisher_neither_takes_over_nor_locks_the_learner_out(tmp_path) -> None:
    real, stray = learner(tmp_path / "real"), learner(tmp_path / "stray")
    assert real.learner_id != stray.learner_id
    actor = slot()
    assert actor.load_message(message(real)) == ""
    assert actor.learner_id == real.learner_id

    reason = actor.load_message(message(stray, version=2**63))
    assert reason.startswith("learner_id: ") and stray.learner_id in reason
    assert actor.load_message(message(real)) == "" and actor.version == 2  # not locked out

    # the same run restarted (same log dir) keeps its identity and its versions go on
    restarted = learner(tmp_path / "real")
    assert restarted.learner_id == real.learner_id
    assert actor.load_message(message(restarted)) == "" and actor.version == 3

    # switching learners is explicit; the old weights stay in use until the new learner's arrive
    actor.follow("")
    assert actor.version == 3
    assert actor.load_message(message(stray)) == "" and actor.learner_id == stray.learner_id
    assert actor.load_message(message(real)).startswith("learner_id: ")


def test_a_pinned_actor_takes_only_its_learner(tmp_path) -> None:
    real, stray = learner(tmp_path / "real"), learner(tmp_path / "stray")
    actor = slot(learner_id=real.learner_id)
    assert actor.load_message(message(stray)).startswith("learner_id: ") and actor.version == 0
    assert actor.load_message(message(real)) == ""


def test_with_a_secret_only_signed_weights_are_taken(tmp_path) -> None:
    real = learner(tmp_path / "real")
    actor = slot(secret=SECRET)
    assert actor.load_message(message(real)).startswith("signature: the weights are unsigned")
    assert actor.load_message(message(real, secret=b"another secret of sixteen bytes")).startswith(
        "signature: does not match"
    )
    tampered = message(real, secret=SECRET)
    tampered.version = 2**63  # a field changed after signing
    assert tampered.version == 2**63 and actor.load_message(tampered).startswith("signature: does not match")
    assert actor.version == 0 and actor.rejected == 3
    assert actor.load_message(message(real, secret=SECRET)) == ""
    action, _ = actor.act({"state": np.zeros(state_dim(TASK), np.float32)}, deterministic=True)
    assert np.isfinite(action).all()


def test_rejections_name_the_field(tmp_path) -> None:
    real = learner(tmp_path / "real")
    actor = slot()
    no_spec = message(real)
    no_spec.metadata_json = ""
    assert actor.load_message(no_spec) == "metadata_json: no 'policy_spec': cannot build the policy"
    empty_spec = message(real)
    empty_spec.metadata_json = '{"policy_spec": ""}'
    assert actor.load_message(empty_spec).startswith("metadata_json.policy_spec: not a policy spec")
    broken = message(real)
    broken.metadata_json = "{"
    assert actor.load_message(broken).startswith("metadata_json: not valid JSON")
    short = message(real)
    short.byte_size += 1
    assert actor.load_message(short).startswith("byte_size: ")
    assert actor.version == 0


def test_the_secret_file_is_checked(tmp_path) -> None:
    with pytest.raises(UsageError, match="cannot read the weights secret"):
        load_secret(tmp_path / "missing")
    (tmp_path / "short").write_text("abc\n")
    with pytest.raises(UsageError, match="at least 16 bytes"):
        load_secret(tmp_path / "short")
    (tmp_path / "ok").write_bytes(SECRET + b"\n")
    assert load_secret(tmp_path / "ok") == SECRET
