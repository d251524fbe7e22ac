"""Frozen-backbone feature maps computed once per stored observation, not once per sampled batch.

With a frozen ResNet-10 the backbone output of a stored image never changes, yet SAC would recompute
it for ``obs`` and ``next_obs`` of every minibatch (~90% of a pixel update on a CPU). The cache keeps
the maps (float16) of every observation row it has seen, keyed by the ``[buffer uid, row, generation]``
refs that :meth:`ReplayBuffer.gather` puts in each batch; a row overwritten in the buffer has a new
generation and is recomputed.

DrQ's image shift cannot be applied to a map, so augmentation moves to the cache: with ``views`` > 1
it keeps the maps of ``views`` versions of each stored image, the image itself and ``views - 1``
random shifts of it by up to ``pad`` pixels (each drawn once, when the row is first seen), and every
read picks one of them at random per sample. That costs ``views`` backbone passes per stored image
(once) and ``views`` times the memory; ``views`` 1 keeps the image alone (no augmentation).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from user_learner.augment import random_shift
from user_learner.replay_buffer import ImageSource, to_device
from user_policies.models.resnet10 import ObservationEncoder


class BackboneCache:
    """Per-buffer tensors of backbone maps (``views`` per row) on ``device``, grown on demand.

    Which rows are cached is kept in host memory and decided from host refs (as batches carry them), so a
    read on a GPU queues its work without waiting for the device: no sync, whether rows hit or miss."""

    def __init__(
        self,
        encoder: ObservationEncoder,
        dtype: torch.dtype = torch.float16,
        views: int = 1,
        pad: int = 0,
        generator: torch.Generator | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        if not encoder.cameras or not encoder.freeze_backbone:
            raise ValueError("the backbone cache needs a pixel policy with a frozen backbone (freeze_encoder)")
        if views < 1 or (views > 1 and pad < 1):
            raise ValueError("the backbone cache needs views >= 1, and a shift pad >= 1 for views > 1")
        self.encoder = encoder
        self.dtype = dtype
        self.views, self.pad, self.generator = views, pad, generator
        self.device = torch.device(device)
        self._stores: dict[int, tuple[torch.Tensor, np.ndarray]] = {}  # uid -> (maps, generation per row on the host)
        self.computed = 0
        """Observations whose maps were computed (cache misses, each ``views`` backbone passes)."""

    @property
    def _row_shape(self) -> tuple[int, ...]:
        """One stored row's maps: (views, cameras, *map)."""
        return (self.views, len(self.encoder.cameras), *self.encoder.map_shape)

    @property
    def row_bytes(self) -> int:
        """Memory one stored row's maps take on the cache's device."""
        return math.prod(self._row_shape) * self.dtype.itemsize

    def clear(self) -> None:
        """Forget everything (the backbone weights changed)."""
        self._stores.clear()

    def retain(self, uids: torch.Tensor) -> None:
        """Drop the stores of buffers not among ``uids`` (e.g. buffers replaced on resume)."""
        keep = set(np.unique(uids.cpu().numpy()).tolist())
        for uid in [u for u in self._stores if u not in keep]:
            del self._stores[uid]

    def _store(self, uid: int, rows_needed: int) -> tuple[torch.Tensor, np.ndarray]:
        maps, generations = self._stores.get(uid, (None, None))
        if maps is None or generations is None or len(maps) < rows_needed:
            size = max(rows_needed, 1024, 2 * (len(maps) if maps is not None else 0))
            grown = torch.zeros((size, *self._row_shape), dtype=self.dtype, device=self.device)
            grown_generations = np.full(size, -1, dtype=np.int64)
            if maps is not None and generations is not None:
                grown[: len(maps)] = maps
                grown_generations[: len(generations)] = generations
            maps, generations = grown, grown_generations
            self._stores[uid] = (maps, generations)
        return maps, generations

    def _compute(self, images: dict[str, torch.Tensor]) -> torch.Tensor:
        """(N, views, cameras, *map) maps of N observations: view 0 the images, the others shifted."""
        cameras, n = self.encoder.cameras, len(next(iter(images.values())))
        per_view = []
        for view in range(self.views):
            shifted = images if view == 0 else {c: random_shift(images[c], self.pad, self.generator) for c in cameras}
            fresh = self.encoder.backbone_features(shifted)  # (cameras * N, *map), camera-major
            per_view.append(fresh.view(len(cameras), n, *fresh.shape[1:]).transpose(0, 1))
        return torch.stack(per_view, 1)

    def maps(self, obs: dict[str, torch.Tensor], refs: torch.Tensor, source: ImageSource | None = None) -> torch.Tensor:
        """Backbone maps of the observations ``refs`` name, laid out as
        :meth:`ObservationEncoder.backbone_features` returns them (one view per sample, drawn at random
        when there are several). The images of those not cached come from ``obs`` or, for a batch drawn
        without images, from ``source``; a row drawn more than once is computed once."""
        cameras, host = self.encoder.cameras, refs.cpu().numpy()  # (host refs: no copy, no sync)
        out = torch.empty((len(host), len(cameras), *self.encoder.map_shape), dtype=torch.float32, device=self.device)
        for uid in np.unique(host[:, 0]).tolist():
            at = np.flatnonzero(host[:, 0] == uid)
            rows = host[at, 1]
            maps, stored = self._store(uid, int(rows.max()) + 1)
            miss = stored[rows] != host[at, 2]
            missed, first = np.unique(rows[miss], return_index=True)
            if len(missed):
                fresh_at = at[miss][first]
                if all(cam in obs for cam in cameras):
                    index = to_device(fresh_at, self.device)
                    images, fresh = {cam: obs[cam][index] for cam in cameras}, host[fresh_at, 2]
                elif source is not None:
                    images, generations = source(torch.from_numpy(host[fresh_at]))
                    fresh = generations.cpu().numpy()
                else:
                    raise ValueError("a batch without images needs an image source for the backbone cache")
                maps[to_device(missed, self.device)] = self._compute(images).to(self.dtype)
                stored[missed] = fresh
                self.computed += len(missed)
            rows_on_device = to_device(rows, self.device)
            if self.views == 1:
                read = maps[rows_on_device, 0]
            else:
                view = torch.randint(0, self.views, (len(rows),), generator=self.generator, device=self.device)
                read = maps[rows_on_device, view]
            out[to_device(at, self.device)] = read.float()
        return out.transpose(0, 1).reshape(len(cameras) * len(host), *self.encoder.map_shape)
