"""Fixed-capacity replay buffer over numpy rings, observations stored once (SERL's memory-efficient layout).

Rows hold observations; a row that is also a transition holds its action, reward, done and intervened
flag, whether its episode ended in success (set when it ends: :meth:`ReplayBuffer.mark_success`),
plus ``next_row``: the row of the next observation. When a transition's ``obs`` equals the
previous ``next_obs`` of the same ``stream`` (one stream per robot), that row is reused, so an
episode of L steps takes L + 1 rows instead of 2L. Overwriting the oldest row invalidates the
transition that started there and the one whose next observation it held.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

ROW_ARRAYS = ("action", "reward", "done", "intervened", "success", "valid", "next_row", "prev_row", "generation")
"""Per-row arrays besides the observations (what :meth:`ReplayBuffer.save_rows` writes)."""

Batch = dict[str, Any]
"""``{"obs": {key: T}, "next_obs": {key: T}, "action": T, "reward": T, "done": T, "intervened": T,
"obs_ref": T, "next_obs_ref": T}``; the refs say which stored row each observation is (see ``_refs``). The
refs stay in host memory wherever the rest goes: the backbone cache reads them on the host, so an
update on a GPU never waits for the device to read them back."""

ImageSource = Callable[[torch.Tensor], tuple[dict[str, torch.Tensor], torch.Tensor]]
"""Fetches images for (N, 3) observation refs: their images by camera and the generations those images are
of (the refs' own, unless a row was overwritten after it was drawn: a batch drawn ahead)."""

_UIDS = itertools.count(1)


def to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """``array`` as a tensor on ``device``: to a GPU by a pinned, non-blocking copy (no host wait)."""
    tensor = torch.from_numpy(array)
    if device.type == "cuda":
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True)


Store = np.ndarray | torch.Tensor
"""One observation key's rows: a numpy array in host memory, or (images on ``image_device``) a tensor."""


def _take(store: Store, rows: np.ndarray, device: torch.device) -> torch.Tensor:
    """``store[rows]`` as a tensor on ``device`` (indexed where the store lives: no host copy of a device store)."""
    if isinstance(store, torch.Tensor):  # (to the host: a blocking copy, or its reader could see it unfilled)
        return store[to_device(rows, store.device)].to(device, non_blocking=device.type == "cuda")
    return to_device(store[rows], device)


class StreamOrder:
    """Orders the writes and reads of images kept on a GPU across CUDA streams: transitions are written on
    one stream while batches are drawn ahead on another (:mod:`prefetch`) and images read on a third. A read
    waits for the last write, and a write for the last read on every stream, each by an event rather than
    by the whole of the other streams' work. Does nothing for stores in host memory or on a CPU
    device. (Used under the learner's buffer lock.)"""

    def __init__(self, device: torch.device | None) -> None:
        self.device = device if device is not None and device.type == "cuda" else None
        self._written: torch.cuda.Event | None = None
        self._reads: dict[int, torch.cuda.Event] = {}  # stream handle -> its last read (a stream's are in order)

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """Around a read of the stores."""
        stream = self._stream()
        if stream is not None and self._written is not None:
            stream.wait_event(self._written)
        yield
        if stream is not None:
            self._reads[stream.cuda_stream] = self._recorded(stream)

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Around a write to the stores."""
        stream = self._stream()
        for read in self._reads.values():
            stream.wait_event(read)  # (reads are recorded only with a stream)
        self._reads.clear()
        yield
        if stream is not None:
            self._written = self._recorded(stream)

    def _stream(self) -> torch.cuda.Stream | None:
        return None if self.device is None else torch.cuda.current_stream(self.device)

    @staticmethod
    def _recorded(stream: torch.cuda.Stream) -> torch.cuda.Event:
        event = torch.cuda.Event()
        event.record(stream)
        return event


def _host(store: Store, rows: np.ndarray) -> np.ndarray:
    """``store[rows]`` as a contiguous numpy array."""
    if isinstance(store, torch.Tensor):
        return store[to_device(rows, store.device)].cpu().numpy()
    return np.ascontiguousarray(store[rows])


class ReplayBuffer:
    """Ring buffer of (obs, action, reward, next_obs, done, intervened) with dict observations.

    ``obs_shapes`` maps ``"state"`` to (D,) (float32) and each camera name to (H, W, 3) (uint8).
    ``capacity`` counts observation rows (≈ transitions; one extra row per episode). With
    ``image_device`` the images are kept there (a GPU's memory: each is copied once, when added, and
    a batch is indexed on the device); everything else stays in host memory.
    """

    def __init__(
        self,
        capacity: int,
        obs_shapes: Mapping[str, Sequence[int]],
        action_dim: int,
        image_device: str | torch.device | None = None,
    ) -> None:
        if capacity < 2:
            raise ValueError("capacity must be at least 2")
        if "state" not in obs_shapes:
            raise ValueError("obs_shapes needs a 'state' entry")
        self.capacity = int(capacity)
        self.action_dim = int(action_dim)
        self.obs_shapes = {k: tuple(int(s) for s in v) for k, v in obs_shapes.items()}
        self.image_device = None if image_device is None else torch.device(image_device)
        self.obs: dict[str, Store] = {
            k: np.zeros((capacity, *shape), dtype=np.float32 if k == "state" else np.uint8)
            if k == "state" or self.image_device is None
            else torch.zeros((capacity, *shape), dtype=torch.uint8, device=self.image_device)
            for k, shape in self.obs_shapes.items()
        }
        self.action = np.zeros((capacity, action_dim), dtype=np.float32)
        self.reward = np.zeros(capacity, dtype=np.float32)
        self.done = np.zeros(capacity, dtype=np.bool_)
        self.intervened = np.zeros(capacity, dtype=np.bool_)
        self.success = np.zeros(capacity, dtype=np.bool_)  # the transition's episode succeeded
        self.valid = np.zeros(capacity, dtype=np.bool_)
        self.next_row = np.full(capacity, -1, dtype=np.int64)
        self.prev_row = np.full(capacity, -1, dtype=np.int64)  # the transition whose next obs is in this row
        self.generation = np.zeros(capacity, dtype=np.int64)  # bumped on every overwrite
        self.cursor = 0  # next row to write
        self.rows_written = 0
        self.num_valid = 0
        self.mutations = 0  # bumped by every add and success mark: a cache key for row selections
        self._pending: dict[str, tuple[int, int]] = {}  # stream -> (row, generation) of its last next_obs
        self._pending_images: dict[str, dict[str, np.ndarray]] = {}  # (images on a GPU) stream -> a host copy of them
        self.uid = next(_UIDS)  # tells this buffer's rows apart from another's in mixed batches
        self.persisted: dict[str, Any] | None = None  # which observations are on disk already (checkpoint.py)
        self.stream_order = StreamOrder(self.image_device)  # (images on a GPU: written and read on two streams)

    def __len__(self) -> int:
        """Number of sampleable transitions."""
        return self.num_valid

    def _invalidate(self, row: int) -> None:
        if row >= 0 and self.valid[row]:
            self.valid[row] = False
            self.num_valid -= 1

    def _write_obs(self, obs: Mapping[str, np.ndarray]) -> int:
        row = self.cursor
        self._invalidate(row)
        self._invalidate(int(self.prev_row[row]))
        if self.next_row[row] >= 0 and self.prev_row[self.next_row[row]] == row:
            self.prev_row[self.next_row[row]] = -1
        self.next_row[row] = -1
        self.prev_row[row] = -1
        self.generation[row] += 1
        self.success[row] = False
        with self.stream_order.writing():
            for key, store in self.obs.items():
                value = np.asarray(obs[key])
                if value.shape != tuple(store.shape[1:]):
                    raise ValueError(f"observation {key!r} has shape {value.shape}, expected {tuple(store.shape[1:])}")
                store[row] = to_device(value, store.device) if isinstance(store, torch.Tensor) else value
        self.cursor = (row + 1) % self.capacity
        self.rows_written += 1
        return row

    def _same_obs(self, row: int, obs: Mapping[str, np.ndarray], stream: str) -> bool:
        """Whether ``row`` holds ``obs``. Images kept on a GPU are compared with the host copy of ``stream``'s
        last next observation (reading the row back would wait for the GPU's queued work)."""
        copies = self._pending_images.get(stream, {})
        for key, store in self.obs.items():
            stored = copies.get(key) if isinstance(store, torch.Tensor) else store[row]
            if stored is None or not np.array_equal(stored, obs[key]):
                return False
        return True

    def add(
        self,
        obs: Mapping[str, np.ndarray],
        action: np.ndarray,
        reward: float,
        next_obs: Mapping[str, np.ndarray],
        done: bool,
        intervened: bool = False,
        stream: str = "",
    ) -> tuple[int, int]:
        """Append one transition; ``done`` means terminated (no bootstrap). ``stream`` names its robot.
        Returns its ``(row, generation)`` (for :meth:`mark_success`)."""
        row, gen = self._pending.get(stream, (-1, -1))
        reusable = (
            row >= 0
            and self.generation[row] == gen  # not overwritten since
            and row != self.cursor  # and not about to be overwritten by next_obs
            and self._same_obs(row, obs, stream)
        )
        if not reusable:
            row = self._write_obs(obs)
        nxt = self._write_obs(next_obs)
        self.action[row] = np.asarray(action, dtype=np.float32).reshape(self.action_dim)
        self.reward[row] = reward
        self.done[row] = done
        self.intervened[row] = intervened
        self.next_row[row] = nxt
        self.prev_row[nxt] = row
        self.valid[row] = True
        self.num_valid += 1
        self._pending[stream] = (nxt, int(self.generation[nxt]))
        if self.image_device is not None:
            self._pending_images[stream] = {k: np.array(next_obs[k]) for k in self.obs if k != "state"}
        self.mutations += 1
        return row, int(self.generation[row])

    def mark_success(self, rows: Sequence[tuple[int, int]]) -> None:
        """Flag the transitions ``(row, generation)`` (from :meth:`add`) as part of a successful episode;
        rows overwritten since are left alone."""
        if rows:
            row, gen = np.asarray(rows, dtype=np.int64).reshape(-1, 2).T
            keep = self.generation[row] == gen
            self.success[row[keep]] = True
            self.mutations += 1

    def newest(self, rows: np.ndarray, count: int) -> np.ndarray:
        """The ``count`` most recently written of ``rows``."""
        age = (self.cursor - 1 - rows) % self.capacity
        return rows[np.argsort(age, kind="stable")[:count]]

    def chunk_actions(self, idx: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The actions of ``length`` consecutive transitions from each row of ``idx`` along its episode:
        ``(actions (N, length, A), intervened (N, length), complete (N,))``. Past an episode's last
        transition the chunk repeats its last action (not intervened) and is not ``complete``."""
        actions = np.empty((len(idx), length, self.action_dim), dtype=np.float32)
        intervened = np.zeros((len(idx), length), dtype=np.bool_)
        complete = np.ones(len(idx), dtype=np.bool_)
        rows = np.asarray(idx, dtype=np.int64).copy()
        for k in range(length):
            actions[:, k] = self.action[rows]
            intervened[:, k] = self.intervened[rows] & complete
            if k + 1 < length:
                nxt = self.next_row[rows]
                linked = np.maximum(nxt, 0)  # (a -1 link reads row 0, then fails the first test)
                going = complete & (nxt >= 0) & self.valid[linked] & (self.prev_row[linked] == rows)
                complete &= going
                rows = np.where(going, nxt, rows)
        return actions, intervened, complete

    def sample_indices(
        self, batch_size: int, rng: np.random.Generator, eligible: np.ndarray | None = None
    ) -> np.ndarray:
        """Uniform indices of valid transitions (rejection sampling over the filled rows), or uniform
        over the rows ``eligible`` lists."""
        if eligible is not None:
            if len(eligible) == 0:
                raise ValueError("no eligible transition to sample")
            return eligible[rng.integers(0, len(eligible), size=batch_size)]
        if self.num_valid == 0:
            raise ValueError("cannot sample from an empty buffer")
        filled = min(self.rows_written, self.capacity)
        out = np.empty(0, dtype=np.int64)
        while out.size < batch_size:
            draw = rng.integers(0, filled, size=2 * (batch_size - out.size) + 8)
            out = np.concatenate([out, draw[self.valid[draw]]])
        return out[:batch_size]

    def gather(self, idx: np.ndarray, device: str | torch.device = "cpu", images: bool = True) -> Batch:
        """Batch of the transitions at ``idx`` as tensors on ``device`` (images stay uint8 NHWC; with
        ``images`` False the observations hold the state alone, the refs say where their images are)."""
        if not self.valid[idx].all():
            raise IndexError("gather() was given rows that hold no valid transition")
        device = torch.device(device)
        nxt = self.next_row[idx]
        keys = [k for k in self.obs if images or k == "state"]
        with self.stream_order.reading():
            obs = {k: _take(self.obs[k], idx, device) for k in keys}
            next_obs = {k: _take(self.obs[k], nxt, device) for k in keys}
        return {
            "obs": obs,
            "next_obs": next_obs,
            "action": to_device(self.action[idx], device),
            "reward": to_device(self.reward[idx], device),
            "done": to_device(self.done[idx].astype(np.float32), device),
            "intervened": to_device(self.intervened[idx], device),
            "obs_ref": torch.from_numpy(self._refs(idx)),  # (host memory: see ``Batch``)
            "next_obs_ref": torch.from_numpy(self._refs(nxt)),
        }

    def _refs(self, rows: np.ndarray) -> np.ndarray:
        """(N, 3) int64 ``[buffer uid, row, generation]``: identifies an observation's stored content."""
        return np.stack([np.full(len(rows), self.uid), rows, self.generation[rows]], axis=1).astype(np.int64)

    def images(self, rows: np.ndarray, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
        """The images of the observation ``rows`` (as stored now), by camera, on ``device``."""
        with self.stream_order.reading():
            return {k: _take(v, rows, torch.device(device)) for k, v in self.obs.items() if k != "state"}

    def sample(self, batch_size: int, rng: np.random.Generator, device: str | torch.device = "cpu") -> Batch:
        """``batch_size`` uniformly sampled transitions as tensors on ``device``."""
        return self.gather(self.sample_indices(batch_size, rng), device)

    def save_rows(self, path: str | Path) -> None:
        """Write everything but the observations (tens of bytes per row) to one safetensors file."""
        filled = min(self.rows_written, self.capacity)  # rows are written from 0 upwards, then wrap
        arrays = {name: getattr(self, name)[:filled] for name in ROW_ARRAYS}
        meta = {
            "capacity": self.capacity,
            "action_dim": self.action_dim,
            "obs_shapes": {k: list(v) for k, v in self.obs_shapes.items()},
            "cursor": self.cursor,
            "rows_written": self.rows_written,
            "num_valid": self.num_valid,
            "pending": {k: list(v) for k, v in self._pending.items()},
        }
        save_file(arrays, str(path), metadata={"replay_buffer": json.dumps(meta)})

    def save_observations(self, path: str | Path, start: int) -> int:
        """Write the observations of row writes ``start`` .. :attr:`rows_written` (counting every write
        since the buffer was made; only the newest ``capacity`` still exist); returns the first one written."""
        start = max(start, self.rows_written - self.capacity)
        rows = np.arange(start, self.rows_written) % self.capacity
        with self.stream_order.reading():
            arrays = {k: _host(v, rows) for k, v in self.obs.items()}
        save_file(arrays, str(path), metadata={"writes": json.dumps([start, self.rows_written])})
        return start

    @classmethod
    def load(
        cls,
        rows_path: str | Path,
        observation_paths: Sequence[str | Path],
        image_device: str | torch.device | None = None,
    ) -> ReplayBuffer:
        """A buffer from :meth:`save_rows` and the :meth:`save_observations` files covering its rows (oldest
        first), its images on ``image_device`` (None: host memory)."""
        with safe_open(str(rows_path), framework="numpy") as f:
            meta = json.loads(f.metadata()["replay_buffer"])
        arrays = load_file(str(rows_path))
        buf = cls(meta["capacity"], meta["obs_shapes"], meta["action_dim"], image_device)
        for name in ROW_ARRAYS:
            if name in arrays:  # ("success" came later: rows saved before it load as not successful)
                getattr(buf, name)[: len(arrays[name])] = arrays[name]
        buf.cursor, buf.rows_written, buf.num_valid = meta["cursor"], meta["rows_written"], meta["num_valid"]
        buf._pending = {k: (int(v[0]), int(v[1])) for k, v in meta["pending"].items()}
        for path in observation_paths:
            with safe_open(str(path), framework="numpy") as f:
                start, end = json.loads(f.metadata()["writes"])
            rows = np.arange(start, end) % buf.capacity
            for key, values in load_file(str(path)).items():
                store = buf.obs[key]
                if isinstance(store, torch.Tensor):
                    store[torch.from_numpy(rows).to(store.device)] = torch.from_numpy(values).to(store.device)
                else:
                    store[rows] = values
        if buf.image_device is not None:  # (the host copies of each stream's last next observation)
            buf._pending_images = {stream: {k: _host(v, np.array([row]))[0] for k, v in buf.obs.items() if k != "state"}
                                   for stream, (row, _generation) in buf._pending.items()}
        return buf


def concat_batches(batches: Sequence[Batch]) -> Batch:
    """Concatenate batches along the batch dimension (nested observation dicts included)."""
    out: Batch = {}
    for key, first in batches[0].items():
        if isinstance(first, dict):
            out[key] = {k: torch.cat([b[key][k] for b in batches]) for k in first}
        else:
            out[key] = torch.cat([b[key] for b in batches])
    return out


class MixedSampler:
    """RLPD sampling: each batch is ``demo_ratio`` demo and the rest online transitions (online rows first).

    With ``demo_ratio == 0`` or an empty demo buffer, every row comes from the online buffer; with no
    online row to sample, every row comes from the demos. ``select`` narrows the online rows (e.g. to
    human-intervened ones; None = every valid row). With ``chunk_size`` H > 1 each batch also holds
    ``action_chunk`` (N, H, A): the actions of the H transitions from each row on. With ``images`` False
    batches carry no images (the update fetches those it needs with :meth:`images_of`).
    """

    def __init__(
        self,
        online: ReplayBuffer,
        demo: ReplayBuffer | None = None,
        demo_ratio: float = 0.5,
        select: Callable[[ReplayBuffer], np.ndarray | None] | None = None,
        chunk_size: int = 1,
        images: bool = True,
    ) -> None:
        if not 0.0 <= demo_ratio <= 1.0:
            raise ValueError("demo_ratio must be in [0, 1]")
        self.online, self.demo, self.demo_ratio = online, demo, demo_ratio
        self.select = select or (lambda _buffer: None)
        self.chunk_size = chunk_size
        self.images = images

    def _online_rows(self) -> np.ndarray | None:
        return self.select(self.online)

    def online_available(self) -> int:
        """How many online transitions batches may draw from."""
        rows = self._online_rows()
        return len(self.online) if rows is None else len(rows)

    def demo_rows(self, batch_size: int, online_available: int | None = None) -> int:
        """How many rows of a ``batch_size`` batch come from the demo buffer."""
        if self.demo is None or len(self.demo) == 0:
            return 0
        available = self.online_available() if online_available is None else online_available
        return batch_size if available == 0 else round(batch_size * self.demo_ratio)

    def sample(self, batch_size: int, rng: np.random.Generator, device: str | torch.device = "cpu") -> Batch:
        """A batch whose first rows are online transitions and last :meth:`demo_rows` rows demos."""
        rows = self._online_rows()
        n_demo = self.demo_rows(batch_size, len(self.online) if rows is None else len(rows))
        parts = []
        if n_demo < batch_size:
            parts.append(self._gather(self.online, self.online.sample_indices(batch_size - n_demo, rng, rows), device))
        if n_demo:
            assert self.demo is not None
            parts.append(self._gather(self.demo, self.demo.sample_indices(n_demo, rng), device))
        return parts[0] if len(parts) == 1 else concat_batches(parts)

    def images_of(self, refs: torch.Tensor, device: str | torch.device) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The :data:`ImageSource` of this sampler's buffers: images of the observations ``refs`` name."""
        buffers = {b.uid: b for b in (self.online, self.demo) if b is not None}
        where = refs.cpu().numpy()
        images: dict[str, torch.Tensor] = {}
        generations = np.empty(len(where), dtype=np.int64)
        for uid in np.unique(where[:, 0]).tolist():
            if uid not in buffers:
                raise ValueError(f"observation refs name buffer {uid}, which this sampler does not hold")
            at = np.nonzero(where[:, 0] == uid)[0]
            for camera, values in buffers[uid].images(where[at, 1], device).items():
                if camera not in images:
                    images[camera] = values.new_empty((len(where), *values.shape[1:]))
                images[camera][to_device(at, values.device)] = values
            generations[at] = buffers[uid].generation[where[at, 1]]
        return images, torch.from_numpy(generations).to(refs.device)

    def _gather(self, buffer: ReplayBuffer, idx: np.ndarray, device: str | torch.device) -> Batch:
        batch = buffer.gather(idx, device, self.images)
        if self.chunk_size > 1:
            actions, _intervened, _complete = buffer.chunk_actions(idx, self.chunk_size)
            batch["action_chunk"] = to_device(actions, torch.device(device))
        return batch
