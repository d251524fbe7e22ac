"""Latched policy weights cross real DDS between processes, byte-exact, to a late joiner."""

from __future__ import annotations

from pathlib import Path

ENDPOINTS = str(Path(__file__).with_name("weights_endpoints.py"))


def test_late_subscriber_gets_20mb_weights_byte_exact(spawn) -> None:
    publisher = spawn([ENDPOINTS, "publish", "20"])
    _, sha, size = publisher.wait_for("PUBLISHED", timeout=60).split()
    assert int(size) >= 20_000_000
    # The subscriber starts only after the message was published: TRANSIENT_LOCAL must deliver it.
    subscriber = spawn([ENDPOINTS, "receive"])
    line = subscriber.wait_for("RECEIVED", timeout=90)
    _, got_sha, version, got_size = line.split()
    assert got_sha == sha
    assert int(got_size) == int(size)
    assert int(version) == 7
