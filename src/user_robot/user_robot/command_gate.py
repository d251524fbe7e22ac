"""Which ``arm/command`` messages the arm bridge may execute at all (pure; no ROS).

Before any safety clipping, a command must be

* **fresh**: stamped no more than ``max_age_s`` before the bridge's clock (a command held up in a
  queue, replayed from a bag or sent by a process with a wrong clock would move the arm to where
  the policy wanted it long ago);
* **in the frame the bridge drives**: ``header.frame_id`` names the frame the task's actions are
  expressed in (:func:`user_robot.action_mapping.command_frame`), so a tool that means another frame
  is refused instead of being executed in the wrong one;
* **from the one source that owns the arm**: the first publisher heard owns it until it has been
  silent for ``owner_timeout_s`` (an actor that restarts takes over after that); commands from any
  other publisher meanwhile are dropped.

Refusals are counted by kind for diagnostics; :meth:`CommandGate.admit` also says when a refusal
starts a new burst, so the node logs once per burst rather than at the control rate.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable

STALE, FOREIGN_FRAME, FOREIGN_SOURCE = "stale", "foreign_frame", "foreign_source"
BURST_GAP_S = 2.0
"""A refusal this long after the previous one of its kind starts a new burst (and is logged)."""


@dataclasses.dataclass(frozen=True)
class Verdict:
    """``reason`` is empty for an admitted command; ``log`` marks the first refusal of a burst."""

    reason: str = ""
    detail: str = ""
    log: bool = False

    @property
    def admitted(self) -> bool:
        """The command may go on to the safety layer."""
        return not self.reason


@dataclasses.dataclass
class CommandGate:
    """See the module docstring. Times are seconds on the bridge's clock."""

    frame: str
    max_age_s: float
    owner_timeout_s: float
    owner: Hashable | None = None
    owner_seen: float = float("-inf")
    refused: dict[str, int] = dataclasses.field(default_factory=lambda: {STALE: 0, FOREIGN_FRAME: 0, FOREIGN_SOURCE: 0})
    _last_refusal: dict[str, float] = dataclasses.field(default_factory=dict)

    def admit(self, now: float, stamp: float, frame_id: str, source: Hashable) -> Verdict:
        """Judge one command stamped ``stamp`` in ``frame_id`` from publisher ``source``."""
        if self.owner is not None and source != self.owner and now - self.owner_seen < self.owner_timeout_s:
            return self._refuse(FOREIGN_SOURCE, now, "another publisher owns arm/command")
        if frame_id != self.frame:
            return self._refuse(FOREIGN_FRAME, now, f"frame_id {frame_id!r}, this bridge drives {self.frame!r}")
        age = now - stamp
        if age > self.max_age_s:
            return self._refuse(STALE, now, f"stamped {age:.2f} s ago (max_command_age_s {self.max_age_s:.2f})")
        self.owner, self.owner_seen = source, now
        return Verdict()

    def _refuse(self, reason: str, now: float, detail: str) -> Verdict:
        self.refused[reason] += 1
        last = self._last_refusal.get(reason, float("-inf"))
        self._last_refusal[reason] = now
        return Verdict(reason, detail, log=now - last > BURST_GAP_S)
