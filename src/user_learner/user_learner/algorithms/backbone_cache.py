"""Frozen-backbone feature maps computed once per stored observation, not once per sampled batch.

With a frozen ResNet-10 the backbone output of a stored image never changes, yet SAC would recompute
it for ``obs`` and ``next_obs`` of every minibatch (~90% of a pixel update on a CPU). The cache keeps
the maps (float16) of every observation row it has seen, keyed by the ``[buffer uid, row, generation]``
refs that :meth:`ReplayBuffer.gather` puts in each batch; a row overwritten in the buffer has a new
generation and is recomputed. The price: DrQ's image shift cannot be applied to cached maps.
"""

from __future__ import annotations

import torch

from user_policies.models.resnet10 import ObservationEncoder


class BackboneCache:
    """Per-buffer device tensors of backbone maps, grown on demand."""

    def __init__(self, encoder: ObservationEncoder, dtype: torch.dtype = torch.float16) -> None:
        if not encoder.cameras or not encoder.freeze_backbone:
            raise ValueError("the backbone cache needs a pixel policy with a frozen backbone (freeze_encoder)")
        self.encoder = encoder
        self.dtype = dtype
        self._stores: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # uid -> (maps, generation per row)
        self.computed = 0
        """Observations whose maps were computed (cache misses), for tests and statistics."""

    def clear(self) -> None:
        """Forget everything (the backbone weights changed)."""
        self._stores.clear()

    def retain(self, uids: torch.Tensor) -> None:
        """Drop the stores of buffers not among ``uids`` (e.g. buffers replaced on resume)."""
        keep = set(torch.unique(uids).tolist())
        for uid in [u for u in self._stores if u not in keep]:
            del self._stores[uid]

    def _store(self, uid: int, rows_needed: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        maps, generations = self._stores.get(uid, (None, None))
        if maps is None or generations is None or len(maps) < rows_needed:
            size = max(rows_needed, 1024, 2 * (len(maps) if maps is not None else 0))
            shape = (size, len(self.encoder.cameras), *self.encoder.map_shape)
            grown = torch.zeros(shape, dtype=self.dtype, device=device)
            grown_generations = torch.full((size,), -1, dtype=torch.int64, device=device)
            if maps is not None and generations is not None:
                grown[: len(maps)] = maps
                grown_generations[: len(generations)] = generations
            maps, generations = grown, grown_generations
            self._stores[uid] = (maps, generations)
        return maps, generations

    def maps(self, obs: dict[str, torch.Tensor], refs: torch.Tensor) -> torch.Tensor:
        """Backbone maps of ``obs`` laid out as :meth:`ObservationEncoder.backbone_features` returns them."""
        cameras, n = self.encoder.cameras, len(refs)
        out = torch.empty((n, len(cameras), *self.encoder.map_shape), dtype=torch.float32, device=refs.device)
        for uid in torch.unique(refs[:, 0]).tolist():
            where = torch.nonzero(refs[:, 0] == uid).squeeze(1)
            rows, generations = refs[where, 1], refs[where, 2]
            maps, stored = self._store(uid, int(rows.max()) + 1, refs.device)
            miss = stored[rows] != generations
            if bool(miss.any()):
                fresh_at = where[miss]
                fresh = self.encoder.backbone_features({cam: obs[cam][fresh_at] for cam in cameras})
                maps[rows[miss]] = fresh.view(len(cameras), len(fresh_at), *fresh.shape[1:]).transpose(0, 1).to(
                    self.dtype
                )
                stored[rows[miss]] = generations[miss]
                self.computed += len(fresh_at)
            out[where] = maps[rows].float()
        return out.transpose(0, 1).reshape(len(cameras) * n, *self.encoder.map_shape)
