"""Several robots of different kinds in one graph: each with its own robot config, several sim cells
stepped by one process under one ``/clock`` (lockstep with every robot's actor), and the learner's
and the CLI's statistics per robot and per embodiment."""

from __future__ import annotations

import collections
import re

import pytest
from graph_watch import FAST_SAC, Watcher, failure_report, start_graph

from user_learner.cli.runner import run_graph
from user_learner.graph import build_graph
from user_robot.config_loader import CONFIG_DIR_ENV, write_config_copy

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


def _stamp(line: str) -> float:
    """The wall-clock stamp of a ROS log line (``[INFO] [<seconds>] [node]: ...``)."""
    return float(re.search(r"\] \[(\d+\.\d+)\] \[", line).group(1))


@pytest.mark.slow
def test_a_killed_robot_stalls_neither_the_learner_nor_the_other_robot_and_returns_on_the_newest_weights(
    tmp_path, monkeypatch
) -> None:
    """A Panda and an ARX train one SAC policy whose state tells the arms apart (the ``embodiment`` key); the
    ARX's actor is killed, the Panda and the learner go on, the restarted actor loads the newest weights."""
    task = {"observation.state": ["tcp_pose", "tcp_vel", "gripper", "wrench", "embodiment"],
            "observation.embodiments": ["franka_panda", "arx5"]}  # one policy, told which arm it drives
    monkeypatch.setenv(CONFIG_DIR_ENV, str(write_config_copy(tmp_path / "config", {
        "algorithms/sac": FAST_SAC, "tasks/peg_insertion": task})))
    watcher = Watcher(keep=True)
    procs = start_graph(tmp_path, robots="sim,sim_arx")
    actor = procs.find("actor", "robot_1")

    def steps_of(robot: str, since: int = 0) -> list:
        return [m for m in list(watcher.steps)[since:] if m.robot_id == robot]

    try:
        try:
            watcher.wait("both robots on learned weights",
                         lambda: all(any(m.policy_version > 0 for m in steps_of(r)) for r in ("robot_0", "robot_1")),
                         300)
            actor.popen.kill()  # kill -9
            actor.popen.wait()
            killed, updates = len(watcher.steps), watcher.status.updates
            watcher.wait("robot_0 to go on without robot_1 (60 steps)", lambda: len(steps_of("robot_0", killed)) >= 60,
                         120)
            watcher.wait("the learner to go on training", lambda: watcher.status.updates > updates, 60)
            newest = watcher.status.version
            actor.start()
            watcher.wait("the restarted actor to load weights", lambda: "loaded policy weights" in (
                [*actor.log_path.read_text().split("actor ready"), "", ""])[2], 120)
            watcher.wait("robot_1's steps again", lambda: len(steps_of("robot_1", killed)) >= 10, 60)
        except AssertionError:
            raise AssertionError(failure_report(procs)) from None
    finally:
        procs.stop()
        watcher.close()
    assert {tuple(m.state[-2:]) for m in steps_of("robot_0")} == {(1.0, 0.0)}
    assert {tuple(m.state[-2:]) for m in steps_of("robot_1")} == {(0.0, 1.0)}
    # the first weights it loads are the newest the learner had published when it came back (the latched
    # message; how soon: bench/bench_robot_restart.py)
    lines = actor.log_path.read_text().splitlines()
    ready = [_stamp(line) for line in lines if "actor ready" in line][-1]
    loaded = next(line for line in lines if "loaded policy weights" in line and _stamp(line) >= ready)
    assert int(re.search(r"weights v(\d+)", loaded).group(1)) >= newest, loaded
