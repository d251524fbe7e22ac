"""Batches drawn ahead: order, overlap with the consumer, discard, errors; the learner's updates unchanged."""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import pytest
import torch

from user_learner.prefetch import BatchPrefetcher


def counting_sampler() -> tuple[list[int], Callable[[], dict]]:
    drawn: list[int] = []

    def sample() -> dict:
        drawn.append(len(drawn))
        return {"reward": torch.tensor([float(drawn[-1])]), "obs": {"state": torch.zeros(1, 2)}}

    return drawn, sample


def test_batches_come_in_draw_order_with_one_drawn_ahead() -> None:
    drawn, sample = counting_sampler()
    prefetcher = BatchPrefetcher(sample, "cpu")
    got = [int(prefetcher.next()["reward"].item()) for _ in range(4)]
    assert got == [0, 1, 2, 3]
    prefetcher.discard()  # (waits for the draw ahead, then forgets it)
    assert drawn == [0, 1, 2, 3, 4]
    assert int(prefetcher.next()["reward"].item()) == 5  # the discarded batch 4 is never handed out
    prefetcher.close()


def test_the_next_batch_is_drawn_while_the_consumer_holds_the_current_one() -> None:
    in_update = threading.Event()
    draws = 0

    def sample() -> dict:
        nonlocal draws
        draws += 1
        if draws == 2:  # the draw ahead: only finishes if the consumer is mid-"update" at the same time
            assert in_update.wait(10.0), "the second batch was not drawn during the first update"
        return {"reward": torch.tensor([float(draws)])}

    prefetcher = BatchPrefetcher(sample, "cpu")
    first = prefetcher.next()
    in_update.set()  # the consumer is now "updating" on the first batch while the thread draws the second
    assert first["reward"].item() == 1.0 and prefetcher.next()["reward"].item() == 2.0
    prefetcher.close()


def test_a_sampling_error_reaches_the_caller() -> None:
    def sample() -> dict:
        raise ValueError("buffer empty")

    prefetcher = BatchPrefetcher(sample, "cpu")
    with pytest.raises(ValueError, match="buffer empty"):
        prefetcher.next()
    prefetcher.close()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.gpu
def test_on_cuda_the_batch_is_copied_on_a_side_stream_and_ready_on_the_callers() -> None:
    host = torch.arange(1 << 20, dtype=torch.float32).pin_memory()

    def sample() -> dict:
        assert torch.cuda.current_stream() != torch.cuda.default_stream()  # inside the side stream
        return {"obs": {"state": host.to("cuda", non_blocking=True)}}

    prefetcher = BatchPrefetcher(sample, "cuda")
    for _ in range(3):
        batch = prefetcher.next()
        assert torch.equal(batch["obs"]["state"].cpu(), host)
    prefetcher.close()


def test_a_learner_with_prefetch_makes_the_same_updates_on_an_unchanging_buffer(tmp_path) -> None:
    """Same RNG, same rows: drawing ahead changes when a batch is drawn, not which."""
    from user_learner.learner_core import LearnerCore
    from user_robot.config_loader import write_config_copy
    from user_robot.task_config import load_task

    torch.set_num_threads(1)
    task = load_task("peg_insertion")
    metrics = {}
    for prefetch in (False, True):
        config = write_config_copy(tmp_path / f"cfg{prefetch}", {"algorithms/sac": {
            "prefetch": prefetch, "min_buffer": 1, "sac.batch_size": 16, "sac.num_critics": 2,
            "sac.critic_hidden_dims": [32, 32], "policy.hidden_dims": [32, 32]}})
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("USER_CONFIG_DIR", str(config))
            core = LearnerCore(task, "sac", "state", ["franka_panda"], tmp_path / f"log{prefetch}", tensorboard=False)
        assert (core.prefetcher is not None) is prefetch
        rng = np.random.default_rng(0)
        dim = core.spec.state_dim
        for t in range(64):
            core.online.add({"state": rng.normal(size=dim).astype(np.float32)}, rng.uniform(-1, 1, task.action.dims),
                            float(t % 5 == 0), {"state": rng.normal(size=dim).astype(np.float32)}, False)
        metrics[prefetch] = [core.update() for _ in range(5)]
        core.close()
    for a, b in zip(metrics[False], metrics[True], strict=True):
        assert a == pytest.approx(b, rel=1e-6)
