"""When a lockstep sim may advance ``/clock``: never past what the graph has consumed (pure; no ROS).

In simulation time is ours to stop, so nothing should ever be stale because a node was slow. The sim
cell steps its physics one state period at a time and asks :meth:`LockstepGate.waiting_for` before
going on. It waits

* for the **arm bridge** to relay driver state no older than ``bridge_slack_ns`` (``arm/state``;
  half the actor's freshness limit: the bridge publishes on its own timer, so it may always lag a
  little, and a stricter bound could wait for a timer that the frozen clock never fires),
* at each of the actor's control ticks, for the **actor** to have run the tick ``lead_ticks`` before
  it (``actor/tick``), and
* when that tick commanded the arm, for the **command** to reach the cell (``equilibrium_pose``
  stamped at the tick: the bridge stamps a commanded target with the time it was set), and
* after the cell's virtual SpaceMouse spoke (the scripted expert or simulated human), for the
  **teleop** node's ``intervention`` stamped at that input: the cell holds ``/clock`` there
  (:meth:`LockstepGate.waiting_for_teleop`), so the actor's tick at that time already acts on
  the human's command instead of a control period or two later.

``lead_ticks = 0`` is strict lockstep: physics stands still from each tick until its command has
arrived, so the command always lands at its tick whatever the load. ``lead_ticks = 1`` lets physics go on through one
control period while the actor computes, as a real arm does (the command lands within that period,
when it arrives): about twice the speed with rclpy's wake-up latencies, and still never more than one
tick ahead of the actor.

While the actor has only ticked idle (no episode running: the synchronous pipeline's learner turn, a
wait for weights) the gate says for how long (:meth:`LockstepGate.idle_for`); the cell then slows to
real time, so that a graph waiting for its learner does not burn the cores the learner needs.

A participant that does not answer within the timeout is given up on (the node logs it) until it
speaks again, so a dead node slows nothing down and a restarted one is waited for again.
Times are integer nanoseconds of sim time. The actor's ticks fall on state steps when the control
period is a whole number of state periods (:func:`lockstep_period`).
"""

from __future__ import annotations

import dataclasses

BRIDGE, ACTOR, COMMAND, TELEOP = "arm bridge", "actor", "command", "teleop"


def lockstep_period(state_period_s: float, control_period_s: float) -> float:
    """The state period closest to ``state_period_s`` that divides the control period evenly."""
    return control_period_s / max(1, round(control_period_s / state_period_s))


@dataclasses.dataclass
class LockstepGate:
    """See the module docstring."""

    control_period_ns: int
    state_period_ns: int
    bridge_slack_ns: int
    lead_ticks: int = 1
    bridge_ns: int | None = None  # newest driver stamp the bridge relayed (None: no bridge seen)
    tick_ns: int | None = None  # newest actor tick (None: no actor seen)
    commanded: bool = False  # that tick sent a command
    equilibrium_ns: int = -1  # newest equilibrium target stamp received
    mouse_ns: int = -1  # newest SpaceMouse input the cell published
    intervention_ns: int | None = None  # newest intervention stamp (None: no teleop heard)
    idle_since_ns: int | None = None  # the first of the actor's idle ticks since its last commanding one

    def on_bridge(self, stamp_ns: int) -> None:
        """The bridge published ``arm/state`` carrying driver state of ``stamp_ns``."""
        if stamp_ns > 0:
            self.bridge_ns = max(stamp_ns, self.bridge_ns or 0)

    def on_tick(self, stamp_ns: int, commanded: bool) -> None:
        """The actor finished its tick at ``stamp_ns``."""
        if self.tick_ns is None or stamp_ns >= self.tick_ns:
            self.tick_ns, self.commanded = stamp_ns, commanded
            if commanded:
                self.idle_since_ns = None
            elif self.idle_since_ns is None:
                self.idle_since_ns = stamp_ns

    def idle_for(self, now_ns: int) -> int:
        """Sim time (ns) the actor has ticked without commanding the arm (0: it commands, or is not heard)."""
        if self.tick_ns is None or self.idle_since_ns is None:
            return 0
        return max(0, now_ns - self.idle_since_ns)

    def on_equilibrium(self, stamp_ns: int) -> None:
        """An equilibrium pose whose target was set at ``stamp_ns`` arrived."""
        self.equilibrium_ns = max(self.equilibrium_ns, stamp_ns)

    def on_mouse(self, stamp_ns: int) -> None:
        """The cell published SpaceMouse input (twist, then joy) stamped ``stamp_ns``."""
        self.mouse_ns = max(self.mouse_ns, stamp_ns)

    def on_intervention(self, stamp_ns: int) -> None:
        """The teleop node published an intervention reflecting input up to ``stamp_ns``."""
        self.intervention_ns = max(stamp_ns, self.intervention_ns if self.intervention_ns is not None else -1)

    def waiting_for_teleop(self) -> str | None:
        """What must happen before the clock may show the newest SpaceMouse input's time (None: nothing)."""
        if self.intervention_ns is not None and self.intervention_ns < self.mouse_ns:
            return TELEOP
        return None

    def _after_tick(self, ticks: int) -> int:
        """Sim time ``ticks`` control periods after the newest tick (half a state step early, against rounding)."""
        assert self.tick_ns is not None
        return self.tick_ns + ticks * self.control_period_ns - self.state_period_ns // 2

    def waiting_for(self, now_ns: int) -> str | None:
        """What must happen before the clock may pass ``now_ns`` (None: nothing)."""
        if self.bridge_ns is not None and self.bridge_ns < now_ns - self.bridge_slack_ns:
            return BRIDGE
        if self.tick_ns is None:
            return None
        if now_ns >= self._after_tick(1 + self.lead_ticks):
            return ACTOR
        if self.commanded and self.equilibrium_ns < self.tick_ns and now_ns >= self._after_tick(self.lead_ticks):
            return COMMAND
        return None

    def describe(self) -> str:
        """The newest stamps heard, for log lines."""

        def sec(ns: int | None) -> str:
            return "-" if ns is None or ns < 0 else f"{ns / 1e9:.2f} s"

        return (f"bridge state {sec(self.bridge_ns)}, actor tick {sec(self.tick_ns)}, "
                f"command {sec(self.equilibrium_ns)}, teleop {sec(self.intervention_ns)}")

    def hears(self, participant: str) -> bool:
        """Whether the clock waits for ``participant`` (heard, and not given up on since)."""
        if participant == BRIDGE:
            return self.bridge_ns is not None
        if participant == ACTOR:
            return self.tick_ns is not None
        return participant == TELEOP and self.intervention_ns is not None

    def give_up(self, participant: str) -> None:
        """Stop waiting for ``participant`` until it is heard from again."""
        if participant == BRIDGE:
            self.bridge_ns = None
        elif participant == ACTOR:
            self.tick_ns, self.commanded, self.idle_since_ns = None, False, None
        elif participant == COMMAND:
            self.commanded = False
        elif participant == TELEOP:
            self.intervention_ns = None
