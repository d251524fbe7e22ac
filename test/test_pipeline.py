"""The asynchronous actor–learner pipeline end to end: real nodes in separate processes, real DDS,
the MuJoCo sim cell, real torch. A small, fast SAC recipe (config override) keeps it CI-sized.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from graph_watch import FAST_SAC, Watcher, failure_report, start_graph, unchanged_for

from user_learner.bags.transition_bag import read_episodes
from user_robot.config_loader import CONFIG_DIR_ENV, write_config_copy


def override_sac(tmp_path: Path, monkeypatch, overrides: dict) -> Path:
    """A copy of config/ with ``overrides`` merged into sac.yaml, used by every child process."""
    root = write_config_copy(tmp_path / "config", {"algorithms/sac": overrides})
    monkeypatch.setenv(CONFIG_DIR_ENV, str(root))
    return root


@pytest.fixture
def fast_config(tmp_path: Path, monkeypatch) -> Path:
    """SAC with tiny networks that publishes and checkpoints often."""
    return override_sac(tmp_path, monkeypatch, FAST_SAC)


@pytest.fixture
def watcher():
    w = Watcher()
    time.sleep(1.0)  # discovery before the graph starts publishing
    yield w
    w.close()


@pytest.mark.slow
def test_async_training_loads_new_weights_and_loses_no_transition(tmp_path, fast_config, watcher) -> None:
    procs = start_graph(tmp_path)
    try:
        try:
            watcher.wait("the actor to use 2 new weight versions", lambda: len(watcher.versions_used()) >= 2, 300)
        except AssertionError:
            raise AssertionError(failure_report(procs)) from None

        # A corrupted weights message (newer version, bad sha256) is rejected; the old weights stay.
        from user_interfaces.msg import PolicyWeights

        good = watcher.status.version
        actor_log = procs.find("actor", "robot_0").log_path
        bad_versions = []
        # (The recipe's weights travel in parts, which the actor joined for every version it used.) The actor
        # takes the newest whole message: a learner publish right after ours may replace it before the actor
        # reads it, so send again (each a new bad version) until one is rejected.
        deadline = time.monotonic() + 60.0
        while "rejected policy weights v1000" not in actor_log.read_text():
            assert time.monotonic() < deadline, "timed out waiting for the actor to reject the corrupted weights"
            bad = PolicyWeights(
                policy_id="peg_insertion/sac/mlp", version=10_000 + len(bad_versions), embodiments=["franka_panda"]
            )
            bad.codec, bad.dtype, bad.byte_size, bad.payload = "safetensors", "float32", 4, b"\0" * 4
            bad.sha256 = "0" * 64
            watcher.weights_pub.publish(bad)
            bad_versions.append(bad.version)
            time.sleep(2.0)
        watcher.wait("a newer genuine version to be used", lambda: max(watcher.versions_used()) > good, 120)
        assert not watcher.versions_used() & set(bad_versions)

        # Stop collecting; every transition the actor sent is counted by the learner.
        procs.find("episode_driver", "robot_0").stop()
        watcher.wait_quiet()
        procs.find("actor", "robot_0").stop()  # nothing more can come
        sent = sum(watcher.transitions.values())
        watcher.wait(
            f"the learner to count all {sent} transitions",
            lambda: watcher.status is not None and watcher.status.transitions_received == sent,
            30,
        )
        for result in watcher.results:
            assert watcher.transitions[result.episode_id] == result.length + 1  # steps + the final observation
    finally:
        procs.stop()


@pytest.mark.slow
def test_sync_pipeline_trains_on_each_episode_before_the_next(tmp_path, fast_config, watcher) -> None:
    """collect → train (one update per step) → one new version → the next episode runs on it alone; an
    actor stalled mid-episode for longer than the driver's silence limit (SIGSTOP, as a loaded machine
    can) keeps its episode, and the episodes after it stay in step with the learner."""
    procs = start_graph(tmp_path, pipeline="sync")
    actor = procs.find("actor", "robot_0")
    try:
        try:
            watcher.wait("2 synchronous episodes", lambda: len(watcher.results) >= 2, 300)
            watcher.wait("the third under way", lambda: max(watcher.transitions.values()) > 20
                         and len(watcher.transitions) > len(watcher.results), 120)
            actor.popen.send_signal(signal.SIGSTOP)
            time.sleep(8.0)  # > actor_silence_s (5 s): the driver asks for the result again once it beats
            actor.popen.send_signal(signal.SIGCONT)
            watcher.wait("4 synchronous episodes", lambda: len(watcher.results) >= 4, 300)
        except AssertionError:
            raise AssertionError(failure_report(procs)) from None
        driver_log = procs.find("episode_driver", "robot_0").log_path.read_text()
        assert "no actor tick" in driver_log and "lost with its actor" not in driver_log, driver_log[-2000:]
        results = list(watcher.results)[:4]
        # FAST_SAC: utd 0.5 < 1, so every finished episode is trained with one update per step.
        trained = np.cumsum([r.length for r in results])
        published: dict[int, int] = {}  # version -> learner updates when it was published
        for status in list(watcher.statuses):
            published.setdefault(status.version, status.updates)
        assert [published.get(v) for v in (1, 2, 3)] == trained[:3].tolist(), published
        assert list(results[0].policy_versions) == [0]  # no weights yet: uniform exploration
        for i, result in enumerate(results[1:], start=1):
            assert list(result.policy_versions) == [i], [list(r.policy_versions) for r in results]
    finally:
        procs.stop()


def _kill_learner_after_checkpoint(log_dir: Path, killed: dict) -> None:
    """Wait for the run's first checkpoint, then ``kill -9`` its learner (found by its log dir)."""
    deadline = time.monotonic() + 300
    while not (log_dir / "checkpoints" / "latest").is_file():
        if time.monotonic() > deadline:
            return
        time.sleep(0.2)
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue
        if "user_learner.nodes.learner" in cmdline and str(log_dir) in cmdline:
            killed["version"] = int((log_dir / "weights_version").read_text())
            os.kill(int(proc.name), signal.SIGKILL)
            killed["pid"] = int(proc.name)


def stalled_run_report(out: subprocess.CompletedProcess, log_dir: Path) -> str:
    """Why a ``user-rl train`` run failed: its summary, the start and end of its stderr, and the end of the sim
    cell's and actor's logs (on a timeout, where each one's threads waited)."""
    paths = [log_dir / "ros" / name for name in ("robot_0.sim_cell.log", "robot_0.actor.log")]
    logs = "".join(f"\n--- {p.name}:\n" + "\n".join(p.read_text(errors="replace").splitlines()[-60:])
                   for p in paths if p.is_file())  # (a run that failed before a node started has no log of it)
    return f"{out.stdout[-500:]}\n{out.stderr[:1500]}\n...\n{out.stderr[-1000:]}{logs}"


@pytest.mark.slow
def test_train_restarts_a_killed_learner_from_its_checkpoint_while_the_robot_side_runs_on(tmp_path, fast_config):
    log_dir = tmp_path / "logs"
    killed: dict = {}
    killer = threading.Thread(target=_kill_learner_after_checkpoint, args=(log_dir, killed), daemon=True)
    killer.start()
    out = subprocess.run(
        [sys.executable, "-m", "user_learner.cli.main", "train", "--task", "peg_insertion", "--algo", "sac",
         "--steps", "1500", "--log-dir", str(log_dir), "--timeout", "500", "--record", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=600,
    )
    killer.join(timeout=1)
    assert "pid" in killed, "the learner was never killed (no checkpoint?)\n" + stalled_run_report(out, log_dir)
    assert out.returncode == 0, stalled_run_report(out, log_dir)
    assert "restarting it from its newest checkpoint (1/3); the robot side keeps running" in out.stderr
    learner_log = (log_dir / "ros" / "global.learner.log").read_text()
    assert learner_log.count("learner ready") == 2 and "resumed from checkpoint" in learner_log
    actor_log = (log_dir / "ros" / "robot_0.actor.log").read_text()
    assert actor_log.count("actor ready") == 1  # the robot side never stopped
    loaded = [int(v) for v in re.findall(r"loaded policy weights v(\d+)", actor_log)]
    assert max(loaded) > killed["version"], (killed, loaded[-5:])  # the resumed learner's weights reached the actor
    # --record: the run's episodes are in a recording, those of the learner's downtime too
    episodes = list(read_episodes(tmp_path / "run", images=False, complete_only=False))
    summary = dict(re.findall(r"(\w+)=(\S+)", out.stdout.strip().splitlines()[-1]))
    assert sum(e.done and e.result_success is not None for e in episodes) >= int(summary["episodes"]) - 1, summary
    assert sum(e.length for e in episodes) >= 0.98 * int(summary["steps"]), (summary, [e.length for e in episodes])


def wal_records(log_dir: Path) -> int:
    from user_learner.transition_log import TransitionLog, read_segment

    log = TransitionLog(log_dir / "wal")
    return sum(1 for segment in log.segments() for _ in read_segment(segment))


@pytest.mark.slow
def test_a_learner_killed_between_checkpoints_loses_and_doubles_no_transition(tmp_path, monkeypatch) -> None:
    """kill -9 of the learner with more unsaved transitions than the actors' replay history holds: the
    restarted learner replays its transition log, drops what it gets twice, and ends with every
    transition the actor sent exactly once (counted by episode/step identity)."""
    from user_learner.checkpoint import read_meta
    from user_learner.episode_assembler import EpisodeAssembler
    from user_learner.nodes.learner import message_record
    from user_robot.nodes.qos import TRANSITIONS

    override_sac(tmp_path, monkeypatch, {**FAST_SAC, "checkpoint_every": 10**9, "checkpoint_every_s": 0})
    unsaved = TRANSITIONS.depth + 200  # the actor's transient-local history alone could not cover the gap
    watcher = Watcher(keep=True)
    time.sleep(1.0)
    log_dir = tmp_path / "logs"
    procs = start_graph(tmp_path, episodes=400)
    try:
        learner = procs.find("learner")
        watcher.wait(f"{unsaved} logged transitions", lambda: wal_records(log_dir) >= unsaved, 400)
        assert not (log_dir / "checkpoints" / "latest").exists()
        os.kill(learner.popen.pid, signal.SIGKILL)
        learner.popen.wait()
        sent_while_down = len(watcher.steps)
        time.sleep(3.0)  # the robot side runs on
        assert len(watcher.steps) > sent_while_down
        learner.start(extra_parameters={"resume": True})
        watcher.wait("the restarted learner", lambda: "replayed" in learner.log_path.read_text(), 120)
        received = len(watcher.steps)
        watcher.wait("more transitions", lambda: len(watcher.steps) > received + 100, 120)

        procs.find("episode_driver", "robot_0").stop()
        watcher.wait_quiet()
        procs.find("actor", "robot_0").stop()  # nothing more can come
        expected = EpisodeAssembler()
        unique = {(m.episode_id, m.step): m for m in watcher.steps}
        added = sum(len(expected.add(message_record(m))[0]) for m in unique.values())

        def learner_count() -> tuple[int, bool]:  # (replays and duplicates count too: >= is all it can say)
            count = watcher.status.transitions_received if watcher.status else -1
            return count, count >= len(unique)

        watcher.wait("the learner to take every transition", unchanged_for(3.0, learner_count), 120)
        learner.stop(timeout=60)  # a clean stop writes the final checkpoint
        counters = read_meta(log_dir)["metadata"]["counters"]
        assert counters["transitions_added"] == added, (counters, added, len(unique))
        replayed = re.search(r"replayed (\d+) logged transitions", learner.log_path.read_text())
        assert replayed and int(replayed.group(1)) >= unsaved
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{failure_report(procs)}") from None
    finally:
        procs.stop()
        watcher.close()


@pytest.mark.slow
def test_pixel_pipeline_runs_end_to_end_and_critic_loss_falls(tmp_path, monkeypatch, watcher) -> None:
    """Two rendered cameras → CNN actor and learner (ResNet-10); tiny batches keep it CPU-sized."""
    override_sac(
        tmp_path, monkeypatch, {**FAST_SAC, "sac": {"batch_size": 8, "critic_actor_ratio": 1, "num_critics": 2}}
    )
    procs = start_graph(tmp_path, obs="pixels")
    try:
        try:
            watcher.wait("the actor to use a CNN weight version", lambda: len(watcher.versions_used()) >= 1, 400)
            watcher.wait("40 CNN updates", lambda: watcher.status is not None and watcher.status.updates >= 40, 300)
        except AssertionError:
            raise AssertionError(failure_report(procs)) from None
    finally:
        procs.stop()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "logs" / "tensorboard"))
    events.Reload()
    losses = [e.value for e in events.Scalars("train/sac/critic_loss")]
    assert len(losses) >= 40
    first, last = np.mean(losses[:10]), np.mean(losses[-10:])
    assert last < first, f"critic loss did not fall: first 10 {first:.4f}, last 10 {last:.4f}"
