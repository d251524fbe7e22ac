"""An update's scalar metrics, read from the device only when someone reads them.

Turning a loss into a Python float waits for the device to finish everything queued before it. Read at
the end of every update, that wait drains the GPU's queue each time: the host cannot prepare the next
update while the GPU runs this one. :class:`UpdateMetrics` takes the values as one device tensor, queues
their copy into pinned host memory at once (in stream order, so a later CUDA-graph replay that reuses
the tensor's memory cannot change them) and waits only for that copy, the first time a value is read.
The learner core reads an update's metrics after it has queued the next update (see
``LearnerCore.update``), so one update is always in flight. On the CPU it is a plain mapping.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import torch


class UpdateMetrics(Mapping[str, float]):
    """Scalar metrics by name, backed by one 1-D tensor (see the module docstring)."""

    def __init__(self, names: Sequence[str], values: torch.Tensor) -> None:
        if values.shape != (len(names),):
            raise ValueError(f"{len(names)} metric names for values of shape {tuple(values.shape)}")
        self._names = tuple(names)
        self._floats: list[float] | None = None
        self._ready: torch.cuda.Event | None = None
        values = values.detach().float()
        if values.device.type == "cuda":
            self._host = torch.empty(values.shape, dtype=values.dtype, pin_memory=True)
            self._host.copy_(values, non_blocking=True)
            self._ready = torch.cuda.Event()
            self._ready.record()
        else:
            self._host = values

    def _values(self) -> list[float]:
        if self._floats is None:
            if self._ready is not None:
                self._ready.synchronize()  # (this copy only: what was queued after it goes on running)
            self._floats = self._host.tolist()
        return self._floats

    def __getitem__(self, name: str) -> float:
        try:
            return self._values()[self._names.index(name)]
        except ValueError:
            raise KeyError(name) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        return f"UpdateMetrics({dict(self)})"
