"""Several robots of different kinds in one graph: each with its own robot config, several sim cells
stepped by one process under one ``/clock`` (lockstep with every robot's actor), and the learner's
and the CLI's statistics per robot and per embodiment."""

from __future__ import annotations

import collections
import re

import pytest

from user_learner.cli.runner import run_graph
from user_learner.graph import build_graph

EPISODES = 3


@pytest.mark.slow
def test_a_panda_and_an_arx_run_their_episodes_in_lockstep_under_one_clock(tmp_path) -> None:
    specs = build_graph("peg_insertion", robots="sim,sim_arx", side="robot", expert="always", mode="demo",
                        episodes=EPISODES, seed=1, real_time_factor=4.0)
    assert [s.executable for s in specs].count("sim_cell") == 1
    log, code = run_graph(specs, tmp_path, robots=2, done=lambda log: len(log.results) >= 2 * EPISODES,
                          total=2 * EPISODES, unit="episodes", timeout_s=400)
    assert code == 0, log.summary()
    results = collections.defaultdict(list)
    for r in log.results:
        results[r.robot_id].append(r)
    assert {k: len(v) for k, v in results.items()} == {"robot_0": EPISODES, "robot_1": EPISODES}, log.summary()
    assert {r.embodiment for r in results["robot_0"]} == {"franka_panda"}
    assert {r.embodiment for r in results["robot_1"]} == {"arx5"}
    assert all(r.success for r in log.results), log.robot_lines()
    lines = log.robot_lines()
    assert [re.match(r"robot=(\S+) embodiment=(\S+) task=(\S+)", line).groups() for line in lines] == [
        ("robot_0", "franka_panda", "peg_insertion"), ("robot_1", "arx5", "peg_insertion")]
    assert all(line.endswith("success_rate=1.000") for line in lines), lines
    sim_log = (tmp_path / "ros" / "global.sim_cell.log").read_text()
    assert sim_log.count("lockstep with the actor and arm bridge") == 2, sim_log[-2000:]
    assert "no answer from" not in sim_log  # (neither cell had to give up on its robot's nodes)
