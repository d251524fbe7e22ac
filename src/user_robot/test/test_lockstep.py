"""The lockstep gate: the sim clock never passes what the actor and the arm bridge have consumed."""

from __future__ import annotations

from user_robot.sim.lockstep import ACTOR, BRIDGE, COMMAND, TELEOP, LockstepGate, lockstep_period

MS = 1_000_000


def gate(lead: int = 0) -> LockstepGate:
    return LockstepGate(control_period_ns=100 * MS, state_period_ns=20 * MS, bridge_slack_ns=500 * MS,
                        lead_ticks=lead)


def test_state_period_divides_the_control_period() -> None:
    assert lockstep_period(0.02, 0.1) == 0.02
    assert abs(lockstep_period(0.03, 0.1) - 0.1 / 3) < 1e-12
    assert lockstep_period(0.5, 0.1) == 0.1


def test_nothing_is_waited_for_before_the_participants_speak() -> None:
    g = gate()
    assert all(g.waiting_for(t * 20 * MS) is None for t in range(100))


def test_each_actor_tick_must_be_run_before_the_clock_passes_it() -> None:
    g = gate()
    g.on_tick(1000 * MS, commanded=False)
    assert g.waiting_for(1020 * MS) is None and g.waiting_for(1080 * MS) is None  # between ticks
    assert g.waiting_for(1100 * MS) == ACTOR  # the next tick is due: wait for it
    g.on_tick(1100 * MS, commanded=False)
    assert g.waiting_for(1100 * MS) is None
    g.on_tick(1050 * MS, commanded=False)  # a late, older message changes nothing
    assert g.tick_ns == 1100 * MS


def test_a_commanded_tick_waits_for_its_command_to_reach_the_cell() -> None:
    g = gate()
    g.on_tick(1000 * MS, commanded=True)
    g.on_equilibrium(980 * MS)  # the previous target (or a hold re-published before the command)
    assert g.waiting_for(1000 * MS) == COMMAND
    g.on_equilibrium(1000 * MS)
    assert g.waiting_for(1000 * MS) is None


def test_with_a_lead_physics_runs_one_period_past_the_newest_tick() -> None:
    g = gate(lead=1)
    g.on_tick(1000 * MS, commanded=True)
    assert g.waiting_for(1000 * MS) is None  # the command may land later, within the period
    assert g.waiting_for(1080 * MS) is None
    assert g.waiting_for(1100 * MS) == COMMAND  # ... but before the next tick
    g.on_equilibrium(1000 * MS)
    assert g.waiting_for(1180 * MS) is None
    assert g.waiting_for(1200 * MS) == ACTOR  # the tick at 1.1 s must have run before 1.2 s
    g.on_tick(1100 * MS, commanded=False)
    assert g.waiting_for(1200 * MS) is None


def test_a_lagging_bridge_holds_the_clock_within_its_slack() -> None:
    g = gate()
    g.on_bridge(1000 * MS)
    assert g.waiting_for(1500 * MS) is None
    assert g.waiting_for(1520 * MS) == BRIDGE
    g.on_bridge(0)  # no driver state yet: ignored
    g.on_bridge(1100 * MS)
    assert g.waiting_for(1520 * MS) is None


def test_a_silent_participant_is_given_up_until_it_speaks_again() -> None:
    g = gate()
    g.on_tick(1000 * MS, commanded=True)
    g.on_bridge(1000 * MS)
    assert g.waiting_for(1000 * MS) == COMMAND
    g.give_up(COMMAND)
    assert g.waiting_for(1100 * MS) == ACTOR
    g.give_up(ACTOR)  # e.g. the actor was killed
    assert not g.hears(ACTOR) and g.hears(BRIDGE)
    assert g.waiting_for(1520 * MS) == BRIDGE
    g.give_up(BRIDGE)
    assert not g.hears(BRIDGE) and not g.hears(TELEOP)  # (no teleop was ever heard)
    assert all(g.waiting_for(t * 100 * MS) is None for t in range(15, 60))
    g.on_tick(6000 * MS, commanded=False)  # the restarted actor is waited for again
    assert g.hears(ACTOR) and g.waiting_for(6100 * MS) == ACTOR
    assert "actor tick 6.00 s" in g.describe()


def test_the_clock_waits_for_teleop_to_answer_the_spacemouse() -> None:
    g = gate()
    g.on_mouse(1000 * MS)  # no teleop heard yet: nothing to wait for
    assert g.waiting_for_teleop() is None
    g.on_intervention(990 * MS)  # its timer's message (stamped with the clock it had)
    assert g.waiting_for_teleop() == TELEOP
    g.on_intervention(1000 * MS)  # the answer, stamped with the input's time
    assert g.waiting_for_teleop() is None
    g.on_mouse(1100 * MS)
    g.give_up(TELEOP)  # a silent teleop is given up on until it speaks again
    assert g.waiting_for_teleop() is None
    g.on_intervention(1050 * MS)
    assert g.waiting_for_teleop() == TELEOP
    g.on_intervention(1100 * MS)
    assert "teleop 1.10 s" in g.describe() and g.waiting_for_teleop() is None


def test_the_gate_says_how_long_the_actor_has_ticked_without_an_episode() -> None:
    g = gate()
    assert g.idle_for(5000 * MS) == 0  # no actor heard
    g.on_tick(1000 * MS, commanded=True)
    assert g.idle_for(1050 * MS) == 0  # in an episode
    for t in range(11, 40):  # the episode ended at 1.1 s: idle ticks since
        g.on_tick(t * 100 * MS, commanded=False)
    assert g.idle_for(3950 * MS) == 2850 * MS
    g.on_tick(3000 * MS, commanded=True)  # a late, older message changes nothing
    assert g.idle_for(3950 * MS) == 2850 * MS
    g.on_tick(4000 * MS, commanded=True)  # the next episode
    assert g.idle_for(4050 * MS) == 0
    g.on_tick(4100 * MS, commanded=False)
    g.give_up(ACTOR)  # a silent actor is not an idle one
    assert g.idle_for(9000 * MS) == 0
