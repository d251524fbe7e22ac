"""The arm bridge's decisions (BridgeCore), tick by tick on explicit times: no DDS, no scheduling.

Covers what the bridge does with each input at each moment: startup hold of the measured pose,
action → equilibrium in the base and the end-effector frame, workspace clamping, NaN and
wrong-size commands, the action scale, the watchdog to the tick, gripper debounce, the command
gate (stale, foreign frame, a second publisher, hand-over), driver loss and re-seeding, Franka
error modes, and resets (lift first, seeded goal, arrival, blocked arm, cancel, driver loss).
Then a hypothesis property: whatever sequence of commands, ticks, outages and resets, no pose
leaves the workspace or steps beyond the limits, and nothing is commanded without driver state.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from user_interfaces.msg import ArmState
from user_robot.action_mapping import GRIPPER_CLOSE, GRIPPER_OPEN, apply_action
from user_robot.bridge_core import NS_PER_S, RESET_SETTLE_S, BridgeCore, Status
from user_robot.pose_math import quat_from_rpy, rpy_from_quat, wrap_angle
from user_robot.reset_planner import reset_pose
from user_robot.robot_config import load_robot
from user_robot.safety import TOLERANCE, Pose, Workspace, rotation_angle
from user_robot.task_config import load_task

DOWN = quat_from_rpy([math.pi, 0.0, 0.0])
ACTOR = b"actor-gid"


TARGET = np.array(load_task("peg_insertion").target.xyz)


def ns(t: float) -> int:
    return round(t * NS_PER_S)


def at(dx: float, dy: float, dz: float) -> np.ndarray:
    """A position relative to peg insertion's target."""
    return TARGET + np.array([dx, dy, dz])


class Cell:
    """A BridgeCore and a clock; ``arm`` is where the driver says the arm is."""

    def __init__(self, xyz: np.ndarray, task: str = "peg_insertion", robot: str = "sim", **action: object) -> None:
        self.task = load_task(task)
        if action:
            self.task = dataclasses.replace(self.task, action=dataclasses.replace(self.task.action, **action))
        self.robot = load_robot(robot)
        self.core = BridgeCore(self.task, self.robot, "/r/current_pose", "error_recovery")
        self.now = 100.0
        self.arm = Pose.of(xyz, DOWN)
        self.frame = self.robot.base_frame if self.task.action.frame == "base" else self.robot.ee_frame
        self.period = 1.0 / self.robot.safety.bridge_rate_hz

    def step(self, dt: float | None = None, driver: bool = True):
        """Advance the clock by one bridge period (or ``dt``), deliver the driver state, tick."""
        self.now += self.period if dt is None else dt
        if driver:
            self.core.on_pose(self.arm, ns(self.now), self.now)
        return self.core.tick(self.now)

    def command(self, action: list[float], age_s: float = 0.0, frame: str | None = None, source=ACTOR, scale=1.0):
        stamp = ns(self.now - age_s)
        return self.core.command(self.now, stamp, frame or self.frame, source, np.array(action), scale)


def test_status_values_are_the_message_constants() -> None:
    for status in Status:
        assert getattr(ArmState, f"STATUS_{status.name}") == status


def test_startup_holds_the_measured_pose_then_maps_actions_in_the_base_frame() -> None:
    task = load_task("peg_insertion")  # base frame, 6 dims, 0.01 m / 0.05 rad per unit action
    measured = np.array(task.target.xyz) + np.array([0.055, 0.0, 0.0])
    cell = Cell(measured)
    tick = cell.core.tick(cell.now)
    assert tick.status == Status.NO_DATA and tick.pose is None and "/r/current_pose" in tick.message
    tick = cell.step()
    assert tick.status == Status.HOLDING and "first command" in tick.message
    np.testing.assert_allclose(tick.pose.xyz, measured, atol=1e-12)
    assert tick.log is None  # startup is not an outage coming back

    action = [-1.0, 0.5, 1.0, 0.0, 0.0, 1.0]
    out = cell.command(action)
    assert out.verdict.admitted and out.gripper is None
    np.testing.assert_allclose(out.pose.xyz, measured + np.array([-0.01, 0.005, 0.01]), atol=1e-9)
    rpy = rpy_from_quat(out.pose.quat)
    assert abs(wrap_angle(rpy[0] - math.pi)) < 1e-9 and abs(rpy[1]) < 1e-9 and math.isclose(rpy[2], 0.05, abs_tol=1e-9)
    np.testing.assert_allclose(out.pose.xyz, apply_action(np.array(action), measured, DOWN, task.action).xyz, atol=1e-9)
    tick = cell.step()
    assert tick.status == Status.OK and tick.stamp_ns == ns(cell.now - cell.period)  # the command's own stamp
    np.testing.assert_allclose(tick.pose.xyz, out.pose.xyz)

    # The next action starts from the measured pose (still where it was), clipped to the box.
    out = cell.command([1.0, 0.0, -1.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(out.pose.xyz, np.array(task.target.xyz) + np.array([0.06, 0.0, -0.003]), atol=1e-9)
    assert cell.core.safety.counters.clamps_workspace >= 1

    # Half the action scale, half the step.
    out = cell.command([-1.0, 0.0, 0.0, 0.0, 0.0, 0.0], scale=0.5)
    np.testing.assert_allclose(out.pose.xyz, measured - np.array([0.005, 0.0, 0.0]), atol=1e-9)


def test_nonfinite_and_wrong_size_commands_hold_the_last_safe_pose() -> None:
    cell = Cell(at(0.0, 0.0, 0.05))
    cell.step()
    held = cell.command([0.0, 0.0, 1.0, 0.0, 0.0, 0.0]).pose
    out = cell.command([math.nan, 0.0, 0.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(out.pose.xyz, held.xyz)
    tick = cell.step()
    assert tick.status == Status.HOLDING and "non-finite" in tick.message
    np.testing.assert_array_equal(tick.pose.xyz, held.xyz)
    assert cell.core.safety.counters.rejected_nonfinite == 1
    assert cell.command([0.0] * 7).pose is None
    assert "expects 6" in cell.step().message
    assert cell.command([0.0] * 6).pose is not None and cell.step().status == Status.OK
    cell.arm = Pose.of([math.inf, 0.0, 0.0], DOWN)  # a non-finite driver pose is refused, not held
    assert not cell.core.on_pose(cell.arm, ns(cell.now), cell.now)
    assert cell.core.measured.is_finite()


def test_watchdog_holds_to_the_tick_and_republishes() -> None:
    cell = Cell(at(0.0, 0.0, 0.05))
    watchdog_s = cell.robot.safety.watchdog_s
    cell.step()
    sent_at = cell.now
    commanded = cell.command([-1.0, 0.0, 0.0, 0.0, 0.0, 0.0]).pose
    statuses = []
    while cell.now < sent_at + watchdog_s + 0.3:
        tick = cell.step()
        statuses.append((cell.now - sent_at, tick.status))
        np.testing.assert_array_equal(tick.pose.xyz, commanded.xyz)  # re-published every tick, OK or holding
    assert all(s == Status.OK for age, s in statuses if age <= watchdog_s)
    assert all(s == Status.HOLDING for age, s in statuses if age > watchdog_s)
    assert "watchdog" in cell.core.message and cell.core.safety.counters.watchdog_holds == 1
    held = [t for t in (cell.step() for _ in range(3))]
    assert all(t.stamp_ns is None for t in held)  # holds are stamped now, not with the old command's time
    cell.command([0.0] * 6)
    assert cell.step().status == Status.OK


def test_end_effector_frame_and_gripper_debounce() -> None:
    cell = Cell(at(0.0, 0.0, 0.05), dims=7, frame="ee", gripper="binary", gripper_debounce_s=0.6)
    assert cell.frame == cell.robot.ee_frame
    cell.step()
    # Tool pointing down: tool +y is base -y, tool +z is base -z, a tool yaw is a base yaw of opposite sign.
    out = cell.command([0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0])
    np.testing.assert_allclose(out.pose.xyz, at(0.0, -0.01, 0.04), atol=1e-9)
    assert math.isclose(rpy_from_quat(out.pose.quat)[2], -0.05, abs_tol=1e-9)
    assert out.gripper == GRIPPER_CLOSE
    cell.now += 0.3
    assert cell.command([*[0.0] * 6, -1.0]).gripper is None  # 0.3 s after closing: debounced
    assert cell.core.safety.counters.gripper_debounced == 1
    cell.now += 0.31
    assert cell.command([*[0.0] * 6, -1.0]).gripper == GRIPPER_OPEN
    assert cell.command([*[0.0] * 6, -1.0]).gripper is None  # no change, nothing to send


def test_command_gate_stale_foreign_frame_second_source_and_handover() -> None:
    cell = Cell(at(0.0, 0.0, 0.05))
    cell.step()
    owner = cell.command([0.0, 0.0, 1.0, 0.0, 0.0, 0.0]).pose
    stale = cell.command([0.0, 0.0, 1.0, 0.0, 0.0, 0.0], age_s=3600.0)
    assert stale.verdict.reason == "stale" and stale.verdict.log and stale.pose is None
    assert cell.command([0.0, 0.0, 1.0, 0.0, 0.0, 0.0], frame="map").verdict.reason == "foreign_frame"
    intruder = cell.command([0.0, 0.0, 1.0, 0.0, 0.0, 0.0], source=b"intruder")
    assert intruder.verdict.reason == "foreign_source" and intruder.pose is None
    np.testing.assert_array_equal(cell.step().pose.xyz, owner.xyz)
    assert {k: v for k, v in cell.core.diagnostics(cell.now).items() if k.startswith("commands_")} == {
        "commands_stale": 1,
        "commands_foreign_frame": 1,
        "commands_foreign_source": 1,
    }
    cell.step(cell.robot.safety.command_owner_timeout_s + 0.01)  # the owner fell silent: hand over
    assert cell.command([0.0, 0.0, -1.0, 0.0, 0.0, 0.0], source=b"intruder").pose is not None


def test_driver_loss_commands_nothing_and_reseeds_where_the_arm_is() -> None:
    measured = at(0.0, 0.0, 0.05)
    cell = Cell(measured)
    max_age = cell.robot.safety.max_state_age_s
    cell.step()
    cell.command([0.0, 0.0, 1.0, 0.0, 0.0, 0.0])
    lost_at = cell.now
    ticks = []
    while cell.now < lost_at + max_age + 0.2:
        ticks.append((cell.now - lost_at, cell.step(driver=False)))
        cell.command([0.0, 0.0, 1.0, 0.0, 0.0, 0.0])  # the actor goes on: ignored without state
    down = [t for age, t in ticks if age > max_age + 1e-6]
    assert down and all(t.status == Status.NO_DATA and t.pose is None for t in down)
    assert all(t.status != Status.NO_DATA for age, t in ticks if age < max_age - 1e-6)
    logs = [t.log for _, t in ticks if t.log]
    assert len(logs) == 1 and logs[0].level == "error" and "error_recovery" in logs[0].text
    assert cell.core.reset_refusal() is not None

    cell.arm = Pose.of(measured + np.array([0.02, 0.0, 0.0]), DOWN)  # moved by hand during the outage
    tick = cell.step()
    assert tick.status == Status.HOLDING and "first command" in tick.message
    assert tick.log.level == "info" and "driver state back" in tick.log.text
    np.testing.assert_allclose(tick.pose.xyz, cell.arm.xyz, atol=1e-12)


def test_franka_error_mode_stops_commanding_until_cleared() -> None:
    cell = Cell(at(0.0, 0.0, 0.05), robot="franka")
    cell.step()
    cell.command([0.0, 0.0, 1.0, 0.0, 0.0, 0.0])
    line = cell.core.on_robot_error("cartesian_reflex")
    assert line.level == "error" and "error_recovery" in line.text
    assert cell.core.on_robot_error("cartesian_reflex") is None  # logged once
    tick = cell.step()
    assert tick.status == Status.ERROR and tick.pose is None
    assert cell.command([0.0, 0.0, 1.0, 0.0, 0.0, 0.0]).pose is None
    assert cell.core.on_robot_error(None).level == "info"
    tick = cell.step()
    assert tick.status == Status.HOLDING
    np.testing.assert_allclose(tick.pose.xyz, cell.arm.xyz)


def run_reset(cell: Cell, seed: int, track: float = 0.3, limit_s: float = 30.0) -> list:
    """Start a seeded reset and tick until it ends; the arm moves ``track`` of the way to each pose."""
    goal = cell.core.reset_goal(None, randomize=True, seed=seed)
    reset, grip = cell.core.start_reset(goal, cell.now, open_gripper=False)
    assert grip is None and cell.core.reset_refusal() == "a reset is running"
    path = []
    while not reset.done.is_set() and cell.now < limit_s + 100.0:
        tick = cell.step()
        path.append(tick)
        cell.arm = Pose.of(cell.arm.xyz + track * (tick.pose.xyz - cell.arm.xyz), tick.pose.quat)
    return path


def test_reset_lifts_first_and_ends_at_the_seeded_pose() -> None:
    task = load_task("peg_insertion")
    cell = Cell(at(0.03, 0.0, 0.0))
    cell.step()
    start = cell.arm.xyz
    path = run_reset(cell, seed=3)
    assert [t.status for t in path[:-1]] == [Status.RESETTING] * (len(path) - 1)
    assert path[-1].status == Status.HOLDING and "reset done" in path[-1].message
    reset_goal = reset_pose(task, Workspace(task.target, task.workspace), np.random.default_rng(3))
    np.testing.assert_allclose(path[-1].pose.xyz, reset_goal.xyz, atol=1e-9)
    xyz = np.array([t.pose.xyz for t in path])
    first_xy_move = np.argmax(np.linalg.norm(xyz[:, :2] - start[:2], axis=1) > 1e-4)
    assert xyz[first_xy_move, 2] >= start[2] + 0.9 * task.reset.lift
    assert np.all(np.linalg.norm(np.diff(xyz, axis=0), axis=1) <= cell.robot.safety.max_translation_step + 1e-9)
    assert cell.core.reset_refusal() is None and "first command" in cell.step().message


def test_reset_fails_when_the_arm_never_arrives_and_cancel_holds_where_it_got() -> None:
    task = load_task("peg_insertion")
    cell = Cell(at(0.0, 0.0, 0.05))
    cell.step()
    path = run_reset(cell, seed=1, track=0.0)  # blocked: the arm does not move
    assert "reset failed" in path[-1].message and "mm" in path[-1].message
    assert len(path) * cell.period >= task.reset.duration_s + RESET_SETTLE_S

    goal = cell.core.reset_goal(None, randomize=False, seed=0)
    reset, _ = cell.core.start_reset(goal, cell.now, open_gripper=True)
    for _ in range(5):
        cell.step()
    reached = cell.core.safety.last
    cell.core.cancel_reset()
    assert reset.done.is_set() and not reset.success and "canceled" in reset.message
    tick = cell.step()
    assert tick.status == Status.HOLDING
    np.testing.assert_array_equal(tick.pose.xyz, reached.xyz)

    reset, _ = cell.core.start_reset(goal, cell.now, open_gripper=False)
    cell.step(cell.robot.safety.max_state_age_s + 0.1, driver=False)
    assert reset.done.is_set() and "driver state lost" in reset.message


def test_explicit_reset_target_is_clipped_into_the_box() -> None:
    task = load_task("peg_insertion")
    cell = Cell(at(0.0, 0.0, 0.05))
    cell.step()
    goal = cell.core.reset_goal(Pose.of(at(1.0, 0.0, 0.0), DOWN), False, 0)
    assert Workspace(task.target, task.workspace).contains(goal)
    assert math.isclose(goal.xyz[0], task.target.xyz[0] + task.workspace.xyz_high[0])


EVENTS = st.lists(
    st.one_of(
        st.tuples(st.just("command"), st.lists(st.one_of(st.floats(-3, 3), st.just(math.nan)), min_size=6, max_size=6)),
        st.tuples(st.just("tick"), st.integers(1, 20)),
        st.tuples(st.just("outage"), st.floats(0.0, 3.0)),
        st.tuples(st.just("moved"), st.lists(st.floats(-0.2, 0.2), min_size=3, max_size=3)),
        st.tuples(st.just("reset"), st.integers(0, 5)),
        st.tuples(st.just("cancel"), st.none()),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(events=EVENTS)
def test_no_sequence_of_inputs_leaves_the_box_or_exceeds_the_step_limits(events) -> None:
    """Published poses: inside the box, within the step limits of the one before, unless re-seeded
    at the measured pose (which the driver says the arm is at; it is then held as it is)."""
    task = load_task("peg_insertion")
    ws = Workspace(task.target, task.workspace)
    cell = Cell(at(0.0, 0.0, 0.05))
    limits = cell.robot.safety
    last: Pose | None = None
    driver_down = False
    cell.step()
    received = cell.now

    def check(pose: Pose | None, status: Status | None = None) -> None:
        nonlocal last
        if pose is None:
            return
        assert pose.is_finite() and status not in (Status.NO_DATA, Status.ERROR)
        reseeded = np.allclose(pose.xyz, cell.arm.xyz, atol=1e-12)
        if last is not None and not reseeded:
            assert np.linalg.norm(pose.xyz - last.xyz) <= limits.max_translation_step + TOLERANCE
            assert rotation_angle(pose.quat, last.quat) <= limits.max_rotation_step + TOLERANCE
        assert reseeded or ws.contains(pose)
        last = pose

    for kind, arg in events:
        if kind == "command":
            out = cell.command(arg)
            assert out.pose is None or not driver_down
            check(out.pose)
        elif kind == "tick":
            for _ in range(arg):
                tick = cell.step()
                check(tick.pose, tick.status)
                driver_down, received = False, cell.now
                cell.arm = Pose.of(cell.arm.xyz + 0.5 * (cell.core.safety.last.xyz - cell.arm.xyz), cell.arm.quat)
        elif kind == "outage":
            tick = cell.step(arg, driver=False)
            driver_down = cell.now - received > limits.max_state_age_s
            assert (tick.pose is None) == driver_down
        elif kind == "moved":  # the arm pushed elsewhere inside the box (by hand, by contact)
            cell.arm = Pose.of(ws.clip_xyz(cell.arm.xyz + np.array(arg)), cell.arm.quat)
        elif kind == "reset" and cell.core.reset_refusal() is None:
            cell.core.start_reset(cell.core.reset_goal(None, True, arg), cell.now, open_gripper=False)
        elif kind == "cancel":
            cell.core.cancel_reset()


@pytest.mark.parametrize("robot", ["franka", "sim", "arx", "sim_arx"])
def test_every_robot_config_builds_a_core(robot: str) -> None:
    cell = Cell(at(0.0, 0.0, 0.05), robot=robot)
    assert cell.step().status == Status.HOLDING
    assert cell.core.gate.frame == cell.robot.base_frame
