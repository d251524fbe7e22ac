"""Action chunks inferred off the control tick: the next chunk is computed in the background while the
current one plays, and overlapping chunks are blended.

A chunk inferred from the observation of tick ``r`` holds the actions for ticks ``r, r+1, ...``; it
arrives some ticks later (the inference time), so its first rows are already past and play starts
at the row of the tick it arrives for. :class:`ChunkPlayer` (pure) decides, per tick, which action to
execute:

- ``switch``: the newest chunk that covers the tick (a fixed switch point: the old chunk plays on until
  the new one arrives, then the new one takes over at its row for that tick);
- ``ensemble``: temporal ensembling (ACT): every chunk covering the tick votes with weight
  ``exp(-decay * i)``, ``i = 0`` the oldest, so older plans steady newer ones.

It asks for the next chunk when the rows left to play are at most ``lead_ticks`` (and none is on
its way), and holds (None: the caller commands "no motion") only when nothing covers the tick: at an
episode's first ticks, after a takeover, or when inference is slower than a whole chunk.
:class:`BackgroundChunks` runs the inference on a worker thread, so a tick never waits for it.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

Blend = Literal["switch", "ensemble"]


@dataclasses.dataclass
class _Chunk:
    rows: np.ndarray  # H × A
    version: int
    first_tick: int  # the tick of the observation it was inferred from (its row 0)


class ChunkPlayer:
    """Which action each tick executes, from chunks delivered late (see the module docstring)."""

    def __init__(self, blend: Blend = "switch", lead_ticks: int = 2, decay: float = 0.1) -> None:
        if blend not in ("switch", "ensemble"):
            raise ValueError(f"chunk blend must be switch or ensemble, got {blend!r}")
        if lead_ticks < 1 or decay < 0:
            raise ValueError(f"need lead_ticks >= 1 and decay >= 0, got {lead_ticks}, {decay}")
        self.blend = blend
        self.lead_ticks = lead_ticks
        self.decay = decay
        self.chunks: list[_Chunk] = []  # oldest first
        self.pending: int | None = None  # the tick of the observation a chunk is being inferred from
        self.held_ticks = 0  # ticks with nothing to play

    def clear(self) -> None:
        """Forget every chunk (an episode start, a takeover); a chunk still on its way is dropped on arrival."""
        self.chunks.clear()
        self.pending = None

    def wants(self, tick: int) -> bool:
        """Whether to start inferring the next chunk from this tick's observation."""
        if self.pending is not None:
            return False
        newest = self.chunks[-1] if self.chunks else None
        return newest is None or newest.first_tick + len(newest.rows) - tick <= self.lead_ticks

    def requested(self, tick: int) -> None:
        """An inference from the observation of ``tick`` has started."""
        self.pending = tick

    def deliver(self, rows: np.ndarray, version: int, tick: int) -> None:
        """The chunk inferred from the observation of ``tick`` (ignored unless it is the one awaited)."""
        if self.pending != tick:
            return
        self.pending = None
        self.chunks.append(_Chunk(np.asarray(rows, dtype=np.float32).reshape(len(rows), -1), int(version), tick))

    def action(self, tick: int) -> tuple[np.ndarray, int] | None:
        """The action for ``tick`` and the newest weights version behind it (None: nothing covers it)."""
        self.chunks = [c for c in self.chunks if tick - c.first_tick < len(c.rows)]
        covering = [c for c in self.chunks if tick >= c.first_tick]
        if not covering:
            self.held_ticks += 1
            return None
        newest = covering[-1]
        if self.blend == "switch":
            self.chunks = [newest]  # the older ones are superseded for good
            return newest.rows[tick - newest.first_tick], newest.version
        weights = np.array([math.exp(-self.decay * i) for i in range(len(covering))])
        rows = np.stack([c.rows[tick - c.first_tick] for c in covering])
        return (weights[:, None] * rows).sum(0) / weights.sum(), newest.version


Infer = Callable[[dict[str, np.ndarray]], "tuple[np.ndarray, int] | None"]
"""A policy's chunk (H × A) and weights version for one observation dict, or None (no weights yet)."""


class BackgroundChunks:
    """A :class:`ChunkPlayer` fed by a worker thread: :meth:`step` hands the tick's observation to the
    worker when a new chunk is due and returns at once with the action to execute."""

    def __init__(self, infer: Infer, player: ChunkPlayer) -> None:
        self.infer = infer
        self.player = player
        self.tick = 0
        self.inference_s: collections.deque[float] = collections.deque(maxlen=1000)  # the latest inference times
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._job: tuple[dict[str, Any], int] | None = None
        self._stop = False
        self._thread = threading.Thread(target=self._work, name="chunk_inference", daemon=True)
        self._thread.start()

    def clear(self) -> None:
        """Drop every chunk (an episode start, a takeover)."""
        with self._lock:
            self.player.clear()
            self._job = None

    def step(self, obs: dict[str, np.ndarray]) -> tuple[np.ndarray, int] | None:
        """One control tick: start the next inference if due, return the tick's action (None: hold)."""
        with self._lock:
            self.tick += 1
            if self.player.wants(self.tick):
                self.player.requested(self.tick)
                self._job = (obs, self.tick)
                self._wake.notify()
            return self.player.action(self.tick)

    def close(self) -> None:
        """Stop the worker (after the inference it runs, if any)."""
        with self._lock:
            self._stop = True
            self._wake.notify()
        self._thread.join(timeout=5.0)

    def _work(self) -> None:
        while True:
            with self._lock:
                while self._job is None and not self._stop:
                    self._wake.wait()
                if self._stop:
                    return
                obs, tick = self._job
                self._job = None
            start = time.perf_counter()
            result = self.infer(obs)
            with self._lock:
                self.inference_s.append(time.perf_counter() - start)
                if result is None:  # no weights yet: ask again at the next tick
                    if self.player.pending == tick:
                        self.player.pending = None
                else:
                    self.player.deliver(result[0], result[1], tick)
