"""The learned reward online: a success classifier judging the newest camera frames off the control tick.

A thread of its own sleeps until a camera frame arrives, runs the classifier when the frame set is
newer than the last it judged, and keeps the latest verdict; the actor's tick only reads it, so
inference never lengthens a tick. The verdict is success when P(success) reaches the threshold; the
pose gate and ``success_hold_steps`` are applied by the actor's reward logic
(:func:`user_policies.reward.within_pose_gate`, ``RewardTracker``).
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

import numpy as np

from user_policies.success_classifier import SuccessClassifier

WAKE_S = 0.1
"""Longest the thread sleeps without a new frame (how soon ``stop`` is noticed)."""


class Frames(Protocol):
    """The cameras as :class:`user_robot.nodes.cameras.CameraSet` gives them."""

    def latest(self) -> dict[str, tuple[np.ndarray, float]]:
        """The newest frame of each camera with its stamp."""

    def wait_newer(self, seen: int, timeout_s: float) -> int:
        """Block until more than ``seen`` frames have arrived; the count of arrivals."""


class ClassifierReward:
    """See the module docstring. ``latest()`` is (probability, stamp of the judged frames, seconds it took)."""

    def __init__(self, model: SuccessClassifier, threshold: float, cameras: Frames) -> None:
        self.model = model
        self.cameras = cameras
        self.threshold = threshold
        self._latest: tuple[float, float, float] = (0.0, -1.0, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="success_classifier", daemon=True)

    def start(self) -> ClassifierReward:
        """Start judging frames."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread (joins it)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)

    def latest(self) -> tuple[float, float, float]:
        """(P(success), stamp of the oldest frame it judged, inference seconds); stamp -1 before the first."""
        return self._latest

    def solved(self, now: float, max_age_s: float) -> bool:
        """The latest verdict, when it judged frames no older than ``max_age_s`` at ``now``."""
        probability, stamp, _ = self._latest
        return stamp >= 0.0 and now - stamp <= max_age_s and probability >= self.threshold

    def judge_once(self, last_stamp: float) -> float:
        """Judge the newest frames when newer than ``last_stamp``; returns the stamp judged (else ``last_stamp``)."""
        latest = self.cameras.latest()
        if any(name not in latest for name in self.model.spec.cameras):
            return last_stamp
        stamp = min(latest[name][1] for name in self.model.spec.cameras)
        if stamp <= last_stamp:
            return last_stamp
        start = time.perf_counter()
        probability = self.model.probability({name: latest[name][0] for name in self.model.spec.cameras})
        self._latest = (probability, stamp, time.perf_counter() - start)
        return stamp

    def _loop(self) -> None:
        last, seen = -1.0, 0
        while not self._stop.is_set():
            seen = self.cameras.wait_newer(seen, WAKE_S)
            last = self.judge_once(last)
