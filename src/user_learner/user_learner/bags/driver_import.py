"""Import a plain ``ros2 bag record`` of driver topics (MCAP or sqlite3) as demo episodes.

The driver topics are the ones the robot config names (franka_ros2 poses and wrench,
realsense2_camera images, spacenav twist and joy), resolved under ``namespace``. Import:

1. **Timeline**: the reference camera's header stamps, thinned to ``rate_hz`` (the task's control
   rate by default).
2. **Alignment**: for every stamp, each stream's latest message stamped at or before it; a stream
   older than ``freshness_s`` makes the step stale. A stale step cuts the episode there (the steps
   before and after it cannot form transitions) and is counted.
3. **Episodes** by the split rule: ``time_gap`` (a gap in the timeline longer than ``gap_s``, e.g.
   ``ros2 bag record`` paused with the space bar) or ``joy_button`` (presses of a SpaceMouse
   button start and end episodes; what lies between, such as the reset, is skipped).
4. **Actions**: ``commanded_pose`` recovers each step's action from the equilibrium pose
   commanded by the next step, relative to the measured pose the command was applied to
   (``action_toward``, the inverse of the arm bridge's mapping, which applies an action to the
   measured pose on arrival; ``command_base`` says which pose that is); ``measured_pose`` from the
   next measured pose (kinesthetic demos); ``spacemouse`` replays the twist and joy messages
   through the teleop mapping. A 7-dim task's gripper channel comes from the SpaceMouse buttons.
5. **State and images** exactly as the actor builds them (``StateEncoder``, camera crop + resize; what the
   robot lacks, zeros and a black frame, flagged in the ``present`` state key).

Success (reward 1 on the last action, ``terminated``): ``all`` (every demo succeeded),
``pose_region`` (the final pose lies within the task's success tolerance) or ``none``.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
from rosbags.highlevel import AnyReader

from user_learner.bags.images import fields, stamp_ns
from user_learner.bags.transition_bag import Episode, Step, TransitionBagWriter
from user_learner.bags.typestore import typestore
from user_learner.graph import resolve_topic
from user_learner.progress import progress as show_progress
from user_policies.observation import ArmSample, StateEncoder, present_mask
from user_robot.action_mapping import action_toward
from user_robot.arm_state_core import VelocityEstimator, gripper_width
from user_robot.camera_core import check_cameras, observation, to_array
from user_robot.config_loader import load
from user_robot.contracts import END_ABORTED, END_SUCCESS, REWARD_HUMAN, REWARD_POSE_REGION
from user_robot.robot_config import RobotConfig
from user_robot.task_config import TaskConfig
from user_robot.teleop_core import TeleopCore

NS = 1_000_000_000


@dataclasses.dataclass(frozen=True)
class SplitRule:
    """How a recording is cut into episodes."""

    rule: Literal["time_gap", "joy_button"] = "time_gap"
    gap_s: float = 1.0  # time_gap: a longer gap between timeline stamps starts a new episode
    button: int = 0  # joy_button: presses of this button start and end episodes
    min_steps: int = 5  # shorter episodes (in actions) are dropped


@dataclasses.dataclass(frozen=True)
class BagImportConfig:
    """Schema of ``config/bag_import/<name>.yaml``."""

    name: str
    namespace: str = ""  # robot namespace the driver topics were recorded under ("" = global)
    reference: str = "wrist"  # camera (robot config name) whose stamps form the timeline
    rate_hz: float = 0.0  # timeline rate; 0 = the task's control_rate_hz
    freshness_s: float = 0.1  # a stream's newest sample may be this much older than the step
    action_source: Literal["commanded_pose", "measured_pose", "spacemouse"] = "commanded_pose"
    # commanded_pose: the measured pose a command was applied to, the one the bag ``received`` last before
    # the commanded pose (USER's arm bridge: applies a command on arrival, stamps it with the actor's tick)
    # or the newest ``stamped`` before it (a commander that stamps a pose when it computes it)
    command_base: Literal["received", "stamped"] = "received"
    split: SplitRule = SplitRule()
    success: Literal["all", "pose_region", "none"] = "all"
    robot_id: str = "robot_0"


def load_import_config(name: str) -> BagImportConfig:
    """Load and validate ``config/bag_import/<name>.yaml``."""
    return load("bag_import", name, BagImportConfig)


class BagImportError(ValueError):
    """The bag cannot be imported (missing topics, nothing usable)."""


@dataclasses.dataclass
class ImportResult:
    """The imported episodes and what was left out."""

    episodes: list[Episode]
    timeline_steps: int = 0
    stale_steps: dict[str, int] = dataclasses.field(default_factory=dict)  # stream -> steps it made stale
    short_episodes: int = 0  # dropped for having fewer than split.min_steps actions


@dataclasses.dataclass
class _Stream:
    """One topic's samples sorted by header stamp."""

    topic: str
    msgtype: str
    required: bool
    what: str
    stamps: list[int] = dataclasses.field(default_factory=list)
    values: list[Any] = dataclasses.field(default_factory=list)
    order: list[int] = dataclasses.field(default_factory=list)  # arrival index of each sorted sample
    received: list[int] = dataclasses.field(default_factory=list)  # the bag's receive time of each sorted sample
    first: list[int] = dataclasses.field(default_factory=list)  # commanded poses: start of each run of equal poses

    def latest(self, t: int) -> int | None:
        """Index of the newest sample stamped at or before ``t``."""
        i = bisect.bisect_right(self.stamps, t) - 1
        return i if i >= 0 else None

    def last_received_before(self, t: int) -> int | None:
        """Index of the sample received last before the bag's receive time ``t`` (what a subscriber held then)."""
        k = bisect.bisect_left(self._arrivals, t) - 1
        return self._by_arrival[k] if k >= 0 else None

    @functools.cached_property
    def _arrivals(self) -> list[int]:
        return [self.received[i] for i in self._by_arrival]

    @functools.cached_property
    def _by_arrival(self) -> list[int]:
        return np.argsort(np.asarray(self.received, dtype=np.int64), kind="stable").tolist()


def import_driver_bag(
    bag: str | Path, task: TaskConfig, robot: RobotConfig, cfg: BagImportConfig, progress: bool = False
) -> ImportResult:
    """Read a driver-topic bag and return its demo episodes (see the module docstring)."""
    bag = Path(bag)
    streams = _streams(task, robot, cfg)
    _read(bag, streams, progress)
    if "equilibrium_pose" in streams:
        streams["equilibrium_pose"].first = _first_appearances(streams["equilibrium_pose"].values)
    timeline = _thin(streams[f"camera:{cfg.reference}"].stamps, cfg.rate_hz or task.control_rate_hz)
    result = ImportResult([], timeline_steps=len(timeline))
    pieces = []
    for segment in _split(timeline, streams.get("joy"), cfg.split):
        for piece in _fresh_pieces(segment, streams, cfg.freshness_s, result.stale_steps):
            if len(piece) - 1 < cfg.split.min_steps:
                result.short_episodes += 1
            else:
                pieces.append(piece)
    _read_images(bag, streams, [t for piece in pieces for t in piece], task, robot)
    encoder = StateEncoder(task, robot.gripper_max_width, robot.embodiment, present_mask(task, robot))
    for i, piece in enumerate(pieces):
        episode_id = f"{cfg.robot_id}-{bag.name}-{i:04d}"
        result.episodes.append(_episode(piece, streams, task, robot, cfg, encoder, episode_id))
    return result


def import_to_recording(
    bag: str | Path,
    out: str | Path,
    task: TaskConfig,
    robot: RobotConfig,
    cfg: BagImportConfig,
    storage: Literal["mcap", "sqlite3"] = "mcap",
    progress: bool = False,
) -> ImportResult:
    """:func:`import_driver_bag`, then write the episodes as a recording at ``out``."""
    result = import_driver_bag(bag, task, robot, cfg, progress)
    if not result.episodes:
        raise BagImportError(
            f"{bag}: no episodes ({result.timeline_steps} timeline steps, stale: {result.stale_steps or 'none'}, "
            f"too short: {result.short_episodes})"
        )
    with TransitionBagWriter(out, storage) as writer:
        for episode in result.episodes:
            writer.write_episode(episode, mode="demo")
    return result


def _streams(task: TaskConfig, robot: RobotConfig, cfg: BagImportConfig) -> dict[str, _Stream]:
    ns, d, t = cfg.namespace, robot.driver, robot.teleop
    if cfg.reference not in task.observation.cameras:
        raise BagImportError(f"reference camera {cfg.reference!r} is not one of the task's cameras "
                             f"{list(task.observation.cameras)}")
    if cfg.reference not in robot.cameras:
        raise BagImportError(f"reference camera {cfg.reference!r} is not configured for robot {robot.name!r}")
    try:  # a camera the robot lacks is a black frame, when the task observes the ``present`` mask
        check_cameras(task, robot)
    except ValueError as exc:
        raise BagImportError(str(exc)) from exc
    spacemouse = cfg.action_source == "spacemouse"
    needs_joy = spacemouse or cfg.split.rule == "joy_button" or task.action.dims == 7
    specs = {
        "current_pose": (d.current_pose, "geometry_msgs/msg/PoseStamped", True, "current pose"),
        "wrench": (d.external_wrench, "geometry_msgs/msg/WrenchStamped", "wrench" in task.observation.state
                   and bool(d.external_wrench), "external wrench"),
        "gripper": (d.gripper_joint_states, "sensor_msgs/msg/JointState", "gripper" in task.observation.state
                    and robot.gripper != "none", "gripper joint states"),
        "equilibrium_pose": (d.equilibrium_pose, "geometry_msgs/msg/PoseStamped",
                             cfg.action_source == "commanded_pose", "commanded pose"),
        "twist": (t.twist_topic, "geometry_msgs/msg/Twist", spacemouse, "SpaceMouse twist"),
        "joy": (t.joy_topic, "sensor_msgs/msg/Joy", needs_joy, "SpaceMouse buttons"),
    }
    for name in task.observation.cameras:
        if name in robot.cameras:
            specs[f"camera:{name}"] = (robot.cameras[name].topic, "sensor_msgs/msg/Image", True, f"{name} camera")
    return {
        key: _Stream(resolve_topic(topic, ns), msgtype, required, what)
        for key, (topic, msgtype, required, what) in specs.items()
        if required
    }


def _read(bag: Path, streams: dict[str, _Stream], progress: bool) -> None:
    """Fill every stream from the bag (camera stamps only); raises :class:`BagImportError` naming missing topics."""
    with AnyReader([bag], default_typestore=typestore()) as reader:
        missing = [s for s in streams.values() if s.topic not in reader.topics]
        if missing:
            names = ", ".join(f"{s.topic} ({s.what}, {s.msgtype})" for s in missing)
            raise BagImportError(f"{bag}: missing topic(s) {names}; the bag has: {', '.join(sorted(reader.topics))}")
        by_topic = {s.topic: (key, s) for key, s in streams.items()}
        conns = [c for c in reader.connections if c.topic in by_topic]
        total = sum(c.msgcount for c in conns)
        with show_progress(f"reading {bag.name}", total, "messages", enabled=progress) as report:
            for conn, log_time, raw in reader.messages(connections=conns):
                report.advance()
                key, stream = by_topic[conn.topic]
                if key.startswith("camera:"):  # images are decoded later, only where the timeline needs them
                    stream.stamps.append(_cdr_header_stamp(raw))
                    stream.values.append(None)
                    stream.received.append(log_time)
                    continue
                msg = reader.deserialize(raw, conn.msgtype)
                stream.stamps.append(stamp_ns(msg.header) if hasattr(msg, "header") else log_time)  # Twist: no header
                stream.values.append(_DECODERS[key](msg))
                stream.received.append(log_time)
    for stream in streams.values():
        stream.order = np.argsort(np.asarray(stream.stamps, dtype=np.int64), kind="stable").tolist()
        stream.stamps = [stream.stamps[i] for i in stream.order]
        stream.values = [stream.values[i] for i in stream.order]
        stream.received = [stream.received[i] for i in stream.order]


def _read_images(
    bag: Path, streams: dict[str, _Stream], stamps: list[int], task: TaskConfig, robot: RobotConfig
) -> None:
    """Decode, crop and resize the camera frames aligned to ``stamps`` (second pass over the camera topics)."""
    wanted: dict[str, dict[int, int]] = {}  # topic -> arrival index -> sorted index
    for key, stream in streams.items():
        if key.startswith("camera:"):
            needed = {stream.latest(t) for t in stamps} - {None}
            wanted[stream.topic] = {stream.order[i]: i for i in needed}
    cameras = {s.topic: (key[len("camera:"):], s) for key, s in streams.items() if key.startswith("camera:")}
    seen = dict.fromkeys(cameras, -1)
    with AnyReader([bag], default_typestore=typestore()) as reader:
        conns = [c for c in reader.connections if c.topic in cameras]
        for conn, _, raw in reader.messages(connections=conns):
            seen[conn.topic] += 1
            index = wanted[conn.topic].get(seen[conn.topic])
            if index is None:
                continue
            name, stream = cameras[conn.topic]
            msg = reader.deserialize(raw, conn.msgtype)
            crop, size = robot.cameras[name].crop, task.observation.image_size
            stream.values[index] = observation(to_array(fields(msg)), msg.encoding, crop, size)


def _cdr_header_stamp(raw: bytes) -> int:
    """The header stamp of a CDR-serialized message that starts with a ``std_msgs/Header`` (no full decode)."""
    sec, nanosec = struct.unpack_from("<iI" if raw[1] == 1 else ">iI", raw, 4)
    return sec * NS + nanosec


def _pose(msg: Any) -> tuple[np.ndarray, np.ndarray]:
    p, q = msg.pose.position, msg.pose.orientation
    return np.array([p.x, p.y, p.z]), np.array([q.x, q.y, q.z, q.w])


def _wrench(msg: Any) -> np.ndarray:
    f, m = msg.wrench.force, msg.wrench.torque
    return np.array([f.x, f.y, f.z, m.x, m.y, m.z])


def _twist(msg: Any) -> list[float]:
    return [msg.linear.x, msg.linear.y, msg.linear.z, msg.angular.x, msg.angular.y, msg.angular.z]


_DECODERS: dict[str, Callable[[Any], Any]] = {
    "current_pose": _pose,
    "equilibrium_pose": _pose,
    "wrench": _wrench,
    "gripper": lambda msg: gripper_width(msg.position),
    "twist": _twist,
    "joy": lambda msg: [int(b) for b in msg.buttons],
}


def _thin(stamps: list[int], rate_hz: float) -> list[int]:
    """Keep stamps at most ``rate_hz`` apart (a quarter period of slack absorbs jitter)."""
    min_gap = 0.75 * NS / rate_hz
    out: list[int] = []
    for t in stamps:
        if not out or t - out[-1] >= min_gap:
            out.append(t)
    return out


def _split(timeline: list[int], joy: _Stream | None, rule: SplitRule) -> list[list[int]]:
    if rule.rule == "time_gap":
        segments: list[list[int]] = []
        for t in timeline:
            if not segments or t - segments[-1][-1] > rule.gap_s * NS:
                segments.append([])
            segments[-1].append(t)
        return segments
    if joy is None:
        raise BagImportError("split rule joy_button needs the SpaceMouse joy topic")
    presses = [
        s for i, (s, b) in enumerate(zip(joy.stamps, joy.values, strict=True))
        if _pressed(b, rule.button) and (i == 0 or not _pressed(joy.values[i - 1], rule.button))
    ]
    windows = list(zip(presses[0::2], presses[1::2], strict=False))
    return [[t for t in timeline if start <= t <= end] for start, end in windows]


def _pressed(buttons: list[int], index: int) -> bool:
    return index < len(buttons) and bool(buttons[index])


def _fresh_pieces(
    segment: list[int], streams: dict[str, _Stream], freshness_s: float, stale: dict[str, int]
) -> list[list[int]]:
    """Cut ``segment`` at steps where a state or camera stream has no sample within ``freshness_s``."""
    window = int(freshness_s * NS)
    checked = [(k, s) for k, s in streams.items() if k not in ("twist", "joy", "equilibrium_pose")]
    pieces: list[list[int]] = [[]]
    for t in segment:
        old = [k for k, s in checked if (i := s.latest(t)) is None or t - s.stamps[i] > window]
        for k in old:
            stale[k] = stale.get(k, 0) + 1
        if old:
            pieces.append([])
        else:
            pieces[-1].append(t)
    return [p for p in pieces if p]


def _episode(
    stamps: list[int],
    streams: dict[str, _Stream],
    task: TaskConfig,
    robot: RobotConfig,
    cfg: BagImportConfig,
    encoder: StateEncoder,
    episode_id: str,
) -> Episode:
    poses = streams["current_pose"]
    black = np.zeros((*task.observation.image_size, 3), np.uint8)  # for a camera the robot lacks
    velocity = VelocityEstimator()
    teleop = TeleopCore(robot.teleop, task.action.dims)
    # Replay the filters' inputs from a second before the episode (the joy state is the last message before).
    fed = {k: streams[k].latest(stamps[0] - NS) or 0 for k in ("current_pose", "twist", "joy") if k in streams}
    steps: list[Step] = []

    def feed(name: str, until: int, apply: Callable[[int], None]) -> None:
        if name not in fed:
            return
        stream = streams[name]
        while fed[name] < len(stream.stamps) and stream.stamps[fed[name]] <= until:
            apply(fed[name])
            fed[name] += 1

    for k, t in enumerate(stamps):
        feed("current_pose", t, lambda i: velocity.update(poses.stamps[i] / NS, *poses.values[i]))
        feed("twist", t, lambda i: teleop.twist(streams["twist"].values[i], streams["twist"].stamps[i] / NS))
        feed("joy", t, lambda i: teleop.joy(streams["joy"].values[i]))
        xyz, quat = poses.values[poses.latest(t)]
        force_torque = streams["wrench"].values[streams["wrench"].latest(t)] if "wrench" in streams else np.zeros(6)
        width = streams["gripper"].values[streams["gripper"].latest(t)] if "gripper" in streams else 0.0
        arm = ArmSample(xyz, quat, velocity.linear.copy(), velocity.angular.copy(), force_torque[:3],
                        force_torque[3:], width, t / NS)
        images = {n: streams[c].values[streams[c].latest(t)] if (c := f"camera:{n}") in streams else black
                  for n in task.observation.cameras}
        intervention = teleop.tick(t / NS)
        last = k == len(stamps) - 1
        if last:
            action = np.zeros(0, np.float32)
        elif cfg.action_source == "spacemouse":
            action = intervention.action
        else:
            action = _pose_action(streams, cfg, task, t, stamps[k + 1], (xyz, quat))
            if task.action.dims == 7:
                action[6] = intervention.action[6]
        intervened = (cfg.action_source != "spacemouse" or intervention.active) and not last
        state = encoder.encode(arm, None, steps[-1].action if steps else None)
        steps.append(Step(t, k, state, images, action, intervened=intervened,
                          intervention_action=action if intervened else np.zeros(0, np.float32)))
    success = _success(cfg, task, steps, poses)
    final = steps[-1]
    if success:
        final.terminated, final.end_reason = True, END_SUCCESS
        steps[-2].reward = 1.0
    else:
        final.truncated, final.end_reason = True, END_ABORTED
    source = REWARD_POSE_REGION if cfg.success == "pose_region" else REWARD_HUMAN
    for step in steps:
        step.reward_source = source
    return Episode(cfg.robot_id, robot.embodiment, task.name, episode_id, steps, mode="demo")


def _pose_action(
    streams: dict[str, _Stream], cfg: BagImportConfig, task: TaskConfig, t0: int, t1: int, observed: tuple
) -> np.ndarray:
    """The action of the step ``(t0, t1]`` recovered from poses (``commanded_pose`` or ``measured_pose``).

    The arm bridge applies an action to the measured pose it holds when the command arrives, which
    is newer than the command's stamp by the command's latency; so the base is the measured pose the
    bag received last before the newest commanded pose (``command_base: stamped``: the newest stamped
    before it), or the observed pose at ``t0`` if the command did not change during the step.
    Measured-pose demos use the next pose.
    """
    poses = streams["current_pose"]
    if cfg.action_source == "measured_pose":
        goal, base = poses.values[poses.latest(t1)], observed
    else:
        commands = streams["equilibrium_pose"]
        i = commands.latest(t1)
        if i is None:
            return np.zeros(task.action.dims, np.float32)
        first = commands.first[i]
        goal, since = commands.values[i], commands.stamps[first]
        if cfg.command_base == "received":
            j = poses.last_received_before(commands.received[first])
        else:
            j = poses.latest(since - 1)
        base = poses.values[j] if since > t0 and j is not None else observed
    return action_toward(base[0], base[1], goal[0], goal[1], task.action).astype(np.float32)


def _first_appearances(values: list[tuple[np.ndarray, np.ndarray]]) -> list[int]:
    """For each pose, the index of the first of the run of equal poses it belongs to (bridges republish)."""
    first: list[int] = []
    for i, (xyz, quat) in enumerate(values):
        same = i > 0 and np.array_equal(values[i - 1][0], xyz) and np.array_equal(values[i - 1][1], quat)
        first.append(first[-1] if same else i)
    return first


def _success(cfg: BagImportConfig, task: TaskConfig, steps: list[Step], poses: _Stream) -> bool:
    if cfg.success != "pose_region":
        return cfg.success == "all"
    xyz, _ = poses.values[poses.latest(steps[-1].stamp_ns)]
    return bool(np.linalg.norm(xyz - np.asarray(task.target.xyz)) <= task.reward.success_xyz_tolerance)
