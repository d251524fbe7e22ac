"""``user-rl train --obs pixels`` as the README gives it: the demos it records for itself carry the cameras.

It used to record state-only demos and the learner died on the first one (``transition has no 'wrist'
observation``).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from user_learner.bags.transition_bag import read_episodes
from user_learner.cli.train import demo_cache_path
from user_robot.config_loader import CONFIG_DIR_ENV, write_config_copy


def test_recorded_demos_are_reused_only_for_what_shaped_them(tmp_path: Path, monkeypatch) -> None:
    def path(seed: int = 10_000, obs: str = "state", identity: tuple[str, ...] = ()) -> Path:
        return demo_cache_path(tmp_path, "peg_insertion", "sim", obs, 20, seed, identity)

    first = path()
    assert path() == first and first.name.startswith("peg_insertion_sim_state_20_")
    others = {path(seed=10_001), path(obs="pixels"), path(identity=("peg_insertion", "charger_plugging"))}
    assert len(others | {first}) == 4
    for kind, change in (("tasks/peg_insertion", {"episode_length": 150}), ("robots/sim", {"gripper_max_width": 0.07})):
        monkeypatch.setenv(CONFIG_DIR_ENV, str(write_config_copy(tmp_path / kind.replace("/", "_"), {kind: change})))
        assert path() != first, kind  # an edited task or robot config records new demos


def test_pixel_training_records_pixel_demos_and_learns_from_them(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "user_learner.cli.main", "train", "--task", "peg_insertion", "--obs", "pixels",
           "--steps", "200", "--demo-episodes", "1", "--timeout", "240", "--log-dir", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    (demos,) = (tmp_path / "demos").glob("peg_insertion_sim_pixels_1_*.mcap")
    assert not any((tmp_path / "demos" / ".partial").iterdir())  # moved into place once complete
    first = next(read_episodes(demos)).steps[0]
    assert {"wrist", "front"} <= set(first.images)
    received = re.search(r"transitions_received=(\d+)", proc.stdout)
    assert received and int(received.group(1)) > 0, proc.stdout[-2000:]
    learner_log = (tmp_path / "ros" / "global.learner.log").read_text()
    assert re.search(r"loaded \d+ demo transitions", learner_log) and "has no" not in learner_log
