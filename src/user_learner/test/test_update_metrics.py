"""UpdateMetrics: an update's scalars as a mapping, read from the device only when read."""

from __future__ import annotations

import pytest
import torch

from user_learner.algorithms.update_metrics import UpdateMetrics


def test_reads_as_a_mapping_of_floats() -> None:
    metrics = UpdateMetrics(("loss", "alpha"), torch.tensor([0.5, 2.0], dtype=torch.float64, requires_grad=True))
    assert dict(metrics) == {"loss": 0.5, "alpha": 2.0}
    assert list(metrics) == ["loss", "alpha"] and len(metrics) == 2 and "loss" in metrics
    assert isinstance(metrics["alpha"], float)
    with pytest.raises(KeyError, match="beta"):
        metrics["beta"]
    assert metrics == pytest.approx({"loss": 0.5, "alpha": 2.0})


def test_names_and_values_must_agree() -> None:
    with pytest.raises(ValueError, match="2 metric names for values of shape \\(3,\\)"):
        UpdateMetrics(("a", "b"), torch.zeros(3))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_cuda_taking_them_waits_for_nothing_and_a_later_write_does_not_change_them() -> None:
    values = torch.tensor([1.0, 2.0], device="cuda") * 3
    torch.cuda.set_sync_debug_mode("error")
    try:
        metrics = UpdateMetrics(("a", "b"), values)  # (its copy queued: no sync)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    values.fill_(-1.0)  # (as a CUDA graph's next replay overwrites its outputs)
    assert dict(metrics) == {"a": 3.0, "b": 6.0}
