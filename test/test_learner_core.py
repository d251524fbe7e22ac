"""LearnerCore with real torch: assembles transitions, trains, publishes weights the actor's slot accepts."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from user_interfaces.msg import PolicyWeights
from user_learner.episode_assembler import StepRecord
from user_learner.learner_core import LearnerCore
from user_policies.observation import state_dim
from user_policies.policy_slot import PolicySlot
from user_policies.weights_codec import FROZEN_METADATA_KEY, encode_weights, packet_to_msg
from user_robot.task_config import load_task

TASK = load_task("peg_insertion")


def episode(robot: str, n: int, intervened: bool = False, success: bool = True) -> list[StepRecord]:
    rng = np.random.default_rng(n)
    dim = state_dim(TASK)
    steps = [
        StepRecord(
            robot,
            f"{robot}-ep{n}",
            t,
            {"state": rng.normal(size=dim).astype(np.float32)},
            rng.uniform(-1, 1, TASK.action.dims).astype(np.float32),
            float(t == n - 1),
            intervened=intervened,
        )
        for t in range(n)
    ]
    final = StepRecord(
        robot,
        f"{robot}-ep{n}",
        n,
        {"state": np.zeros(dim, np.float32)},
        np.zeros(0, np.float32),
        0.0,
        terminated=success,
        truncated=not success,
        end_reason=1 if success else 3,
    )
    return [*steps, final]


def small_core(tmp_path, algo: str = "rlpd") -> LearnerCore:
    core = LearnerCore(TASK, algo, "state", ["franka_panda"], tmp_path, tensorboard=False)
    core.cfg = dataclasses.replace(core.cfg, min_buffer=10)
    return core


def test_ingest_update_publish_and_actor_accepts(tmp_path) -> None:
    torch.set_num_threads(1)
    core = small_core(tmp_path)
    assert core.add_demos(episode("demo", 12, intervened=True)) == 12
    stats = None
    for record in episode("robot_0", 15, success=True):
        stats = core.ingest(record) or stats
    assert stats is not None and stats.success and stats.length == 15
    assert len(core.online) == 15 and core.ready()
    for record in episode("robot_1", 5, intervened=True):
        core.ingest(record)
    assert len(core.demo) == 12 + 5  # intervened steps also go to the demo buffer
    metrics = core.update()
    assert np.isfinite(metrics["critic_loss"])

    slot = PolicySlot("franka_panda", state_dim(TASK), TASK.action.dims)
    assert slot.act({"state": np.zeros(state_dim(TASK), np.float32)}, deterministic=True) is None
    assert slot.load_message(packet_to_msg(core.weights_packet(), PolicyWeights())) == ""
    action, version = slot.act({"state": np.zeros(state_dim(TASK), np.float32)}, deterministic=True)
    assert version == 1 and action.shape == (1, TASK.action.dims)  # a chunk of one action
    expected = core.algorithm.policy.act({"state": np.zeros(state_dim(TASK), np.float32)}, deterministic=True)
    np.testing.assert_allclose(action, expected, atol=1e-6)

    bad = packet_to_msg(core.weights_packet(), PolicyWeights())
    bad.payload = bytes(bad.payload[:-1]) + b"\x00"
    assert "sha256" in slot.load_message(bad)
    assert slot.version == 1 and slot.rejected == 1
    other = packet_to_msg(core.weights_packet(), PolicyWeights())
    other.embodiments = ["arx5"]
    assert "embodiment" in slot.load_message(other) and slot.version == 1


def test_hg_dagger_learns_from_takeovers_and_demos_only_and_flags_successful_episodes(tmp_path) -> None:
    torch.set_num_threads(1)
    core = LearnerCore(TASK, "hg_dagger", "state", ["franka_panda"], tmp_path, tensorboard=False)
    assert not core.ready()
    for record in episode("robot_0", 15):
        core.ingest(record)
    assert len(core.online) == 15 and not core.ready()  # the policy ran alone: nothing to imitate
    for record in episode("robot_0", 6, intervened=True, success=False):
        core.ingest(record)
    for record in episode("robot_1", 4, intervened=True, success=True):
        core.ingest(record)
    assert core.ready() and len(core.demo) == 0  # takeovers stay online rows (not copied to the demos)
    rows = core.algorithm.select_online(core.online)
    assert len(rows) == 10 and core.online.intervened[rows].all() and core.online.success[rows].sum() == 4
    metrics = core.update()
    assert np.isfinite(metrics["imitation_loss"]) and metrics["intervened_share"] == 1.0
    assert core.add_demos(episode("demo", 12)) == 12
    assert 0.0 < core.update()["intervened_share"] < 1.0  # half demos (demo_ratio 0.5)


def test_checkpoint_resume_restores_everything(tmp_path) -> None:
    torch.set_num_threads(1)
    core = small_core(tmp_path)
    for record in episode("robot_0", 20):
        core.ingest(record)
    for _ in range(3):
        core.update()
    core.weights_packet()
    core.save()
    resumed = small_core(tmp_path)
    assert resumed.resume()
    assert resumed.counters.updates == 3 and resumed.counters.version == 1
    assert len(resumed.online) == len(core.online)
    for name, tensor in core.algorithm.policy.state_dict().items():
        torch.testing.assert_close(resumed.algorithm.policy.state_dict()[name], tensor)


def test_a_resumed_learner_takes_a_replayed_history_once(tmp_path) -> None:
    core = small_core(tmp_path)
    done, running = episode("robot_0", 12), episode("robot_1", 15)
    for record in done + running[:6]:
        core.ingest(record)
    core.save()  # 12 + 5 transitions; robot_1's episode is open at step 5
    resumed = small_core(tmp_path)
    assert resumed.resume() and len(resumed.online) == 17
    for record in done + running:  # the actors' transient-local history, delivered again on reconnect
        resumed.ingest(record)
    assert len(resumed.online) == 12 + 15  # each transition once, the open episode completed
    assert resumed.assembler.duplicates == 13 + 5
    # its success marks every one of its transitions, those from before the checkpoint too
    assert resumed.online.success[resumed.online.valid].sum() == 12 + 15


def test_policy_lag_is_the_newest_version_minus_each_transitions_version(tmp_path) -> None:
    core = LearnerCore(TASK, "rlpd", "state", ["franka_panda"], tmp_path, tensorboard=True)
    for _ in range(3):
        core.weights_packet()  # versions 1, 2, 3 published
    versions = [3, 3, 2, 1, 0, 3]  # 0: before any weights (no lag to count)
    records = [dataclasses.replace(r, policy_version=v) for r, v in zip(episode("robot_0", 5), versions, strict=True)]
    for record in records:
        core.ingest(record)
    core.close()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    (mean,) = events.Scalars("time/policy_lag")
    assert mean.value == pytest.approx(np.mean([0, 0, 1, 2, 0]))
    (histogram,) = events.Histograms("time/policy_lag")
    assert histogram.histogram_value.num == 5 and histogram.histogram_value.max == 2


def test_max_policy_lag_keeps_transitions_of_too_old_weights_out_of_the_buffer_but_never_a_humans(tmp_path) -> None:
    core = small_core(tmp_path)
    core.cfg = dataclasses.replace(core.cfg, max_policy_lag=1)
    for _ in range(3):
        core.weights_packet()  # newest version 3
    versions = [3, 3, 2, 1, 0, 3]  # the step of version 1 is 2 versions old; 0 had no learned weights
    for r, v in zip(episode("robot_0", 5), versions, strict=True):
        core.ingest(dataclasses.replace(r, policy_version=v))
    assert len(core.online) == 4 and core.counters.transitions_too_stale == 1
    for r, v in zip(episode("robot_1", 5, intervened=True), versions, strict=True):
        core.ingest(dataclasses.replace(r, policy_version=v))
    assert len(core.online) == 4 + 5 and core.counters.transitions_too_stale == 1  # the human's steps all count


def test_weights_leave_a_frozen_encoder_out_and_the_actor_checks_its_own_by_hash(tmp_path) -> None:
    torch.set_num_threads(1)
    core = LearnerCore(TASK, "rlpd", "pixels", ["franka_panda"], tmp_path, tensorboard=False)
    cams = TASK.observation.cameras
    frozen = {n for n, p in core.algorithm.policy.named_parameters() if not p.requires_grad}
    assert frozen and all(".backbone." in n for n in frozen)
    packet = core.weights_packet()
    full = encode_weights(core.algorithm.publish_state(), policy_id="p", version=1, embodiments=["franka_panda"],
                          dtype=core.cfg.publish_dtype)
    assert FROZEN_METADATA_KEY in packet.metadata and packet.byte_size < full.byte_size / 3
    slot = PolicySlot("franka_panda", state_dim(TASK), TASK.action.dims, cams)
    assert slot.load_message(packet_to_msg(packet, PolicyWeights())) == ""
    rng = np.random.default_rng(0)
    obs = {"state": rng.normal(size=state_dim(TASK)).astype(np.float32),
           **{c: rng.integers(0, 256, (*TASK.observation.image_size, 3), dtype=np.uint8) for c in cams}}
    chunk, version = slot.act(obs, deterministic=True)
    np.testing.assert_allclose(chunk, core.algorithm.policy.act(obs, deterministic=True), atol=2e-2)  # (fp16)

    other = core.weights_packet()  # an actor whose frozen encoder differs: refused, the old weights stay
    other = dataclasses.replace(other, metadata={**other.metadata, FROZEN_METADATA_KEY: "0" * 64})
    assert "frozen encoder differs" in slot.load_message(packet_to_msg(other, PolicyWeights()))
    assert slot.version == version == 1

    with torch.no_grad():  # frozen tensors no fresh process would build (an older checkpoint's): all are sent
        next(iter(core.algorithm.policy.encoder.backbone.parameters())).add_(1.0)
    resumed = LearnerCore(TASK, "rlpd", "pixels", ["franka_panda"], tmp_path / "b", tensorboard=False)
    resumed.algorithm.policy.load_state_dict(core.algorithm.policy.state_dict())
    whole = resumed.weights_packet()
    assert FROZEN_METADATA_KEY not in whole.metadata and abs(whole.byte_size - full.byte_size) < 1000
    fresh = PolicySlot("franka_panda", state_dim(TASK), TASK.action.dims, cams)
    assert fresh.load_message(packet_to_msg(whole, PolicyWeights())) == ""


def test_success_is_counted_per_robot_and_per_embodiment_and_the_weights_serve_every_embodiment(tmp_path) -> None:
    core = LearnerCore(TASK, "rlpd", "state", ["arx5", "franka_panda", "arx5"], tmp_path, tensorboard=False)
    kinds = {"robot_0": "franka_panda", "robot_1": "arx5", "robot_2": "arx5"}
    outcomes = {"robot_0": [True, True], "robot_1": [False, False], "robot_2": [True, False]}
    for robot, results in outcomes.items():
        for n, success in enumerate(results):
            for record in episode(robot, 4 + n, success=success):
                core.ingest(dataclasses.replace(record, embodiment=kinds[robot], task=TASK.name))
    by_robot, by_embodiment = core.success_rates()
    assert by_robot == {"robot_0": 1.0, "robot_1": 0.0, "robot_2": 0.5}
    assert by_embodiment == {"arx5": 0.25, "franka_panda": 1.0}
    assert core.success_rate() == pytest.approx(0.5)
    assert core.weights_packet().embodiments == ("arx5", "franka_panda")
    for kind in ("arx5", "franka_panda"):
        slot = PolicySlot(kind, state_dim(TASK), TASK.action.dims)
        assert slot.load_message(packet_to_msg(core.weights_packet(), PolicyWeights())) == ""
    stranger = PolicySlot("ur5e", state_dim(TASK), TASK.action.dims)
    assert "embodiments" in stranger.load_message(packet_to_msg(core.weights_packet(), PolicyWeights()))


def test_update_scalars_are_written_one_update_late_and_every_one_by_close(tmp_path) -> None:
    torch.set_num_threads(1)
    core = LearnerCore(TASK, "rlpd", "state", ["franka_panda"], tmp_path, tensorboard=True)
    core.cfg = dataclasses.replace(core.cfg, min_buffer=10)
    core.add_demos(episode("demo", 12, intervened=True))
    for record in episode("robot_0", 15):
        core.ingest(record)
    metrics = [dict(core.update()) for _ in range(3)]
    core.save()  # a checkpoint writes the pending scalars and stores plain numbers
    assert core.counters.last_metrics == metrics[-1]
    metrics.append(dict(core.update()))
    core.close()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    critic = events.Scalars("train/rlpd/critic_loss")
    assert [e.step for e in critic] == [1, 2, 3, 4]  # every update's, the last one's too (written by close)
    assert [e.value for e in critic] == pytest.approx([m["critic_loss"] for m in metrics], rel=1e-6)
    assert [e.step for e in events.Scalars("time/update_s")] == [1, 2, 3, 4]
