"""Read a run's scalars back from the learner's TensorBoard files (``<log dir>/tensorboard``)."""

from __future__ import annotations

import statistics
from pathlib import Path


def scalar_values(log_dir: Path, tag: str) -> list[float]:
    """Every value logged under ``tag`` in ``log_dir/tensorboard`` (none if the run logged none)."""
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    if not (log_dir / "tensorboard").is_dir():
        return []
    events = EventAccumulator(str(log_dir / "tensorboard"), size_guidance={SCALARS: 0})  # 0: keep all
    events.Reload()
    return [e.value for e in events.Scalars(tag)] if tag in events.Tags()[SCALARS] else []


def median_update_ms(log_dir: Path) -> str:
    """The median of the learner's ``time/update_s`` in ms, as a table cell ("-" without updates)."""
    values = scalar_values(log_dir, "time/update_s")
    return f"{1000 * statistics.median(values):.1f} ms ({len(values):,})" if values else "-"
