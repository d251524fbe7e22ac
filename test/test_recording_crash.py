"""Recordings survive their writer: ``kill -9`` mid-episode, or a copy cut short, keeps every complete episode.

The writer runs in its own process and is killed with SIGKILL in the middle of an episode (no
``close()``, no ``metadata.yaml``, no MCAP summary); the bag is then read by the learner's reader and
by ``user-rl bag info``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from user_learner.bags.transition_bag import Episode, Step, TransitionBagWriter, read_episodes, transition_message
from user_robot.config_loader import UsageError
from user_robot.contracts import TRANSITIONS_TOPIC

WRITER = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    from user_learner.bags.transition_bag import Episode, Step, TransitionBagWriter, transition_message
    from user_learner.bags.transition_bag import episode_result_message
    from user_robot.contracts import TRANSITIONS_TOPIC

    def episode(k, n, final=True):
        steps = [Step(stamp_ns=10**9 * (100 * k + i), step=i, state=np.full(4, k + i / 100, np.float32),
                      images={}, action=np.zeros(0 if (final and i == n) else 3, np.float32) + k,
                      truncated=final and i == n, end_reason=3 if (final and i == n) else 0)
                 for i in range(n + 1)]
        return Episode("robot_0", "sim_panda", "peg_insertion", f"ep{k}", steps)

    writer = TransitionBagWriter(sys.argv[1])
    for k in range(3):
        ep = episode(k, 20)
        for step in ep.steps:
            writer.write(TRANSITIONS_TOPIC, transition_message(ep, step))
        writer.write("/robot_0/episode_result", episode_result_message(ep, "demo"))
    cut = episode(3, 20, final=False)
    for step in cut.steps[:12]:  # the fourth episode is in progress when the writer dies
        writer.write(TRANSITIONS_TOPIC, transition_message(cut, step))
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def _killed_recording(tmp_path: Path) -> Path:
    bag = tmp_path / "killed"
    proc = subprocess.run([sys.executable, "-c", WRITER, str(bag)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not (bag / "metadata.yaml").exists()  # it never closed
    return bag


def test_a_writer_killed_mid_episode_keeps_every_complete_episode(tmp_path: Path) -> None:
    bag = _killed_recording(tmp_path)
    episodes = list(read_episodes(bag))
    assert [e.episode_id for e in episodes] == ["ep0", "ep1", "ep2"]
    for k, ep in enumerate(episodes):
        assert ep.length == 20 and ep.done and ep.mode == "demo"
        assert ep.steps[5].state.tolist() == pytest.approx([k + 0.05] * 4)
    cut = list(read_episodes(bag, complete_only=False))
    assert len(cut) == 3 or (cut[-1].episode_id == "ep3" and not cut[-1].done)

    out = subprocess.run(
        [sys.executable, "-m", "user_learner.cli.main", "bag", "info", str(bag)],
        capture_output=True, text=True, timeout=120, env={k: v for k, v in os.environ.items() if k != "COLUMNS"},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("truncated:"), out.stdout
    (note,) = [line for line in out.stdout.splitlines() if "recovered=" in line]  # piped: one line, not wrapped
    assert "recovered=3 complete episodes from a truncated recording" in note, out.stdout


def _intact_recording(path: Path, episodes: int) -> Path:
    rng = np.random.default_rng(0)
    with TransitionBagWriter(path) as writer:
        for k in range(episodes):
            steps = [Step(stamp_ns=10**9 * (100 * k + i), step=i, state=rng.standard_normal(8).astype(np.float32),
                          images={}, action=np.zeros(0 if i == 30 else 6, np.float32), truncated=i == 30,
                          end_reason=3 if i == 30 else 0) for i in range(31)]
            ep = Episode("robot_0", "sim_panda", "peg_insertion", f"ep{k}", steps)
            for step in ep.steps:
                writer.write(TRANSITIONS_TOPIC, transition_message(ep, step))
    return path


def test_a_copy_cut_short_is_read_up_to_the_cut_and_a_wreck_is_named(tmp_path: Path) -> None:
    bag = _intact_recording(tmp_path / "whole", 6)
    (mcap,) = bag.glob("*.mcap")
    cut = tmp_path / "cut"
    shutil.copytree(bag, cut)
    (cut_file,) = cut.glob("*.mcap")
    data = mcap.read_bytes()
    cut_file.write_bytes(data[: len(data) * 2 // 3])  # metadata.yaml still says the bag is whole
    episodes = list(read_episodes(cut))
    assert 2 <= len(episodes) < 6
    assert [e.episode_id for e in episodes] == [f"ep{k}" for k in range(len(episodes))]

    cut_file.write_bytes(data[:5])  # not even the MCAP magic
    with pytest.raises(UsageError, match=r"cut: not a readable recording"):
        list(read_episodes(cut))
    with pytest.raises(UsageError, match="no such recording"):
        list(read_episodes(tmp_path / "missing"))


@pytest.mark.slow
def test_collect_stops_only_once_the_last_episode_is_written(tmp_path: Path) -> None:
    bag = tmp_path / "demos"
    out = subprocess.run(
        [sys.executable, "-m", "user_learner.cli.main", "collect", "--task", "peg_insertion", "--episodes", "2",
         "--out", str(bag), "--log-dir", str(tmp_path / "logs"), "--timeout", "300"],
        capture_output=True, text=True, timeout=400,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    episodes = list(read_episodes(bag, complete_only=False))
    assert len(episodes) == 2 and all(e.done and e.mode == "demo" and e.result_success is not None for e in episodes)
