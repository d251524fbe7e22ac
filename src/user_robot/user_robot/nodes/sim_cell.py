"""sim_cell: the MuJoCo sim cell, impersonating franka_ros2, realsense2_camera and spacenav.

Runs in the robot namespace (``-r __ns:=/robot_0``); every topic name comes from
``config/robots/<robot>.yaml`` (relative names resolve under the namespace). The sim loop runs on
the main thread: each state period (``state_rate_hz``) it applies the latest equilibrium pose and
gripper width, advances the physics, and publishes the driver state (current pose, external
wrench, joint states, gripper joint states) and the ground-truth ``sim/success`` (and, while an actor
observes it, the sim-only privileged ``sim/object_state``: object poses, then the success verdict as
1.0/0.0); camera images
at each camera's rate; the scripted expert's SpaceMouse twist and joy at the task's control rate
while the expert has control. ROS callbacks run on a second thread and only store commands.

Time: with ``publish_clock`` the cell publishes ``/clock`` and stamps with sim time, running
``real_time_factor`` times faster than the wall clock (other nodes set ``use_sim_time``);
otherwise it paces to the wall clock and stamps with the node clock. With ``lockstep`` (and
``publish_clock``) it also never advances the clock past what the graph has consumed
(:mod:`user_robot.sim.lockstep`): ``real_time_factor`` is then its top speed.

Several cells, one clock: with ``cells`` (namespaces, e.g. ``[robot_0, robot_1]``), ``cell_robots``
(their robot configs) and ``cell_tasks`` (their tasks, in a multi-task run) one process runs one cell
node per namespace (seeds ``seed + i``), steps them in turn and publishes one ``/clock`` (sim time
is one for the whole graph), held in lockstep until every cell's actor, arm bridge and teleop have
consumed it; a silent one is given up on as above.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped, Twist, WrenchStamped
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState, Joy
from std_msgs.msg import Bool, Float32MultiArray, Float64, Header, MultiArrayDimension, MultiArrayLayout
from std_srvs.srv import SetBool, Trigger

from user_interfaces.msg import ArmState, EpisodeResult, Intervention
from user_robot.contracts import ACTOR_TICK_TOPIC, OBJECT_STATE_TOPIC, TICK_COMMANDED, object_state_label
from user_robot.nodes.process_exit import leave
from user_robot.nodes.qos import CONTROL, HEARTBEAT, HEARTBEAT_LEASE_S, PROFILES, STATUS
from user_robot.nodes.runtime import InvalidHandle, RCLError, init
from user_robot.nodes.stacks import dump_stacks_on_request
from user_robot.nodes.stamps import NS_PER_S, stamp_from_ns, stamp_ns
from user_robot.robot_config import CameraConfig, load_robot
from user_robot.sim.cell import SimCell
from user_robot.sim.expert import ExpertSchedule, SimulatedHuman, VirtualSpaceMouse, make_expert
from user_robot.sim.lockstep import ACTOR, BRIDGE, TELEOP, LockstepGate, lockstep_period
from user_robot.task_config import load_task


def info_topic(camera: CameraConfig) -> str:
    """The camera_info topic: configured, or ``image_raw`` replaced by ``camera_info``."""
    if camera.info_topic:
        return camera.info_topic
    head, _, _ = camera.topic.rpartition("/")
    return f"{head}/camera_info" if head else "camera_info"


def encode(rgb: np.ndarray, encoding: str) -> np.ndarray:
    """Rendered RGB pixels in a realsense2_camera color encoding (rgb8, bgr8 or mono8)."""
    if encoding == "bgr8":
        return np.ascontiguousarray(rgb[:, :, ::-1])
    if encoding == "mono8":
        return (rgb @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)
    return rgb


class SimCellNode(Node):
    """See the module docstring."""

    def __init__(self, namespace: str | None = None, overrides: tuple[Parameter, ...] = (),
                 clock_owner: bool = True) -> None:
        super().__init__("sim_cell", namespace=namespace, parameter_overrides=list(overrides))
        p = self._declare_parameters()
        self.task = load_task(p["task"])
        self.robot = load_robot(p["robot"])
        self.seed = int(p["seed"])
        self.publish_clock = bool(p["publish_clock"])
        self.rtf = float(p["real_time_factor"]) if self.publish_clock else 1.0
        if not self.publish_clock and p["real_time_factor"] != 1.0:
            self.get_logger().warn("real_time_factor applies with publish_clock only: running in real time")
        self.period = 1.0 / float(p["state_rate_hz"])
        self.gate: LockstepGate | None = None
        if p["lockstep"] and self.publish_clock:
            control_period = 1.0 / self.task.control_rate_hz
            self.period = lockstep_period(self.period, control_period)
            slack = max(self.robot.safety.max_state_age_s / 2, control_period)
            self.gate = LockstepGate(round(control_period * 1e9), round(self.period * 1e9), round(slack * 1e9),
                                     lead_ticks=int(p["lockstep_lead_ticks"]))
        self.lockstep_timeout_s = float(p["lockstep_timeout_s"])
        self.idle_after_ns = round(float(p["idle_real_time_after_s"]) * 1e9)
        self._graph = threading.Condition()  # guards the gate; notified when a participant speaks
        self.cell = SimCell(self.task, self.robot)
        self.restart_at_scene_reset = bool(p["restart_at_scene_reset"])
        self.episode = 0
        self.cell.reset_scene(self.seed, self.episode)
        self.expert = make_expert(self.task)
        human = p["expert"] == "human"  # the simulated human: takes over when the policy goes wrong
        self.human = SimulatedHuman(self.expert) if human else None
        self.schedule = ExpertSchedule("off" if human else p["expert"], p["expert_takeover_probability"],
                                       p["expert_on_steps"], p["expert_off_steps"])
        self.schedule.start_episode(self.seed, self.episode)
        self.expert_override: bool | None = None
        self.mouse = VirtualSpaceMouse(self.robot.teleop)
        self._expert_was_active = False
        self._step = 0
        self._in_episode = False  # between the actor's scene reset and its episode result
        self._next_control_ns = 0
        self._lock = threading.Lock()
        self._equilibrium: tuple[np.ndarray, np.ndarray] | None = None
        self._gripper: float | None = None
        self.period_ns = round(self.period * NS_PER_S)
        self.control_ns = round(NS_PER_S / self.task.control_rate_hz)
        self.sim_ns = 0  # sim time in integer ns: a float sum of periods falls a nanosecond short of a tick,
        # and an actor whose timer waits for the tick's exact time then never ticks there (lockstep stalls)

        drv, names = self.robot.driver, self._joint_names()
        state_qos = PROFILES[drv.state_qos]
        self.pose_pub = self.create_publisher(PoseStamped, drv.current_pose, state_qos)
        # (a robot config without force sensing, external_wrench "", gets none, as its real driver)
        self.wrench_pub = self.create_publisher(WrenchStamped, drv.external_wrench, state_qos) if drv.external_wrench \
            else None
        self.joints_pub = self.create_publisher(JointState, drv.joint_states, state_qos)
        self.gripper_pub = self.create_publisher(JointState, drv.gripper_joint_states, CONTROL)
        self.success_pub = self.create_publisher(Bool, "sim/success", CONTROL)
        # the sim-only privileged observation (object poses), for tasks whose observation.state asks for it
        self.objects_pub = self.create_publisher(Float32MultiArray, OBJECT_STATE_TOPIC, CONTROL)
        self.joint_names, self.finger_names = names
        teleop = self.robot.teleop
        self.twist_pub = self.create_publisher(Twist, teleop.twist_topic, PROFILES[teleop.qos])
        self.joy_pub = self.create_publisher(Joy, teleop.joy_topic, PROFILES[teleop.qos])
        self.clock_pub = self.create_publisher(Clock, "/clock", 10) if self.publish_clock and clock_owner else None
        self.cameras: list[tuple[str, CameraConfig, Any, Any, float]] = []
        if p["cameras"]:
            for name, cam in self.robot.cameras.items():
                image = self.create_publisher(Image, cam.topic, PROFILES[cam.qos])
                info = self.create_publisher(CameraInfo, info_topic(cam), PROFILES[cam.qos])
                self.cameras.append((name, cam, image, info, 0))
        self.create_subscription(PoseStamped, drv.equilibrium_pose, self._on_equilibrium, PROFILES[drv.command_qos])
        self.create_subscription(Float64, drv.gripper_command, self._on_gripper, PROFILES[drv.command_qos])
        if self.gate is not None:
            for kind, topic, callback, participant in (
                (Header, ACTOR_TICK_TOPIC, self._on_actor_tick, ACTOR),
                (ArmState, "arm/state", self._on_arm_state, BRIDGE),
                (Intervention, "intervention", self._on_intervention, TELEOP),
            ):
                events = SubscriptionEventCallbacks(liveliness=functools.partial(self._on_liveliness, participant))
                self.create_subscription(kind, topic, callback, HEARTBEAT, event_callbacks=events)
        self.create_service(Trigger, "reset_scene", self._on_reset_scene)
        if self.human is not None:  # it watches an episode from its scene reset to its result (not the arm's reset)
            self.create_subscription(EpisodeResult, "episode_result", self._on_episode_result, STATUS)
        self.create_service(SetBool, "expert/enable", self._on_expert_enable)
        self.get_logger().info(
            f"sim cell: task {self.task.name}, robot {self.robot.name} ({self.robot.arm}), seed {self.seed}, "
            f"expert {p['expert']}, cameras {[c[0] for c in self.cameras]}, "
            f"{'sim time x' + str(self.rtf) if self.publish_clock else 'real time'}"
            f"{', lockstep with the actor and arm bridge' if self.gate is not None else ''}"
        )

    def _declare_parameters(self) -> dict[str, Any]:
        def number(lo: float, hi: float) -> list[FloatingPointRange]:
            return [FloatingPointRange(from_value=lo, to_value=hi, step=0.0)]

        def integer(lo: int, hi: int) -> list[IntegerRange]:
            return [IntegerRange(from_value=lo, to_value=hi, step=1)]

        specs: list[tuple[str, Any, ParameterDescriptor]] = [
            ("task", "peg_insertion", ParameterDescriptor(description="task config name (config/tasks)")),
            ("robot", "sim", ParameterDescriptor(description="robot config name (config/robots, backend sim)")),
            ("seed", 0, ParameterDescriptor(description="seed of the scene randomization",
                                            integer_range=integer(0, 2**31 - 1))),
            ("real_time_factor", 1.0, ParameterDescriptor(description="sim seconds per wall second",
                                                          floating_point_range=number(0.01, 100.0))),
            ("publish_clock", False, ParameterDescriptor(description="publish /clock and stamp with sim time")),
            ("state_rate_hz", 100.0, ParameterDescriptor(description="rate of pose, wrench and joint states (sim time)",
                                                         floating_point_range=number(1.0, 1000.0))),
            ("cameras", True, ParameterDescriptor(description="render and publish the cameras (false: state only)")),
            ("lockstep", False, ParameterDescriptor(
                description="with publish_clock: never advance /clock past what the actor and arm bridge consumed")),
            ("lockstep_lead_ticks", 1, ParameterDescriptor(
                description="lockstep: control ticks physics may run ahead of the actor (0: strict, deterministic)",
                integer_range=integer(0, 10))),
            ("idle_real_time_after_s", 5.0, ParameterDescriptor(
                description="lockstep: once the actor has ticked this long (sim s) without an episode, run at "
                            "real time at most until it commands again (0: keep real_time_factor)",
                floating_point_range=number(0.0, 3600.0))),
            ("lockstep_timeout_s", 3.0, ParameterDescriptor(
                description="wall seconds to wait for a silent participant before going on without it",
                floating_point_range=number(0.05, 60.0))),
            ("restart_at_scene_reset", False, ParameterDescriptor(
                description="a scene reset restarts the whole simulation: the arm at rest at the pose its reset "
                            "brought it to, the gripper open, the objects from (seed, episode); an episode's start "
                            "then never depends on how the arm's reset went (an evaluation replays exactly)")),
            ("expert", "off", ParameterDescriptor(description="scripted expert on the virtual SpaceMouse: "
                                                  "off, always, partial (random periods) or human "
                                                  "(takes over when the policy drifts or stalls)")),
            ("expert_takeover_probability", 0.5, ParameterDescriptor(
                description="partial: probability that the expert takes over an episode",
                floating_point_range=number(0.0, 1.0))),
            ("expert_on_steps", 10, ParameterDescriptor(description="partial: control ticks the expert drives",
                                                        integer_range=integer(1, 100000))),
            ("expert_off_steps", 10, ParameterDescriptor(description="partial: control ticks it then lets go",
                                                         integer_range=integer(0, 100000))),
        ]
        for name, default, descriptor in specs:
            self.declare_parameter(name, default, descriptor)
        return {name: self.get_parameter(name).value for name, _, _ in specs}

    def _joint_names(self) -> tuple[list[str], list[str]]:
        arm = self.robot.arm
        return ([f"{arm}_joint{i + 1}" for i in range(self.cell.dof)],
                [f"{arm}_finger_joint1", f"{arm}_finger_joint2"])

    # -- callbacks (executor thread) -----------------------------------------------------------

    def _on_equilibrium(self, msg: PoseStamped) -> None:
        p, q = msg.pose.position, msg.pose.orientation
        xyz, quat = np.array([p.x, p.y, p.z]), np.array([q.x, q.y, q.z, q.w])
        if np.all(np.isfinite(xyz)) and np.all(np.isfinite(quat)) and np.linalg.norm(quat) > 0.5:
            with self._lock:
                self._equilibrium = (xyz, quat)
            self._tell_gate(lambda gate: gate.on_equilibrium(stamp_ns(msg.header.stamp)))

    def idle(self, stamp: Time) -> bool:
        """Whether the actor has run no episode for ``idle_real_time_after_s`` (lockstep; never without it)."""
        if self.gate is None or not self.idle_after_ns:
            return False
        with self._graph:
            return self.gate.idle_for(stamp_ns(stamp)) >= self.idle_after_ns

    def _on_actor_tick(self, msg: Header) -> None:
        self._tell_gate(lambda gate: gate.on_tick(stamp_ns(msg.stamp), msg.frame_id == TICK_COMMANDED), ACTOR)

    def _on_arm_state(self, msg: ArmState) -> None:
        self._tell_gate(lambda gate: gate.on_bridge(stamp_ns(msg.header.stamp)), BRIDGE)

    def _on_intervention(self, msg: Intervention) -> None:
        self._tell_gate(lambda gate: gate.on_intervention(stamp_ns(msg.header.stamp)), TELEOP)

    def _on_liveliness(self, participant: str, info: Any) -> None:
        """A participant's DDS liveliness changed: once none is alive (killed, or gone), stop waiting for it."""
        if info.alive_count == 0 and info.alive_count_change < 0:
            self.get_logger().warning(f"lockstep: the {participant} is gone (no liveliness for "
                                      f"{HEARTBEAT_LEASE_S:.1f} s); going on without it until it speaks")
            self._tell_gate(lambda gate: gate.give_up(participant))

    def _tell_gate(self, update: Any, participant: str | None = None) -> None:
        """Apply ``update`` to the gate and wake the sim loop; log when ``participant`` starts being waited for
        (until a participant is heard, the clock runs without it)."""
        if self.gate is None:
            return
        with self._graph:
            new = participant is not None and not self.gate.hears(participant)
            update(self.gate)
            if new and self.gate.hears(participant):
                self.get_logger().info(f"lockstep: heard the {participant}; the clock waits for it from now on")
            self._graph.notify_all()

    def _on_gripper(self, msg: Float64) -> None:
        if math.isfinite(msg.data):
            with self._lock:
                self._gripper = float(msg.data)

    def _on_reset_scene(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        with self._lock:
            self.episode += 1
            if self.restart_at_scene_reset:
                if self._equilibrium is not None:  # (the newest target, come since the last physics step)
                    self.cell.set_equilibrium(*self._equilibrium)
                self._equilibrium = self._gripper = None  # (what came before the restart is over)
                self.cell.restart(self.seed, self.episode)
                self._publish_state(self._now())  # (its state replaces the last one, of the same time, at once)
            else:
                self.cell.reset_scene(self.seed, self.episode)
            self.expert.reset()
            if self.human is not None:
                self.human.reset()
            self.mouse.reset()
            self.schedule.start_episode(self.seed, self.episode)
            self._step = 0
            self._in_episode = True
        response.success = True
        response.message = f"scene reset: seed {self.seed}, episode {self.episode}"
        return response

    def _on_episode_result(self, msg: EpisodeResult) -> None:
        with self._lock:
            self._in_episode = False

    def _on_expert_enable(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        with self._lock:
            self.expert_override = bool(request.data)
        response.success = True
        response.message = f"expert {'enabled' if request.data else 'disabled'}"
        return response

    # -- sim loop (main thread) ----------------------------------------------------------------

    def advance(self) -> Time:
        """Apply the newest commands, step the physics one state period and publish the driver state, the
        virtual SpaceMouse (at control ticks) and due camera images; returns the new time's stamp."""
        with self._lock:
            if self._equilibrium is not None:
                self.cell.set_equilibrium(*self._equilibrium)
                self._equilibrium = None
            if self._gripper is not None:
                self.cell.set_gripper(self._gripper)
                self._gripper = None
            self.cell.step(self.period)
            self.sim_ns += self.period_ns
            stamp = self._now()
            self._publish_state(stamp)
            if self.sim_ns >= self._next_control_ns:
                self._next_control_ns += self.control_ns
                self._expert_tick()
        self._publish_cameras(stamp)
        return stamp

    def await_teleop(self, stamp: Time) -> None:
        """Lockstep: hold the clock until the teleop answered this cell's newest SpaceMouse input (the human's
        input then takes effect at this tick, not one or two later)."""
        if self.gate is not None:
            self._await_graph(stamp, self.gate.waiting_for_teleop)

    def await_consumers(self, stamp: Time) -> None:
        """Lockstep: hold the clock at ``stamp`` until the actor, arm bridge and command have caught up."""
        if self.gate is not None:
            self._await_graph(stamp, functools.partial(self.gate.waiting_for, stamp_ns(stamp)))

    def _await_graph(self, stamp: Time, waiting_for: Callable[[], str | None]) -> None:
        """Lockstep: block until ``waiting_for`` (the gate's) names no participant (giving up on silent ones).

        While it waits it re-publishes ``/clock`` and the driver state every 50 ms, as a real driver
        streams its state: both go out best effort, and a lost message must not leave a node waiting
        for a time or a state that has already come.
        """
        with self._graph:
            since, waiting = time.monotonic(), None
            while rclpy.ok():
                now_waiting = waiting_for()
                if now_waiting is None:
                    return
                if now_waiting != waiting:
                    since, waiting = time.monotonic(), now_waiting
                if time.monotonic() - since >= self.lockstep_timeout_s:
                    self.get_logger().warning(
                        f"lockstep: no answer from the {waiting} for {self.lockstep_timeout_s:.1f} s at sim time "
                        f"{stamp_ns(stamp) / 1e9:.2f} s (heard: {self.gate.describe()}); "
                        "going on without it until it speaks"
                    )
                    self.gate.give_up(waiting)
                    continue
                if not self._graph.wait(0.05):  # (short: a shutdown is noticed at once)
                    self._republish(stamp)

    def _republish(self, stamp: Time) -> None:
        with self._lock:
            self._publish_state(stamp)
        if self.clock_pub is not None:
            self.clock_pub.publish(Clock(clock=stamp))

    def _now(self) -> Time:
        return stamp_from_ns(self.sim_ns) if self.publish_clock else self.get_clock().now().to_msg()

    def _publish_state(self, stamp: Time) -> None:
        cell, frame = self.cell, self.robot.base_frame
        xyz, quat = cell.tcp_pose()
        pose = PoseStamped()
        pose.header.stamp, pose.header.frame_id = stamp, frame
        pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = (float(v) for v in xyz)
        o = pose.pose.orientation
        o.x, o.y, o.z, o.w = (float(v) for v in quat)
        self.pose_pub.publish(pose)
        if self.wrench_pub is not None:
            wrench = WrenchStamped()
            wrench.header.stamp, wrench.header.frame_id = stamp, frame
            f, t = wrench.wrench.force, wrench.wrench.torque
            f.x, f.y, f.z, t.x, t.y, t.z = (float(v) for v in cell.wrench())
            self.wrench_pub.publish(wrench)
        joints = JointState(name=self.joint_names, position=cell.joint_positions().tolist(),
                            velocity=cell.joint_velocities().tolist(), effort=cell.joint_efforts().tolist())
        joints.header.stamp = stamp
        self.joints_pub.publish(joints)
        fingers = JointState(name=self.finger_names, position=cell.finger_positions().tolist())
        fingers.header.stamp = stamp
        self.gripper_pub.publish(fingers)
        success = cell.success()
        self.success_pub.publish(Bool(data=success))
        if self.objects_pub.get_subscription_count():  # (only an actor observing object_state asks for it)
            # the verdict rides along so that an observer gets poses and verdict of one step, never a mix
            data = [*cell.object_state().tolist(), float(success)]
            label = object_state_label(self.episode, stamp_ns(stamp))
            layout = MultiArrayLayout(dim=[MultiArrayDimension(label=label, size=len(data), stride=len(data))])
            self.objects_pub.publish(Float32MultiArray(layout=layout, data=data))

    def _expert_tick(self) -> None:
        command = None
        if self.human is not None and self.expert_override is None:
            takeovers = self.human.takeovers
            command = self.human.tick(self.cell) if self._in_episode else None
            if self.human.takeovers > takeovers:
                self.get_logger().info(f"simulated human takes over in scene {self.episode} at tick {self._step} "
                                       f"({self.human.reason})")
        elif self.expert_override if self.expert_override is not None else self.schedule.active(self._step):
            command = self.expert.act(self.cell)
        self._step += 1
        active = command is not None
        if command is not None:
            action, grip = command
            self._publish_mouse(self.mouse.twist(action), self.mouse.buttons(grip))
        elif self._expert_was_active:
            self._publish_mouse([0.0] * 6, self.mouse.buttons(0))  # let go: the device reads zero
        self._expert_was_active = active

    def _publish_mouse(self, axes: list[float], buttons: list[int]) -> None:
        """The virtual SpaceMouse: the twist, then the joy stamped now (teleop stamps its answer with it)."""
        stamp = self._now()
        self._tell_gate(lambda gate: gate.on_mouse(stamp_ns(stamp)))
        twist = Twist()
        twist.linear.x, twist.linear.y, twist.linear.z = axes[:3]
        twist.angular.x, twist.angular.y, twist.angular.z = axes[3:]
        self.twist_pub.publish(twist)
        joy = Joy(axes=[float(a) for a in axes], buttons=buttons)
        joy.header.stamp = stamp
        self.joy_pub.publish(joy)

    def _publish_cameras(self, stamp: Time) -> None:
        for i, (name, cam, image_pub, info_pub, due) in enumerate(self.cameras):
            if self.sim_ns < due:
                continue
            self.cameras[i] = (name, cam, image_pub, info_pub, due + round(NS_PER_S / cam.rate_hz))
            height, width = cam.source_size
            with self._lock:
                pixels = self.cell.render(name, height, width)
            frame = f"{name}_color_optical_frame"
            pixels = encode(pixels, cam.encoding)
            channels = 1 if pixels.ndim == 2 else 3
            image = Image(height=height, width=width, encoding=cam.encoding, is_bigendian=0, step=channels * width)
            image.header.stamp, image.header.frame_id = stamp, frame
            image.data = pixels.tobytes()
            image_pub.publish(image)
            info_pub.publish(self._camera_info(name, height, width, stamp, frame))

    def _camera_info(self, name: str, height: int, width: int, stamp: Time, frame: str) -> CameraInfo:
        fovy = math.radians(float(self.cell.model.camera(name).fovy[0]))
        f = 0.5 * height / math.tan(0.5 * fovy)
        cx, cy = (width - 1) / 2, (height - 1) / 2
        info = CameraInfo(height=height, width=width, distortion_model="plumb_bob", d=[0.0] * 5)
        info.k = [f, 0.0, cx, 0.0, f, cy, 0.0, 0.0, 1.0]
        info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        info.p = [f, 0.0, cx, 0.0, 0.0, f, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
        info.header.stamp, info.header.frame_id = stamp, frame
        return info


def run(cells: list[SimCellNode]) -> None:
    """Step every cell one state period in turn and publish ``/clock`` (the first cell's publisher, shared by
    all), held in lockstep until each cell's graph has consumed it; paced to ``real_time_factor`` (to real
    time at most while every cell's actor is idle: see ``idle_real_time_after_s``)."""
    first = cells[0]
    for cell in cells[1:]:
        cell.clock_pub = first.clock_pub  # (while one waits for its graph, it re-publishes the one clock)
    next_wall = time.monotonic()
    print("sim_cell ready", flush=True)
    while rclpy.ok():
        stamps = [cell.advance() for cell in cells]
        for cell, stamp in zip(cells, stamps, strict=True):
            cell.await_teleop(stamp)
        if first.clock_pub is not None:
            first.clock_pub.publish(Clock(clock=stamps[0]))
        for cell, stamp in zip(cells, stamps, strict=True):
            cell.await_consumers(stamp)
        idle = first.rtf > 1.0 and all(cell.idle(stamp) for cell, stamp in zip(cells, stamps, strict=True))
        rtf = 1.0 if idle else first.rtf
        next_wall = max(next_wall + first.period / rtf, time.monotonic() - first.period / rtf)
        lag = next_wall - time.monotonic()
        if lag > 0:
            time.sleep(lag)


def make_cells() -> list[SimCellNode]:
    """The cell nodes the process's parameters ask for: one (in the process's namespace), or one per entry of
    ``cells`` (namespaces) with ``cell_robots`` (robot configs) and seeds ``seed + i``, only the first owning
    ``/clock``."""
    probe = Node("sim_cell")
    described = {"cells": "namespaces of the cells this process runs under one clock (empty: one cell, this node)",
                 "cell_robots": "robot config of each of cells",
                 "cell_tasks": "task config of each of cells (empty: task for every one)"}
    for name, text in described.items():
        probe.declare_parameter(name, [""], ParameterDescriptor(description=text))
    names = [n for n in probe.get_parameter("cells").value if n]
    robots = [r for r in probe.get_parameter("cell_robots").value if r]
    tasks = [t for t in probe.get_parameter("cell_tasks").value if t]
    probe.declare_parameter("seed", 0)
    seed = int(probe.get_parameter("seed").value)
    probe.destroy_node()
    if not names:
        return [SimCellNode()]
    if len(robots) != len(names) or len(tasks) not in (0, len(names)):
        raise ValueError(f"sim_cell: cells {names}, cell_robots {robots} and cell_tasks {tasks} (if given) must have "
                         "one entry each")
    cells = [SimCellNode(ns, (Parameter("robot", value=robot), Parameter("seed", value=seed + i),
                              *([Parameter("task", value=tasks[i])] if tasks else [])), i == 0)
             for i, (ns, robot) in enumerate(zip(names, robots, strict=True))]
    periods = {cell.period for cell in cells}
    if len(periods) > 1:
        raise ValueError(f"sim_cell: cells under one clock need one state period, got {sorted(periods)} s")
    return cells


def _spin(executor: SingleThreadedExecutor) -> None:
    try:
        executor.spin()
    except ExternalShutdownException:
        pass
    except RCLError:
        if rclpy.ok():  # not a shutdown racing the executor
            raise


def main(args: list[str] | None = None) -> None:
    """Entry point of the ``sim_cell`` executable."""
    dump_stacks_on_request()
    init("sim_cell", args)
    cells = make_cells()
    executor = SingleThreadedExecutor()
    for cell in cells:
        executor.add_node(cell)
    spinner = threading.Thread(target=_spin, args=(executor,), daemon=True)
    spinner.start()
    try:
        run(cells)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (InvalidHandle, RCLError):
        if rclpy.ok():  # not a shutdown racing the sim loop's publishers: a real error
            raise
    finally:
        executor.shutdown()
        for cell in cells:
            cell.cell.close()
            cell.destroy_node()
        rclpy.try_shutdown()
    leave()


if __name__ == "__main__":
    main()
