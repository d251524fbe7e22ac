"""Bring your own model: ``examples/tiny_chunker.py`` (a torch module that knows nothing of USER, its
weights in a local safetensors file) as policy kind ``external``, through ``pretrain``, ``eval`` and
``train --algo hg_dagger`` on the sim cell, with no other change to the repository."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from test_pretrain import demo_episode
from tiny_chunker import TinyChunker

from user_learner.bags.transition_bag import TransitionBagWriter
from user_learner.cli.main import main
from user_learner.evaluation import load_checkpoint_algorithm
from user_policies.observation import state_dim
from user_robot.config_loader import CONFIG_DIR_ENV, write_config_copy
from user_robot.task_config import load_task

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TASK = load_task("peg_insertion")


@pytest.mark.slow
def test_an_outside_module_clones_evaluates_and_trains_through_hg_dagger(tmp_path, monkeypatch, capsys) -> None:
    torch.manual_seed(0)
    config = {"state_dim": state_dim(TASK), "action_dim": TASK.action.dims, "chunk_size": 4}
    weights = tmp_path / "tiny_chunker.safetensors"  # the model's own checkpoint, as downloaded
    save_file(TinyChunker(**config).state_dict(), str(weights))
    recipe = {"policy.kind": "external", "policy.chunk_size": 4, "policy.options": {
        "module": "tiny_chunker:TinyChunker", "config": config, "weights": str(weights)}, "publish_every": 5}
    monkeypatch.setenv(CONFIG_DIR_ENV, str(write_config_copy(tmp_path / "config", {"algorithms/hg_dagger": recipe})))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(EXAMPLES), os.environ.get("PYTHONPATH")])))
    demos = tmp_path / "demos.mcap"
    with TransitionBagWriter(demos) as writer:
        for seed in range(6):
            writer.write_episode(demo_episode(20, seed))

    bc = tmp_path / "bc"
    assert main(["pretrain", "--task", TASK.name, "--demos", str(demos), "--updates", "100",
                 "--log-dir", str(bc)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "policy=external" in line, line
    before, after = map(float, re.search(r"val_action_error=([\d.]+)->([\d.]+)", line).groups())
    assert after < before, line  # the model's own (Huber) loss trained it
    clone = load_checkpoint_algorithm(bc).policy
    assert isinstance(clone.model, TinyChunker)

    assert main(["eval", "--task", TASK.name, "--checkpoint", str(bc), "--episodes", "2", "--log-dir",
                 str(tmp_path / "eval")]) == 0
    assert re.search(r"eval success=\d/2 ", capsys.readouterr().out)

    assert main(["train", "--task", TASK.name, "--algo", "hg_dagger", "--init", str(bc), "--expert", "human",
                 "--demos", str(demos), "--steps", "200", "--log-dir", str(tmp_path / "online")]) == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    versions = int(re.search(r"weight_versions=(\d+)", summary).group(1))
    assert versions >= 1, summary  # the actor ran weights the learner made of the outside module
    actor_log = (tmp_path / "online" / "ros" / "robot_0.actor.log").read_text()
    assert "loaded policy weights" in actor_log
    lengths = [int(n) for n in re.findall(r"episode \S+: success=\w+ return=\S+ length=(\d+)", actor_log)]
    cell_log = (tmp_path / "online" / "ros" / "robot_0.sim_cell.log").read_text()
    takeovers = [(int(e), int(t)) for e, t in re.findall(r"takes over in scene (\d+) at tick (\d+)", cell_log)]
    assert takeovers, cell_log[-2000:]  # the simulated human took over a policy cloned from 6 demos ...
    assert all(tick <= lengths[scene - 1] for scene, tick in takeovers if scene <= len(lengths)), (takeovers, lengths)
    # ... only within episodes: never while the arm resets between them
    state = {"state": np.zeros(state_dim(TASK), np.float32)}
    assert clone.act(state, deterministic=True).shape == (4, TASK.action.dims)
