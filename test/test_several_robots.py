"""Several robots of different kinds in one graph: each with its own robot config, several sim cells
stepped by one process under one ``/clock`` (lockstep with every robot's actor), embodiments that lack
part of the task's inputs, and the learner's and the CLI's statistics per robot and per embodiment."""

from __future__ import annotations

import collections
import re

import numpy as np
import pytest
from graph_watch import FAST_SAC, Watcher, failure_report, log_stamp, start_graph

from user_learner.bags.transition_bag import TransitionBagWriter, read_episodes
from user_learner.cli.collect import record_on
from user_learner.cli.runner import run_graph
from user_learner.graph import build_graph
from user_robot.config_loader import CONFIG_DIR_ENV, UsageError, config_dir, read_yaml, write_config_copy

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


@pytest.mark.slow
def test_an_arm_without_gripper_force_sensing_or_front_camera_feeds_the_same_policy_interface(
    tmp_path, monkeypatch
) -> None:
    """A sim Panda and an arm that lacks the gripper, the wrench and the front camera of pick-and-place record
    transitions of one shape: what the second lacks is zeros (a black frame) and its ``present`` mask says
    so; its gripper action is carried and never executed."""
    bare = read_yaml(config_dir() / "robots" / "sim_arx.yaml")
    bare.update(name="sim_arx_bare", gripper="none", cameras={"wrist": bare["cameras"]["wrist"]})
    bare["driver"]["external_wrench"] = ""
    task = {"observation.state": ["tcp_pose", "gripper", "wrench", "embodiment", "present"],
            "observation.embodiments": ["franka_panda", "arx5"], "observation.image_size": [32, 32]}
    monkeypatch.setenv(CONFIG_DIR_ENV, str(write_config_copy(tmp_path / "config", {
        "robots/sim_arx_bare": bare, "tasks/pick_and_place": task})))
    specs = build_graph("pick_and_place", robots="sim,sim_arx_bare", side="robot", expert="always", mode="demo",
                        episodes=1, seed=1, real_time_factor=4.0, record_images=True)
    out = tmp_path / "both.mcap"
    with TransitionBagWriter(out) as writer:
        log, code = run_graph(specs, tmp_path, robots=2, done=lambda _log: len(writer.complete) >= 2, total=2,
                              unit="episodes", timeout_s=400, setup_monitor=lambda node: record_on(node, writer, 2))
    assert code == 0, log.summary()
    episodes = {e.robot_id: e for e in read_episodes(out)}
    panda, arm = episodes["robot_0"], episodes["robot_1"]
    assert panda.success and not arm.success  # (no gripper: the duck stays where it lies)
    for episode, present in ((panda, [1, 1, 1, 1]), (arm, [0, 0, 1, 0])):
        states = np.stack([s.state for s in episode.steps])
        assert states.shape[1] == 6 + 1 + 6 + 2 + 4
        assert {tuple(row) for row in states[:, -4:]} == {tuple(present)}
        assert all(set(s.images) == {"wrist", "front"} and s.images["front"].shape == (32, 32, 3)
                   for s in episode.steps)
        assert all(s.images["wrist"].any() for s in episode.steps)
    arm_states = np.stack([s.state for s in arm.steps])
    assert not arm_states[:, 6:13].any()  # no gripper opening, no wrench: zeros
    assert not any(s.images["front"].any() for s in arm.steps)  # a black frame for the camera it lacks
    assert all(s.images["front"].any() for s in panda.steps)
    closes = [s.action[6] for s in arm.steps if s.action.size]
    assert max(closes) > 0.5  # the expert asked it to grip (the action set is the task's) ...
    bridge_log = (tmp_path / "ros" / "robot_1.arm_bridge.log").read_text()
    assert "gripper none" in bridge_log  # ... and its bridge, configured without one, sent nothing


def test_a_multi_task_graph_gives_each_robot_its_task_and_the_policy_their_identity() -> None:
    specs = {(s.namespace, s.name): s.parameters for s in build_graph(
        "peg_insertion", robots="2xsim", tasks="peg_insertion,charger_plugging", real_time_factor=4.0)}
    assert specs[("", "sim_cell")]["cell_tasks"] == ["peg_insertion", "charger_plugging"]
    for i, task in enumerate(("peg_insertion", "charger_plugging")):
        for node in ("arm_bridge", "teleop", "actor"):
            assert specs[(f"robot_{i}", node)]["task"] == task
        assert specs[(f"robot_{i}", "actor")]["tasks"] == ["peg_insertion", "charger_plugging"]
    assert specs[("", "learner")]["tasks"] == ["peg_insertion", "charger_plugging"]
    one = {s.name: s.parameters for s in build_graph("charger_plugging", tasks="peg_insertion,charger_plugging")}
    assert one["actor"]["task"] == "charger_plugging" and one["actor"]["tasks"] == ["peg_insertion", "charger_plugging"]
    assert "tasks" not in {s.name: s.parameters for s in build_graph("peg_insertion", robots="2xsim")}["actor"]
    with pytest.raises(UsageError, match=r"3 tasks .* for 2 robots"):
        build_graph("peg_insertion", robots="2xsim", tasks="peg_insertion,charger_plugging,peg_insertion")
    with pytest.raises(UsageError, match=r"cannot share one policy: observation\.state"):
        build_graph("peg_insertion", robots="2xsim", tasks="peg_insertion,pick_and_place")


def test_the_robot_side_splits_into_the_arm_and_the_actor_for_a_policy_on_another_machine() -> None:
    def nodes(side: str) -> list[tuple[str, str]]:
        return [(s.namespace, s.name) for s in build_graph("peg_insertion", robots="2xsim", side=side,
                                                           actor_device="cuda", chunk_inference="background")]

    robot = nodes("robot")
    actors = [n for n in robot if n[1] == "actor"]
    assert actors == [("robot_0", "actor"), ("robot_1", "actor")]
    assert nodes("actor") == actors
    assert sorted(nodes("arm")) == sorted(n for n in robot if n[1] != "actor")
    assert ("", "learner") not in nodes("arm") + nodes("actor")
    actor = next(s for s in build_graph("peg_insertion", side="actor", actor_device="cuda",
                                        chunk_inference="background") if s.name == "actor")
    assert actor.parameters["device"] == "cuda" and actor.parameters["chunk_inference"] == "background"


@pytest.mark.slow
def test_two_robots_on_two_tasks_record_their_own_task_and_its_identity(tmp_path) -> None:
    """Peg insertion and charger plugging under one clock: each cell runs its robot's task (the expert solves
    it), and each robot's transitions name their task and carry its one-hot as the state's last entries."""
    specs = build_graph("peg_insertion", robots="2xsim", tasks="peg_insertion,charger_plugging", side="robot",
                        expert="always", mode="demo", episodes=1, seed=3, real_time_factor=4.0)
    out = tmp_path / "both.mcap"
    with TransitionBagWriter(out) as writer:
        log, code = run_graph(specs, tmp_path, robots=2, done=lambda _log: len(writer.complete) >= 2, total=2,
                              unit="episodes", timeout_s=400, setup_monitor=lambda node: record_on(node, writer, 2))
    assert code == 0, log.summary()
    assert [re.match(r"robot=(\S+) embodiment=\S+ task=(\S+)", line).groups() for line in log.robot_lines()] == [
        ("robot_0", "peg_insertion"), ("robot_1", "charger_plugging")]
    episodes = {e.robot_id: e for e in read_episodes(out)}
    for robot, task, code_ in (("robot_0", "peg_insertion", [1, 0]), ("robot_1", "charger_plugging", [0, 1])):
        episode = episodes[robot]
        assert episode.success and episode.task == task
        states = np.stack([s.state for s in episode.steps])
        assert states.shape[1] == 6 + 6 + 6 + 2
        assert {tuple(row) for row in states[:, -2:]} == {tuple(code_)}


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
    ready = [log_stamp(line) for line in lines if "actor ready" in line][-1]
    loaded = next(line for line in lines if "loaded policy weights" in line and log_stamp(line) >= ready)
    assert int(re.search(r"weights v(\d+)", loaded).group(1)) >= newest, loaded
