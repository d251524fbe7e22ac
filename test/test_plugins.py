"""Plug-ins: an algorithm and a policy kind defined in this file, registered, and run through the
learner core, the learner node and the actor, with no edit anywhere else in the repository.

The graph's processes import this module through ``$USER_PLUGINS`` (as they would a user's own
plug-in package), and the algorithm's recipe is one YAML in a copy of ``config/``.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from graph_watch import Watcher, failure_report, start_graph
from torch import nn

from user_learner.algorithms.base import ALGORITHMS, Algorithm
from user_learner.episode_assembler import StepRecord
from user_learner.learner_core import LearnerCore
from user_policies.observation import state_dim
from user_policies.policies.base import POLICIES, Policy
from user_policies.policy_slot import PolicySlot
from user_policies.policy_spec import SPEC_METADATA_KEY, PolicySpec
from user_policies.registry import PLUGINS_ENV
from user_policies.weights_codec import decode_weights, packet_from_msg
from user_robot.config_loader import CONFIG_DIR_ENV, write_config_copy
from user_robot.robot_config import load_robot
from user_robot.task_config import load_task

TASK = load_task("peg_insertion")
EMBODIMENT = load_robot("sim").embodiment
CHUNK = 3
RECIPE = {
    "algorithm": "toy_bc",
    "toy_bc": {"lr": 2.0, "batch_size": 32},
    "policy": {"kind": "toy_table", "chunk_size": CHUNK, "options": {"scale": 0.5}},
    "utd": 0.5,
    "min_buffer": 30,
    "publish_every": 5,
    "checkpoint_every": 10,
}


@dataclasses.dataclass(frozen=True)
class TableOptions:
    """How large the table's initial entries are."""

    scale: float = 1.0


@POLICIES.register("toy_table")
class TablePolicy(Policy):
    """Ignores the observation: its action chunk is a trainable H × A table, squashed by tanh."""

    Options = TableOptions

    def __init__(self, spec: PolicySpec) -> None:
        super().__init__(spec)
        self.table = nn.Parameter(torch.randn(spec.chunk_size, spec.action_dim) * self.options.scale)

    def act_batch(self, batch, deterministic: bool) -> torch.Tensor:
        return torch.tanh(self.table).expand(batch["state"].shape[0], -1, -1)


@dataclasses.dataclass(frozen=True)
class ToyBCConfig:
    """Plain SGD settings."""

    lr: float = 0.1
    batch_size: int = 16


@ALGORITHMS.register("toy_bc")
class ToyBC(Algorithm):
    """Regresses every row of the policy's chunk to the batch's executed actions."""

    Config = ToyBCConfig

    def build(self) -> None:
        self.optimizers = {"policy": torch.optim.SGD(self.policy.parameters(), lr=self.cfg.lr)}

    @property
    def rows_per_update(self) -> int:
        return self.cfg.batch_size

    def update(self, batch) -> dict[str, float]:
        chunk = self.policy.act_batch(batch["obs"], deterministic=True)
        loss = (chunk - batch["action"][:, None, :]).pow(2).mean()
        self.optimizers["policy"].zero_grad()
        loss.backward()
        self.optimizers["policy"].step()
        self.num_updates += 1
        return {"loss": loss.item()}


@pytest.fixture
def plugin_config(tmp_path: Path, monkeypatch) -> Path:
    """A copy of config/ with the toy recipe, and child processes that import this module."""
    root = write_config_copy(tmp_path / "config", {"algorithms/toy_bc": RECIPE})
    monkeypatch.setenv(CONFIG_DIR_ENV, str(root))
    monkeypatch.setenv(PLUGINS_ENV, Path(__file__).stem)
    here = str(Path(__file__).parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")])))
    return root


def episode(robot: str, index: int, length: int, action: float) -> list[StepRecord]:
    rng = np.random.default_rng(index)
    dims = state_dim(TASK)
    steps = [
        StepRecord(robot, f"{robot}-{index}", t, {"state": rng.normal(size=dims).astype(np.float32)},
                   np.full(TASK.action.dims, action, np.float32), 0.0)
        for t in range(length)
    ]
    final = {"state": rng.normal(size=dims).astype(np.float32)}
    return [*steps, StepRecord(robot, f"{robot}-{index}", length, final, np.zeros(0, np.float32), 0.0, truncated=True)]


def test_toy_algorithm_and_policy_train_through_the_learner_core(tmp_path, plugin_config) -> None:
    core = LearnerCore(TASK, "toy_bc", "state", [EMBODIMENT], tmp_path / "logs", device="cpu")
    assert isinstance(core.algorithm, ToyBC) and isinstance(core.algorithm.policy, TablePolicy)
    assert core.spec.kind == "toy_table" and core.spec.options == {"scale": 0.5} and core.demo is None
    for i in range(4):
        for record in episode("robot_0", i, 20, action=0.4):
            core.ingest(record)
    assert core.ready()
    losses = [core.update()["loss"] for _ in range(60)]
    assert losses[-1] < 0.1 * losses[0]
    packet = core.weights_packet()
    slot = PolicySlot(EMBODIMENT, state_dim(TASK), TASK.action.dims)
    from user_interfaces.msg import PolicyWeights
    from user_policies.weights_codec import packet_to_msg

    assert slot.load_message(packet_to_msg(packet, PolicyWeights())) == ""
    chunk, version = slot.act({"state": np.zeros(state_dim(TASK), np.float32)}, deterministic=True)
    assert version == 1 and chunk.shape == (CHUNK, TASK.action.dims)
    np.testing.assert_allclose(chunk, 0.4, atol=0.05)
    core.save()
    resumed = LearnerCore(TASK, "toy_bc", "state", [EMBODIMENT], tmp_path / "logs", device="cpu", tensorboard=False)
    assert resumed.resume() and resumed.counters.updates == 60
    torch.testing.assert_close(resumed.algorithm.policy.table, core.algorithm.policy.table)
    core.close()

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "logs" / "tensorboard"))
    events.Reload()
    assert len(events.Scalars("train/toy_bc/loss")) == 60


@pytest.mark.slow
def test_toy_plugins_run_through_the_learner_node_and_the_actor(tmp_path, plugin_config) -> None:
    """Learner node trains toy_bc; the actor executes toy_table chunks row by row, each step with its version."""
    watcher = Watcher(keep=True)
    procs = start_graph(tmp_path, algo="toy_bc")
    try:
        def checked_steps() -> list:
            weights = dict(watcher.weights)
            # episodes whose first step already ran learned weights: chunks start at steps 0, H, 2H, ...
            started = {m.episode_id for m in list(watcher.steps) if m.step == 0 and m.policy_version in weights}
            return [m for m in list(watcher.steps)
                    if m.episode_id in started and len(m.action) and m.policy_version in weights]

        try:
            watcher.wait("a toy_bc learner status with its loss",
                         lambda: watcher.status is not None and "loss" in watcher.status.metric_names
                         and watcher.status.updates >= 10, 240)
            watcher.wait("60 steps of learned chunks", lambda: len(checked_steps()) >= 60, 240)
        except AssertionError:
            raise AssertionError(failure_report(procs)) from None
    finally:
        procs.stop()
        watcher.close()
    assert watcher.status.algorithm == "toy_bc"
    tables = {}
    for version, msg in watcher.weights.items():
        packet = packet_from_msg(msg)
        assert PolicySpec.from_json(packet.metadata[SPEC_METADATA_KEY]).kind == "toy_table"
        tables[version] = np.tanh(decode_weights(packet)["table"].numpy())
    steps = checked_steps()
    for msg in steps:
        expected = tables[msg.policy_version][msg.step % CHUNK]
        np.testing.assert_allclose(msg.action, expected, atol=1e-6, err_msg=f"step {msg.step} v{msg.policy_version}")
    by_chunk: dict[tuple[str, int], set[int]] = {}
    for msg in steps:
        by_chunk.setdefault((msg.episode_id, msg.step // CHUNK), set()).add(msg.policy_version)
    assert all(len(v) == 1 for v in by_chunk.values())  # a chunk runs on the weights that produced it
    assert len({m.policy_version for m in steps}) >= 2  # and newer weights take over at chunk boundaries


def test_info_train_flags_and_graph_take_their_choices_from_the_registries(plugin_config, capsys) -> None:
    import argparse

    from user_learner.cli import train
    from user_learner.cli.main import main
    from user_learner.graph import build_graph

    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "toy_bc" in out.split("algorithms: ")[1].splitlines()[0]
    assert "toy_table" in out.split("policy kinds: ")[1]
    assert "ros_distro=unknown" not in out and "user_interfaces/msg/PolicyWeights" in out, out
    parser = argparse.ArgumentParser()
    train.add_arguments(parser)
    args = parser.parse_args(["--task", "peg_insertion", "--algo", "toy_bc", "--policy", "flow"])
    assert (args.algo, args.policy) == ("toy_bc", "flow")
    assert build_graph("peg_insertion", algo="toy_bc", policy="toy_table")[-1].parameters["policy"] == "toy_table"
