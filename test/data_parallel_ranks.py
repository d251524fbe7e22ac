"""One rank of a data-parallel learner without ROS, for ``torchrun`` in test_data_parallel.py.

    torchrun --standalone --nproc-per-node 2 test/data_parallel_ranks.py ALGO OUT UPDATES

Every rank builds the learner core on the same made-up episodes (demos and human-intervened online
steps of peg insertion), joins the group, runs ``UPDATES`` updates (0: until killed) and writes
``OUT/rank<R>.pt``: the batches it sampled and its final algorithm state. Each rank writes its pid
to ``OUT/rank<R>.pid`` once it trains.
"""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path

import torch
from test_learner_core import TASK, episode

from user_learner.data_parallel import DataParallel
from user_learner.learner_core import LearnerCore


def main() -> None:
    algo, out, updates = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(1)
    parallel = DataParallel.from_env(timeout_s=30.0)
    assert parallel is not None, "run under torchrun with more than one process"
    core = LearnerCore(TASK, algo, "state", ["franka_panda"], out / f"log{parallel.rank}", tensorboard=False)
    core.add_demos(episode("demo", 40, intervened=True))
    for n in (30, 35):
        for record in episode("robot_0", n, intervened=True):
            core.ingest(record)
    core.join(parallel)
    batches = []
    sample = core.sampler.sample

    def recorded(*args, **kwargs):  # the batch this rank sampled, kept for the one-process replay
        batch = sample(*args, **kwargs)
        batches.append(batch)
        return batch

    core.sampler.sample = recorded
    (out / f"rank{parallel.rank}.pid").write_text(str(os.getpid()))
    for _ in range(updates) if updates else itertools.count():
        core.update()
    torch.save({"batches": batches, "state": core.algorithm.state_dict()}, out / f"rank{parallel.rank}.pt")
    parallel.close()


if __name__ == "__main__":
    main()
