"""The arm bridge as a real process over real DDS, against a franka_ros2 stand-in with its exact topics.

The wiring, end to end: the driver's state passed through, commands (stamp, frame, publisher gid)
into the core and its poses out on the equilibrium topic with the command's stamp, holds, the
gripper width topic, the reset action (goal, result, cancel), the action_scale parameter, driver
loss as a clear NO_DATA state and log line with re-seeding, the clear startup error without
franka_msgs, /diagnostics, and the same bridge on the MuJoCo sim cell. What the bridge decides at
each moment (watchdog timing, debounce, hand-over, reset arrival) is tested tick by tick without
DDS in ``src/user_robot/test/test_bridge_core.py``. The arm stand-in runs in its own process and
every wait here is for an event, never a rate or a duration, so a loaded machine only slows the
test down.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from pathlib import Path

import driver_standins as standins
import numpy as np
import pytest
import yaml
from action_msgs.msg import GoalStatus
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import Log
from rclpy.action import ActionClient
from rclpy.duration import Duration
from rclpy.qos import DurabilityPolicy, QoSProfile
from std_msgs.msg import Float64

from user_interfaces.action import ResetArm
from user_interfaces.msg import ArmCommand, ArmState
from user_robot.action_mapping import apply_action
from user_robot.config_loader import config_dir, from_mapping
from user_robot.diagnostics import ARM_BRIDGE_KEYS, values_of
from user_robot.nodes.qos import CONTROL
from user_robot.pose_math import quat_from_rpy, rpy_from_quat
from user_robot.reset_planner import reset_pose
from user_robot.robot_config import load_robot
from user_robot.safety import Workspace, rotation_angle
from user_robot.task_config import TaskConfig, load_task

NS = f"/bridge_test_{os.getpid()}"  # unique: never cross-talks with other robot_0 graphs
DOWN = quat_from_rpy([math.pi, 0.0, 0.0])
ROSOUT = QoSProfile(depth=100, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def arm_command(node, action: list[float], frame: str, age_s: float = 0.0) -> ArmCommand:
    """A command as the actor sends it: stamped now (or ``age_s`` ago) in ``frame``."""
    msg = ArmCommand(action=[float(a) for a in action])
    msg.header.stamp = (node.get_clock().now() - Duration(seconds=age_s)).to_msg()
    msg.header.frame_id = frame
    return msg


def pose_of(msg: PoseStamped) -> tuple[np.ndarray, np.ndarray]:
    p, q = msg.pose.position, msg.pose.orientation
    return np.array([p.x, p.y, p.z]), np.array([q.x, q.y, q.z, q.w])


class Cell:
    """A franka_ros2 stand-in in its own process + a probe node in the robot namespace (in this one)."""

    def __init__(self, spawn, xyz: np.ndarray, quat: np.ndarray = DOWN) -> None:
        self.spawn = spawn
        self.bridge = None
        standins.start(spawn, "franka", NS, *xyz, *quat)
        self.h = standins.Harness()
        self.probe = self.h.node("probe", NS)
        self.states = standins.Recorder(self.probe, ArmState, "arm/state", CONTROL)
        qos = standins.RCLCPP_DEFAULT
        self.equilibria = standins.Recorder(self.probe, PoseStamped, standins.EQUILIBRIUM_TOPIC, qos)
        self.widths = standins.Recorder(self.probe, Float64, standins.WIDTH_TOPIC, qos)
        self.diagnostics = standins.Recorder(self.probe, DiagnosticArray, "/diagnostics", 10)
        self.rosout = standins.Recorder(self.probe, Log, "/rosout", ROSOUT)
        self.commands = self.probe.create_publisher(ArmCommand, "arm/command", CONTROL)
        self.frame = "base"  # the frame the bridge drives for the task (sim robot config)

    def start_bridge(self, **kwargs) -> None:
        self.bridge = start_bridge(self.spawn, **kwargs)

    def franka(self, **values: object) -> None:
        """Set the arm stand-in's parameters (``xyz``, ``track``, ``publishing``)."""
        standins.set_parameters(self.probe, f"{NS}/franka_standin", **values)

    def command(self, action: list[float], age_s: float = 0.0, frame: str | None = None, publisher=None) -> ArmCommand:
        publisher = publisher or self.commands
        standins.wait_until(lambda: publisher.get_subscription_count() > 0, 10.0, "the bridge's subscription")
        msg = arm_command(self.probe, action, self.frame if frame is None else frame, age_s)
        publisher.publish(msg)
        return msg

    def wait_status(self, status: int, contains: str = "", timeout: float = 30.0) -> ArmState:
        start = time.monotonic()
        deadline = start + timeout
        while time.monotonic() < deadline:  # any state since we began waiting: a short one may be gone already
            for state in self.states.since(start):
                if state.status == status and contains in state.message:
                    return state
            time.sleep(0.01)
        log = "\n".join(self.bridge.lines[-10:]) if self.bridge else ""
        last = self.states.last()
        raise AssertionError(f"no state {status} '{contains}' in {timeout} s; last: {last}\nbridge:\n{log}")

    def equilibrium(self) -> tuple[np.ndarray, np.ndarray]:
        """The equilibrium pose now being published (waits for a fresh message)."""
        t = time.monotonic()
        msgs = standins.wait_until(lambda: self.equilibria.since(t), 10.0, "an equilibrium pose")
        return pose_of(msgs[-1])

    def command_and_wait(self, action: list[float]) -> tuple[np.ndarray, np.ndarray]:
        """Send a command; return the equilibrium pose the bridge published for it (stamped with its stamp)."""
        t = time.monotonic()
        stamp = self.command(action).header.stamp
        msg = standins.wait_until(
            lambda: next((m for m in self.equilibria.since(t) if m.header.stamp == stamp), None),
            10.0,
            f"the equilibrium pose of our command (state: {self.states.last()})",
        )
        return pose_of(msg)

    def diag(self, timeout: float = 10.0) -> dict[str, str]:
        """The bridge's next /diagnostics values (other nodes may publish there too)."""
        t = time.monotonic()
        name = f"{NS.strip('/')}/arm_bridge"
        msgs = standins.wait_until(
            lambda: [m for m in self.diagnostics.since(t) if m.status[0].name == name], timeout, "/diagnostics"
        )
        return values_of(msgs[-1])

    def logged(self, level: int, text: str) -> list[str]:
        """The bridge's /rosout lines at ``level`` containing ``text``."""
        return [m.msg for _, m in self.rosout.messages if m.level == level and text in m.msg]


@pytest.fixture
def cell_factory(spawn):
    cells: list[Cell] = []

    def make(xyz: np.ndarray, quat: np.ndarray = DOWN) -> Cell:
        cells.append(Cell(spawn, xyz, quat))
        return cells[-1]

    yield make
    for c in cells:
        c.h.close()


def start_bridge(spawn, task: str = "peg_insertion", robot: str = "sim", env: dict[str, str] | None = None):
    args = ["-m", "user_robot.nodes.arm_bridge", "--ros-args", "-r", f"__ns:={NS}"]
    unbuffered_logs = {"RCUTILS_LOGGING_BUFFERED_STREAM": "0"}
    return spawn([*args, "-p", f"task:={task}", "-p", f"robot:={robot}"], {**unbuffered_logs, **(env or {})})


def test_base_frame_state_commands_holds_diagnostics_and_reset(spawn, cell_factory) -> None:
    task = load_task("peg_insertion")  # base frame, 6 dims, 0.01 m / 0.05 rad per tick
    target = np.array(task.target.xyz)
    measured = target + np.array([0.055, 0.0, 0.0])
    cell = cell_factory(measured)
    start_bridge(spawn)

    # Startup: hold the measured pose, status HOLDING, the driver's state passed through.
    cell.wait_status(ArmState.STATUS_HOLDING, "first command")
    state = standins.wait_until(  # wrench and gripper arrive on their own topics
        lambda: (s := cell.states.last()) and s.gripper_width > 0 and s.wrench.force.z > 0 and s, 10.0, "full state"
    )
    xyz, quat = cell.equilibrium()
    np.testing.assert_allclose(xyz, measured, atol=1e-12)
    assert rotation_angle(quat, DOWN) < 1e-9
    assert state.header.frame_id == "base"
    assert (state.wrench.force.x, state.wrench.force.z) == (0.5, 3.0)
    assert math.isclose(state.gripper_width, 0.08, rel_tol=1e-6)

    # Action → equilibrium = measured pose + scaled delta, stamped with the command's stamp.
    action = [-1.0, 0.5, 1.0, 0.0, 0.0, 1.0]
    xyz, quat = cell.command_and_wait(action)
    expected = apply_action(np.array(action), measured, DOWN, task.action)
    np.testing.assert_allclose(xyz, expected.xyz, atol=1e-9)
    assert rotation_angle(quat, expected.quat) < 1e-9
    cell.wait_status(ArmState.STATUS_OK)

    # Workspace: x beyond +6 cm and z below -3 mm of the target are clipped to the box.
    xyz, _ = cell.command_and_wait([1.0, 0.0, -1.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(xyz, target + np.array([0.06, 0.0, -0.003]), atol=1e-9)

    # NaN: rejected, pose held, status says why.
    cell.command([math.nan, 0.0, 0.0, 0.0, 0.0, 0.0])
    cell.wait_status(ArmState.STATUS_HOLDING, "non-finite")
    np.testing.assert_allclose(cell.equilibrium()[0], target + np.array([0.06, 0.0, -0.003]), atol=1e-9)

    # Watchdog: a valid command, then silence → HOLDING, the last safe pose re-published.
    cell.command_and_wait([-1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    cell.wait_status(ArmState.STATUS_HOLDING, "watchdog")
    np.testing.assert_allclose(cell.equilibrium()[0], measured - np.array([0.01, 0.0, 0.0]), atol=1e-9)

    values = cell.diag()
    assert set(ARM_BRIDGE_KEYS) <= set(values)
    assert int(values["clamps_workspace"]) >= 1
    assert int(values["rejected_nonfinite"]) == 1
    assert int(values["watchdog_holds"]) >= 1
    assert float(values["loop_rate_hz"]) > 0  # measured (its value under load is a benchmark's business)
    assert values["status"] == "holding"

    # action_scale (safe to lower at run time): halves the step; outside [0, 1] it is refused.
    with pytest.raises(AssertionError, match="successful=False"):
        standins.set_parameters(cell.probe, f"{NS}/arm_bridge", action_scale=1.5)
    standins.set_parameters(cell.probe, f"{NS}/arm_bridge", action_scale=0.5)
    xyz, _ = cell.command_and_wait([-1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(xyz, measured - np.array([0.005, 0.0, 0.0]), atol=1e-9)

    # Reset: lift first, then to the seeded randomized reset pose inside the box; done once the arm is there.
    cell.franka(track=True)
    client = ActionClient(cell.probe, ResetArm, "arm/reset")
    assert client.wait_for_server(timeout_sec=10.0)
    t_reset = time.monotonic()
    handle = standins.accepted_goal(client, ResetArm.Goal(use_task_reset_pose=True, randomize=True, seed=3))
    result_future = handle.get_result_async()
    result = standins.wait_until(lambda: result_future.done() and result_future.result(), 30.0, "reset result").result
    assert result.success, result.message
    ws = Workspace(task.target, task.workspace)
    goal = reset_pose(task, ws, np.random.default_rng(3))
    final_xyz = np.array([result.final_pose.position.x, result.final_pose.position.y, result.final_pose.position.z])
    np.testing.assert_allclose(final_xyz, goal.xyz, atol=1e-9)
    path = np.array([pose_of(m)[0] for m in cell.equilibria.since(t_reset)])
    first_xy_move = np.argmax(np.linalg.norm(path[:, :2] - path[0, :2], axis=1) > 1e-4)
    assert path[first_xy_move, 2] >= path[0, 2] + 0.9 * task.reset.lift  # lifted before moving sideways
    cell.wait_status(ArmState.STATUS_HOLDING, "first command")


def ee_task_config(tmp_path: Path) -> tuple[dict[str, str], TaskConfig]:
    """A config tree with a 7-dim, end-effector-frame, binary-gripper variant of peg insertion."""
    root = tmp_path / "config"
    shutil.copytree(config_dir() / "robots", root / "robots")
    data = yaml.safe_load((config_dir() / "tasks" / "peg_insertion.yaml").read_text())
    data["name"] = "peg_ee"
    data["action"].update(dims=7, frame="ee", gripper="binary", gripper_debounce_s=0.6)
    (root / "tasks").mkdir()
    (root / "tasks" / "peg_ee.yaml").write_text(yaml.safe_dump(data))
    return {"USER_CONFIG_DIR": str(root)}, from_mapping(TaskConfig, data)


def test_stale_foreign_frame_and_second_source_commands_are_dropped(spawn, cell_factory) -> None:
    """The gate's inputs come from DDS: the stamp, the frame and the publisher's gid (its timing: test_bridge_core)."""
    measured = np.array(load_task("peg_insertion").target.xyz) + np.array([0.0, 0.0, 0.05])
    cell = cell_factory(measured)
    cell.start_bridge()
    cell.wait_status(ArmState.STATUS_HOLDING)
    owner_pose, _ = cell.command_and_wait([0.0, 0.0, 1.0, 0.0, 0.0, 0.0])  # the probe now owns arm/command

    cell.command([0.0, 0.0, 1.0, 0.0, 0.0, 0.0], age_s=3600.0)  # an hour-old command
    standins.wait_until(lambda: cell.logged(Log.WARN, "(stale)"), 10.0, "the stale command logged")
    cell.command([0.0, 0.0, 1.0, 0.0, 0.0, 0.0], frame="map")  # (arm/command keeps only the latest: one by one)
    standins.wait_until(lambda: cell.logged(Log.WARN, "(foreign_frame)"), 10.0, "the foreign frame logged")
    values = cell.diag()
    assert int(values["commands_stale"]) == 1 and int(values["commands_foreign_frame"]) == 1
    np.testing.assert_allclose(cell.equilibrium()[0], owner_pose, atol=1e-12)

    intruder = cell.h.node("intruder", NS).create_publisher(ArmCommand, "arm/command", CONTROL)

    def intruder_refused() -> bool:  # both command in turn: whichever spoke last owns arm/command, the other is refused
        cell.command([0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
        time.sleep(0.1)  # (arm/command keeps only the newest message: give the bridge time to take each)
        cell.command([0.0, 0.0, 0.0, 0.0, 0.0, 0.0], publisher=intruder)
        time.sleep(0.1)
        return bool(cell.logged(Log.WARN, "(foreign_source)"))

    standins.wait_until(intruder_refused, 20.0, "the second publisher refused")
    assert any("/intruder" in line and "/probe" in line for line in cell.logged(Log.WARN, "(foreign_source)"))
    assert int(cell.diag()["commands_foreign_source"]) >= 1


def test_ee_frame_gripper_wrong_dims_and_reset_cancel(spawn, cell_factory, tmp_path) -> None:
    env, task = ee_task_config(tmp_path)
    measured = np.array(task.target.xyz) + np.array([0.0, 0.0, 0.05])
    cell = cell_factory(measured)
    cell.start_bridge(task="peg_ee", env=env)
    cell.wait_status(ArmState.STATUS_HOLDING)
    cell.frame = load_robot("sim").ee_frame

    # Tool pointing down: tool +y is base -y, tool +z is base -z, a tool yaw is a base yaw of opposite sign.
    xyz, quat = cell.command_and_wait([0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0])
    np.testing.assert_allclose(xyz, measured + np.array([0.0, -0.01, -0.01]), atol=1e-9)
    assert math.isclose(rpy_from_quat(quat)[2], -0.05, abs_tol=1e-9)
    standins.wait_until(lambda: [m.data for _, m in cell.widths.messages] == [0.0], 10.0, "gripper close (width 0)")
    assert cell.wait_status(ArmState.STATUS_OK).gripper_closed

    # A command with the wrong number of dims is rejected and named.
    cell.command([0.0] * 6)
    cell.wait_status(ArmState.STATUS_HOLDING, "expects 7")

    # A reset can be canceled: the bridge holds where the reset got to.
    client = ActionClient(cell.probe, ResetArm, "arm/reset")
    assert client.wait_for_server(timeout_sec=10.0)
    handle = standins.accepted_goal(client, ResetArm.Goal(use_task_reset_pose=True))
    cell.wait_status(ArmState.STATUS_RESETTING)
    handle.cancel_goal_async()
    result_future = handle.get_result_async()
    done = standins.wait_until(lambda: result_future.done() and result_future.result(), 10.0, "canceled result")
    assert done.status == GoalStatus.STATUS_CANCELED and not done.result.success
    cell.wait_status(ArmState.STATUS_HOLDING)


def test_driver_loss_is_a_clear_state_and_reseeds(spawn, cell_factory) -> None:
    task = load_task("peg_insertion")
    measured = np.array(task.target.xyz) + np.array([0.0, 0.0, 0.05])
    cell = cell_factory(measured)
    cell.start_bridge()
    cell.wait_status(ArmState.STATUS_HOLDING)
    cell.command_and_wait([0.0, 0.0, 1.0, 0.0, 0.0, 0.0])

    cell.franka(publishing=False)  # a reflex: the broadcaster stops
    state = cell.wait_status(ArmState.STATUS_NO_DATA, "no driver state")
    assert "error_recovery" in state.message
    logged = standins.wait_until(
        lambda: [m for _, m in cell.rosout.messages if m.level == Log.ERROR and "no driver state" in m.msg], 10.0, "log"
    )
    assert logged[0].name == f"{NS.strip('/')}.arm_bridge"
    t = time.monotonic() + 0.2  # (a pose published just before the outage may still be in flight)
    time.sleep(0.5)
    assert cell.equilibria.since(t) == []  # nothing commanded while the state is missing

    moved = measured + np.array([0.02, 0.0, 0.0])  # the arm was moved during the outage
    cell.franka(xyz=[float(v) for v in moved], publishing=True)
    cell.wait_status(ArmState.STATUS_HOLDING, "first command")
    np.testing.assert_allclose(cell.equilibrium()[0], moved, atol=1e-12)
    assert standins.wait_until(lambda: cell.logged(Log.INFO, "driver state back"), 10.0, "the outage's end logged")


def test_franka_gripper_without_franka_msgs_fails_clearly(spawn) -> None:
    bridge = start_bridge(spawn, robot="franka")
    assert bridge.popen.wait(timeout=30) == 1
    fatal = [line for line in bridge.output() if line.startswith("[FATAL]")]
    assert fatal and "franka_msgs" in fatal[0] and "gripper: franka_action" in fatal[0]


def test_against_the_sim_cell(spawn) -> None:
    """The same bridge drives the MuJoCo sim cell, which speaks the franka_ros2 topics."""
    task = load_task("peg_insertion")
    h = standins.Harness()
    try:
        probe = h.node("probe", NS)
        states = standins.Recorder(probe, ArmState, "arm/state", CONTROL)
        commands = probe.create_publisher(ArmCommand, "arm/command", CONTROL)
        ros_args = ["--ros-args", "-r", f"__ns:={NS}", "-p", "task:=peg_insertion", "-p", "robot:=sim"]
        spawn(["-m", "user_robot.nodes.sim_cell", *ros_args, "-p", "cameras:=false"])
        start_bridge(spawn)
        first = standins.wait_until(
            lambda: (s := states.last()) and s.status == ArmState.STATUS_HOLDING and s, 60.0, "bridge on the sim"
        )
        standins.wait_until(lambda: commands.get_subscription_count() > 0, 10.0, "the bridge's subscription")
        assert first.header.frame_id == "base"

        client = ActionClient(probe, ResetArm, "arm/reset")
        assert client.wait_for_server(timeout_sec=10.0)
        handle = standins.accepted_goal(client, ResetArm.Goal(use_task_reset_pose=True))
        result_future = handle.get_result_async()
        result = standins.wait_until(lambda: result_future.done() and result_future.result(), 15.0, "reset").result
        assert result.success, result.message
        goal = reset_pose(task, Workspace(task.target, task.workspace), None)

        def measured() -> np.ndarray:
            p = states.last().pose.position
            return np.array([p.x, p.y, p.z])

        # The task's impedance clips the xy pose error to 3 mm (gentle in contact), so the arm trails.
        standins.wait_until(lambda: np.linalg.norm(measured() - goal.xyz) < 0.005, 30.0, "the arm at the reset pose")
        start = measured()
        deadline = time.monotonic() + 10.0
        while measured()[0] - start[0] < 0.02 and time.monotonic() < deadline:  # +x at 10 Hz
            commands.publish(arm_command(probe, [1.0, 0.0, 0.0, 0.0, 0.0, 0.0], "base"))
            time.sleep(0.1)
        moved = measured() - start
        assert moved[0] >= 0.02 and np.all(np.abs(moved[1:]) < 0.005)
        assert measured()[0] <= task.target.xyz[0] + task.workspace.xyz_high[0] + 0.005
    finally:
        h.close()
