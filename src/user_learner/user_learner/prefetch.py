"""Batches drawn ahead: the next update's batch is sampled while the current update runs.

One background thread calls the sampler once ahead of the consumer. On CUDA it samples inside a
side stream, so the host→device copies of the batch (pinned, non-blocking: :mod:`replay_buffer`)
overlap the update's kernels on the default stream; the consumer's stream waits for the copy's
event before it reads the batch, and the batch's tensors are recorded on it so that their memory is
not reused early. On a CPU the same thread overlaps sampling with the update where torch and numpy
release the GIL.

The batch drawn ahead was sampled before the update before it: rows added during that update
reach the batch after. Checkpoints save the sampler's RNG after the draw ahead, so a resumed run
does not repeat that batch (runs with prefetch are not bit-identical to runs without).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import torch

from user_learner.replay_buffer import Batch


def _tensors(batch: Batch) -> list[torch.Tensor]:
    out: list[torch.Tensor] = []
    for value in batch.values():
        out += list(value.values()) if isinstance(value, dict) else [value]
    return out


class BatchPrefetcher:
    """``next()`` returns ``sample()``'s batch drawn while the previous one was in use."""

    def __init__(self, sample: Callable[[], Batch], device: str | torch.device) -> None:
        self._sample = sample
        self.device = torch.device(device)
        self._stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch-prefetch")
        self._ahead: Future[tuple[Batch, torch.cuda.Event | None]] | None = None

    def _draw(self) -> tuple[Batch, torch.cuda.Event | None]:
        if self._stream is None:
            return self._sample(), None
        with torch.cuda.stream(self._stream):
            batch = self._sample()
            event = torch.cuda.Event()
            event.record(self._stream)
        return batch, event

    def next(self) -> Batch:
        """The batch drawn ahead (drawn now on the first call), ready on the caller's stream; draws the next."""
        ahead = self._ahead or self._pool.submit(self._draw)
        batch, event = ahead.result()  # (a sampling error surfaces here, in the caller)
        self._ahead = self._pool.submit(self._draw)
        if event is not None:
            current = torch.cuda.current_stream(self.device)
            current.wait_event(event)
            for tensor in _tensors(batch):
                if tensor.is_cuda:  # (a batch's refs stay in host memory)
                    tensor.record_stream(current)
        return batch

    def discard(self) -> None:
        """Drop the batch drawn ahead (the sampler, its rows or its RNG changed): the next call draws afresh."""
        if self._ahead is not None:
            self._ahead.exception()  # (wait for it; an error in a dropped draw does not matter)
            self._ahead = None

    def close(self) -> None:
        """Discard the draw ahead and stop the thread."""
        self.discard()
        self._pool.shutdown()
