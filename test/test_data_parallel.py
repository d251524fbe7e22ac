"""The learner data-parallel over two ranks on the CPU (gloo, real ``torchrun``): the same weights as one
process on the same global batches; every rank in step; a killed rank stops the job with a clear message."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_learner_core import TASK

from user_learner.learner_core import LearnerCore
from user_learner.replay_buffer import concat_batches

RANKS = Path(__file__).with_name("data_parallel_ranks.py")


def torchrun(out: Path, algo: str, updates: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": f"{RANKS.parent}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               str(RANKS), algo, str(out), str(updates)]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen, timeout: float = 240.0) -> str:
    out, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, out[-4000:]
    return out


@pytest.mark.parametrize("algo", ["hg_dagger", "rlpd"])
def test_two_ranks_learn_as_one_process_on_the_global_batch(tmp_path, algo: str) -> None:
    torch.set_num_threads(1)
    finish(torchrun(tmp_path, algo, updates=6))
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    shard, full = len(ranks[0]["batches"][0]["action"]), LearnerCore(TASK, algo, "state", ["franka_panda"],
                                                                       tmp_path / "one", tensorboard=False)
    assert 2 * shard == full.algorithm.rows_per_update  # each rank sampled half of every batch
    for key, value in ranks[0]["state"].items():  # the ranks stayed in step: the same weights, bit for bit
        if key != "generator":  # (each rank draws its own noise)
            assert torch.equal(value, ranks[1]["state"][key]), key
    start = full.algorithm.policy.state_dict()
    trained = {k[len("policy."):]: v for k, v in ranks[0]["state"].items() if k.startswith("policy.")}
    assert any(not torch.equal(start[k], trained[k]) for k in start)  # they learned
    if algo != "hg_dagger":
        return  # SAC samples actions: one process on the joint batch draws other noise, so it lands elsewhere
    for first, second in zip(ranks[0]["batches"], ranks[1]["batches"], strict=True):
        full.algorithm.update(concat_batches([first, second]))
    for key, value in full.algorithm.policy.state_dict().items():
        torch.testing.assert_close(trained[key], value, rtol=1e-4, atol=1e-5, msg=key)


def test_a_killed_rank_stops_the_job_with_a_clear_message(tmp_path) -> None:
    process = torchrun(tmp_path, "rlpd", updates=0)
    pid_file = tmp_path / "rank1.pid"
    deadline = time.monotonic() + 120
    while not pid_file.is_file() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert pid_file.is_file(), process.communicate(timeout=30)[0][-4000:]
    time.sleep(1.0)  # (training)
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    killed = time.monotonic()
    out, _ = process.communicate(timeout=90)  # ends: no rank waits forever
    assert process.returncode != 0
    assert time.monotonic() - killed < 60
    assert "rank: 1" in out and "SIGKILL" in out, out[-4000:]  # torchrun names the rank that died, and how
