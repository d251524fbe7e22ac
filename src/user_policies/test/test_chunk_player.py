"""Chunks inferred off the tick: rows play in order from the tick they arrive for, the next chunk is asked
for ahead, overlaps switch or blend as configured, and a tick never waits for an inference."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from user_policies.chunk_player import BackgroundChunks, ChunkPlayer


def _chunk(first: float, rows: int = 4) -> np.ndarray:
    """Rows first, first + 1, ... (one action dimension): a row's value names it."""
    return (first + np.arange(rows, dtype=np.float32))[:, None]


def test_rows_play_in_order_from_the_tick_the_chunk_arrives_for_and_the_next_is_asked_for_ahead() -> None:
    player = ChunkPlayer("switch", lead_ticks=2)
    assert player.wants(1)
    player.requested(1)
    assert not player.wants(1) and player.action(1) is None  # nothing yet: hold
    player.deliver(_chunk(10.0), version=3, tick=1)  # inferred from tick 1, arrived during tick 2
    assert player.action(2) == (pytest.approx([11.0]), 3)  # row 0 (tick 1) is past: row 1 plays
    assert not player.wants(2)
    assert player.action(3)[0] == pytest.approx([12.0])
    assert player.wants(3)  # two rows left (ticks 3, 4): the next inference starts now
    player.requested(3)
    assert player.action(4)[0] == pytest.approx([13.0])
    assert player.action(5) is None and player.held_ticks == 2  # the old chunk ran out before the new came
    player.deliver(_chunk(20.0), version=4, tick=3)
    assert player.action(6) == (pytest.approx([23.0]), 4)


def test_switch_takes_the_newest_chunk_where_it_arrives_and_ensemble_averages_the_overlap() -> None:
    for blend, expected in (("switch", 21.0), ("ensemble", None)):
        player = ChunkPlayer(blend, lead_ticks=4, decay=0.5)
        player.requested(1)
        player.deliver(_chunk(10.0), 1, tick=1)
        player.requested(2)
        player.deliver(_chunk(20.0), 2, tick=2)
        action, version = player.action(3)
        assert version == 2
        if expected is not None:
            assert action == pytest.approx([expected])
            assert player.action(4)[0] == pytest.approx([22.0])  # superseded for good
        else:  # rows 12 (oldest, weight 1) and 21 (weight e^-0.5)
            w = np.exp(-0.5)
            assert action == pytest.approx([(12.0 + w * 21.0) / (1 + w)])
            assert player.action(4)[0] == pytest.approx([(13.0 + w * 22.0) / (1 + w)])
            assert player.action(5)[0] == pytest.approx([23.0])  # the first chunk ended at tick 4


def test_clearing_drops_the_chunks_and_the_one_on_its_way() -> None:
    player = ChunkPlayer()
    player.requested(1)
    player.deliver(_chunk(0.0), 1, tick=1)
    player.requested(2)
    player.clear()  # e.g. a human takeover
    player.deliver(_chunk(5.0), 1, tick=2)  # the stale inference finishes afterwards
    assert player.action(2) is None and player.wants(3)
    with pytest.raises(ValueError, match="switch or ensemble"):
        ChunkPlayer("average")


def test_a_tick_returns_while_the_inference_runs_and_plays_its_chunk_once_it_is_done() -> None:
    release = threading.Event()
    started = threading.Event()

    def infer(obs: dict) -> tuple[np.ndarray, int]:
        started.set()
        release.wait(10.0)
        return _chunk(float(obs["state"][0])), 7

    chunks = BackgroundChunks(infer, ChunkPlayer("switch", lead_ticks=1))
    try:
        assert chunks.step({"state": np.array([100.0])}) is None  # tick 1 asks and returns: hold
        assert started.wait(5.0)
        assert chunks.step({"state": np.array([200.0])}) is None  # tick 2: still inferring, not asked again
        release.set()
        for _ in range(500):
            if chunks.player.chunks:
                break
            threading.Event().wait(0.01)
        assert chunks.step({"state": np.array([300.0])}) == (pytest.approx([102.0]), 7)  # tick 3: row 2
        assert len(chunks.inference_s) == 1
    finally:
        release.set()
        chunks.close()
