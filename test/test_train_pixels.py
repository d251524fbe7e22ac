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


def test_pixel_training_records_pixel_demos_and_learns_from_them(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "user_learner.cli.main", "train", "--task", "peg_insertion", "--obs", "pixels",
           "--steps", "200", "--demo-episodes", "1", "--timeout", "240", "--log-dir", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    demos = next((tmp_path / "demos").glob("peg_insertion_sim_pixels_1.mcap"))
    first = next(read_episodes(demos)).steps[0]
    assert {"wrist", "front"} <= set(first.images)
    received = re.search(r"transitions_received=(\d+)", proc.stdout)
    assert received and int(received.group(1)) > 0, proc.stdout[-2000:]
    learner_log = (tmp_path / "ros" / "global.learner.log").read_text()
    assert re.search(r"loaded \d+ demo transitions", learner_log) and "has no" not in learner_log
