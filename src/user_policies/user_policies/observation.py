"""Observation assembly (pure): arm sample + camera frames → the policy's observation dict.

The state vector concatenates the task's ``observation.state`` keys in the order the task lists
them. Each key has a fixed size (:data:`STATE_KEYS`) and a scale that puts the resolution the task
needs in the network's range (a millimetre-clearance task sets ``position_scale: 100``):

| key | size | content |
| --- | --- | --- |
| ``tcp_pose`` | 6 | position (m × ``position_scale``) and rotation vector (rad), relative to the target if set |
| ``tcp_vel`` | 6 | linear (m/s, ×10) and angular (rad/s) velocity |
| ``gripper`` | 1 | opening as a fraction of the maximum width, mapped to [-1, 1] |
| ``wrench`` | 6 | force (N, ÷20) and torque (N·m, ÷2) at the TCP |
| ``last_action`` | action dims | the previous control tick's executed action (zero at the first) |
| ``object_state`` | per task | **sim only, privileged**: object poses from the sim's ground truth |
| ``embodiment`` | per task | one-hot of the robot's embodiment among the task's ``observation.embodiments`` |
| ``task`` | per run | one-hot of the robot's task among ``observation.tasks`` (a multi-task run's ``--tasks``) |
| ``instruction`` | 64 | the task's ``instruction`` as UTF-8 bytes (0-255, zero-padded): a language policy's tokens |
| ``present`` | 2 + cameras | what this robot has (1/0): gripper, wrench, then each of the task's cameras |

``object_state`` (:meth:`user_robot.sim.tasks.SimTask.object_state`) stands in for cameras in
CPU-scale runs where a policy cannot yet learn from images; a real robot config refuses it. In a
multi-task run each task's is zero-padded to the longest of the run's tasks (one interface).
``last_action`` makes the state Markov again when actions reach the arm a tick or two after the
observation they were decided on (the graph's path, a real cell's): the action still in flight.
``embodiment`` lets one policy trained by several kinds of arm (``--robots sim,sim_arx``) act by
kind: state and action are the task's, in the TCP frame, whatever the arm, so the arm's joint count
never shows. What an embodiment lacks of the task's interface is padded and masked: the task names
the union (its state keys, action dims, cameras); a robot config without a gripper (``gripper: none``),
without force sensing (``driver.external_wrench: ""``) or without one of the task's cameras gets zeros
there (a black frame for a camera) and says so in ``present``, which the task must then observe (a
missing camera is an error otherwise). The gripper action dimension of a robot without one is
carried and not executed (the arm bridge sends no gripper command), so it is one action set for all.
``task`` lets one policy learn several tasks (``--tasks peg_insertion,charger_plugging``): the run
adds the key to every task's state (:func:`with_task_identity`); the tasks must share one state,
action and camera interface (:func:`check_shared_interface`), and position is relative to each
task's own target.

Rotations are rotation vectors of the pose relative to the target (or to the identity), which
are continuous where quaternions flip sign and Euler angles wrap.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from user_robot.camera_core import MASK_KEY, absent_cameras
from user_robot.pose_math import quat_conjugate, quat_from_rpy, quat_multiply, rotvec_from_quat
from user_robot.robot_config import RobotConfig
from user_robot.task_config import STATE_KEYS, TaskConfig

PRIVILEGED_KEY = "object_state"
"""The sim-only state key: ground truth no real cell has."""


@dataclasses.dataclass(frozen=True)
class ArmSample:
    """One arm state as the arm bridge reports it (base frame, SI units)."""

    xyz: np.ndarray
    quat: np.ndarray  # x, y, z, w
    linear_velocity: np.ndarray
    angular_velocity: np.ndarray
    force: np.ndarray
    torque: np.ndarray
    gripper_width: float
    stamp: float  # seconds, ROS time


def state_dim(task: TaskConfig) -> int:
    """Length of the state vector for ``task``."""
    return sum(_key_size(task, key) for key in task.observation.state)


def _key_size(task: TaskConfig, key: str) -> int:
    if key == "last_action":
        return task.action.dims
    if key == "embodiment":
        return len(task.observation.embodiments)
    if key == "task":
        return len(task.observation.tasks)
    if key == MASK_KEY:
        return 2 + len(task.observation.cameras)
    return object_state_dim(task) if key == PRIVILEGED_KEY else STATE_KEYS[key]


def state_index(task: TaskConfig, key: str) -> int | None:
    """Where ``key``'s values start in ``task``'s state vector (None: the task does not observe it)."""
    keys = list(task.observation.state)
    return sum(_key_size(task, k) for k in keys[: keys.index(key)]) if key in keys else None


def state_slice(task: TaskConfig, key: str) -> slice | None:
    """``key``'s values in ``task``'s state vector (None: the task does not observe it)."""
    start = state_index(task, key)
    return None if start is None else slice(start, start + _key_size(task, key))


def object_state_dim(task: TaskConfig) -> int:
    """Length of the sim-only ``object_state`` key for ``task``: its scene's, or in a multi-task run
    (``observation.tasks``) the longest of the run's tasks' (each pads its own with zeros: one interface)."""
    from user_robot.sim.tasks import make_task
    from user_robot.task_config import load_task

    others = (load_task(name) for name in task.observation.tasks if name != task.name)
    return max(make_task(t).object_state_size() for t in (task, *others))


def uses_privileged_state(task: TaskConfig) -> bool:
    """Whether ``task`` observes the sim-only privileged ``object_state``."""
    return PRIVILEGED_KEY in task.observation.state


def present_mask(task: TaskConfig, robot: RobotConfig) -> np.ndarray:
    """What ``robot`` provides of ``task``'s inputs: gripper, wrench, then each task camera (1.0 or 0.0)."""
    absent = absent_cameras(task, robot)
    return np.array([robot.gripper != "none", bool(robot.driver.external_wrench),
                     *(name not in absent for name in task.observation.cameras)], dtype=np.float64)


INSTRUCTION_BYTES = STATE_KEYS["instruction"]
"""Length of the ``instruction`` key: the longest instruction, in UTF-8 bytes."""


def instruction_bytes(task: TaskConfig) -> np.ndarray:
    """``task.instruction`` as the ``instruction`` key's values: its UTF-8 bytes, zero-padded (``ValueError`` for
    none or one too long)."""
    data = task.instruction.encode("utf-8")
    if not data or len(data) > INSTRUCTION_BYTES or 0 in data:
        raise ValueError(f"task {task.name}: observation.state has 'instruction', so the task needs an instruction "
                         f"of 1 to {INSTRUCTION_BYTES} UTF-8 bytes (has {len(data)}): set `instruction:` in "
                         f"config/tasks/{task.name}.yaml")
    return np.pad(np.frombuffer(data, dtype=np.uint8), (0, INSTRUCTION_BYTES - len(data))).astype(np.float64)


def instruction_slice(task: TaskConfig) -> tuple[int, int]:
    """(start, length) of the ``instruction`` key in ``task``'s state vector ((0, 0): not observed)."""
    start = state_index(task, "instruction")
    return (0, 0) if start is None else (start, INSTRUCTION_BYTES)


def with_task_identity(task: TaskConfig, tasks: Sequence[str]) -> TaskConfig:
    """``task`` as one policy of several tasks sees it: its state gains the key ``task``, a one-hot of its name
    among ``tasks`` (unchanged for fewer than two tasks, or when its YAML lists them already)."""
    tasks = tuple(tasks)
    if len(tasks) < 2 or task.observation.tasks == tasks:
        return task
    if task.name not in tasks:
        raise ValueError(f"task {task.name} is not one of the run's tasks {list(tasks)}")
    if task.observation.tasks:
        raise ValueError(f"task {task.name}: observation.tasks {list(task.observation.tasks)} is not the run's "
                         f"{list(tasks)}")
    observation = dataclasses.replace(task.observation, state=(*task.observation.state, "task"), tasks=tasks)
    return dataclasses.replace(task, observation=observation)


def policy_sizes(task: TaskConfig) -> tuple[int, int]:
    """The state size and action dims of a policy of ``task`` (with its task identity, if multi-task)."""
    return state_dim(task), task.action.dims


def check_shared_interface(tasks: Sequence[TaskConfig]) -> None:
    """``ValueError`` naming the first difference that keeps ``tasks`` (with their identity) from sharing one
    policy: state keys and size, action dims, cameras and image size."""
    first = tasks[0]
    for other in tasks[1:]:
        for what, get in (("observation.state", lambda t: list(t.observation.state)), ("state size", state_dim),
                          ("action.dims", lambda t: t.action.dims),
                          ("observation.cameras", lambda t: list(t.observation.cameras)),
                          ("observation.image_size", lambda t: list(t.observation.image_size))):
            if get(first) != get(other):
                raise ValueError(f"tasks {first.name} and {other.name} cannot share one policy: {what} "
                                 f"{get(first)} vs {get(other)} (config/tasks/{other.name}.yaml); the tasks of one "
                                 f"multi-task run need one state, action and camera interface")


def _one_hot(names: tuple[str, ...], name: str, what: str, task: TaskConfig) -> np.ndarray:
    """``name``'s one-hot among ``names`` (empty for none); ``ValueError`` naming ``what`` when it is not there."""
    out = np.zeros(len(names))
    if names:
        if name not in names:
            raise ValueError(f"task {task.name}: observation.{what}s {list(names)} has no {name!r}")
        out[names.index(name)] = 1.0
    return out


def check_state_keys(task: TaskConfig, robot: RobotConfig) -> None:
    """``ValueError`` when a real robot would be given the sim-only ``object_state`` key, or when the task's
    ``embodiment`` key does not know the robot's embodiment."""
    embodiments = task.observation.embodiments
    if embodiments and robot.embodiment not in embodiments:
        raise ValueError(f"task {task.name}: observation.embodiments {list(embodiments)} has no {robot.embodiment!r} "
                         f"(robot {robot.name!r}): add it (the policy's state then grows by one)")
    if uses_privileged_state(task) and robot.backend != "sim":
        raise ValueError(
            f"task {task.name}: observation.state key '{PRIVILEGED_KEY}' is the simulator's ground truth and "
            f"robot {robot.name!r} is a real cell ({robot.backend}): remove it, or observe cameras (--obs pixels)"
        )


class StateEncoder:
    """Turns :class:`ArmSample` into the task's float32 state vector."""

    def __init__(
        self, task: TaskConfig, gripper_max_width: float, embodiment: str = "", present: np.ndarray | None = None
    ) -> None:
        """``present``: :func:`present_mask` of the robot (default: it has everything)."""
        self.keys = task.observation.state
        self.relative = task.observation.relative_to_target
        self.origin = np.asarray(task.target.xyz, dtype=np.float64) if self.relative else np.zeros(3)
        self.origin_quat_inv = (
            quat_conjugate(quat_from_rpy(task.target.rpy)) if self.relative else np.array([0, 0, 0, 1.0])
        )
        self.position_scale = task.observation.position_scale
        self.gripper_max_width = gripper_max_width
        self.action_dims = task.action.dims
        self.dim = state_dim(task)
        self.object_dims = object_state_dim(task) if uses_privileged_state(task) else 0
        self.embodiment = _one_hot(task.observation.embodiments, embodiment, "embodiment", task)
        self.task = _one_hot(task.observation.tasks, task.name, "task", task)
        self.instruction = instruction_bytes(task) if "instruction" in self.keys else None
        self.present = np.ones(_key_size(task, MASK_KEY)) if present is None else np.asarray(present, float)

    def encode(
        self, arm: ArmSample, objects: np.ndarray | None = None, last_action: np.ndarray | None = None
    ) -> np.ndarray:
        """The state vector (float32) of one arm sample (and, for ``object_state``, the sim's object state;
        for ``last_action``, the action executed at the previous tick, None at an episode's first)."""
        parts: list[np.ndarray] = []
        for key in self.keys:
            if key == "tcp_pose":
                rot = rotvec_from_quat(quat_multiply(self.origin_quat_inv, arm.quat))
                parts += [(arm.xyz - self.origin) * self.position_scale, rot]
            elif key == "tcp_vel":
                parts += [arm.linear_velocity * 10.0, arm.angular_velocity]
            elif key == "gripper":  # (0 without a gripper)
                parts.append(np.array([2.0 * arm.gripper_width / self.gripper_max_width - 1.0]) * self.present[0])
            elif key == "last_action":
                parts.append(np.zeros(self.action_dims) if last_action is None else np.asarray(last_action, np.float64))
            elif key == PRIVILEGED_KEY:
                if objects is None:
                    raise ValueError("observation.state has the sim-only 'object_state' key but no object state came")
                objects = np.asarray(objects, dtype=np.float64)
                if len(objects) > self.object_dims:
                    raise ValueError(f"object state of {len(objects)} values, the state has room for "
                                     f"{self.object_dims}")
                parts.append(np.pad(objects, (0, self.object_dims - len(objects))))
            elif key == "embodiment":
                parts.append(self.embodiment)
            elif key == "task":
                parts.append(self.task)
            elif key == "instruction":
                parts.append(self.instruction)
            elif key == MASK_KEY:
                parts.append(self.present)
            else:  # wrench (0 without force sensing)
                parts += [arm.force / 20.0 * self.present[1], arm.torque / 2.0 * self.present[1]]
        return np.concatenate(parts).astype(np.float32)
