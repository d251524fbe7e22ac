"""SimCell: one simulated robot cell (arm + gripper + task scene + cameras), pure Python.

The cell is driven like the real drivers are: an equilibrium pose for the impedance controller
(:meth:`SimCell.set_equilibrium`), a gripper width (:meth:`SimCell.set_gripper`), and time
(:meth:`SimCell.step`). It reports what the drivers report (TCP pose, external wrench, joint
states, gripper width, camera images) plus the ground truth the real cell lacks (success,
privileged object state for the scripted expert).

Grasping is assisted: when both fingers touch a graspable object while the gripper closes, the
object is welded to the hand until the gripper opens again (robust, cheap, deterministic).
"""

from __future__ import annotations

import mujoco
import numpy as np

from user_robot.pose_math import quat_multiply, quat_to_matrix
from user_robot.reset_planner import reset_pose
from user_robot.robot_config import RobotConfig
from user_robot.safety import Pose, Workspace
from user_robot.sim.arms import ARMS
from user_robot.sim.controller import ImpedanceController
from user_robot.sim.gl import make_renderer
from user_robot.sim.scene import build_scene
from user_robot.sim.tasks import SimTask, make_task
from user_robot.task_config import TaskConfig

GRASP_CHECK_EVERY = 5  # physics steps between grasp-assist checks
ROBOT_SIM_DEFAULTS = {
    "physics_dt": 0.002,  # s; the impedance controller runs every physics step (500 Hz of sim time)
    "nullspace_stiffness": 10.0,  # posture spring toward the home configuration (7-DoF arms)
}
"""Keys of a robot config's ``sim:`` section and their defaults."""


def _xyzw(q_wxyz: np.ndarray) -> np.ndarray:
    return np.array([q_wxyz[1], q_wxyz[2], q_wxyz[3], q_wxyz[0]])


def _wxyz(q_xyzw: np.ndarray) -> np.ndarray:
    return np.array([q_xyzw[3], q_xyzw[0], q_xyzw[1], q_xyzw[2]])


class SimCell:
    """A MuJoCo robot cell for one task and one robot config."""

    def __init__(self, task: TaskConfig, robot: RobotConfig) -> None:
        unknown = sorted(set(robot.sim) - set(ROBOT_SIM_DEFAULTS))
        if unknown:
            raise ValueError(f"robot {robot.name}: unknown sim key {unknown[0]!r} "
                             f"(allowed: {', '.join(ROBOT_SIM_DEFAULTS)})")
        sim = {**ROBOT_SIM_DEFAULTS, **robot.sim}
        physics_dt = float(sim["physics_dt"])
        self.task_cfg, self.robot_cfg = task, robot
        self.arm = ARMS[robot.arm]
        self.max_width = robot.gripper_max_width
        self.task: SimTask = make_task(task)
        self.workspace = Workspace(task.target, task.workspace)
        xml = build_scene(self.arm, self.max_width, task.target.xyz, self.task.mjcf(), self.task.graspable,
                          self.task.excludes, self.task.params["front_camera"], physics_dt)
        self.model = mujoco.MjModel.from_xml_string(xml)
        self.data = mujoco.MjData(self.model)
        self.dof = self.arm.dof
        self.physics_dt = physics_dt
        self.tcp_site = self.model.site("tcp").id
        self.hand_body = self.model.body("hand").id
        self.finger_geoms = set(self._body_geoms("finger_left", "finger_right"))
        self.finger_qadr = [int(self.model.joint(f"finger_{s}_joint").qposadr[0]) for s in ("left", "right")]
        self.welds = {b: self.model.equality(f"grasp_{b}").id for b in self.task.graspable}
        self.body_ids = {b: self.model.body(b).id for b in self.task.graspable}
        self.controller = ImpedanceController(self.model, self.data, self.tcp_site, self.dof, task.impedance,
                                              np.array(self.arm.home), float(sim["nullspace_stiffness"]))
        self.held: str | None = None
        self._gripper_cmd = self.max_width
        self._renderers: dict[tuple[int, int], object] = {}
        self._steps = 0
        self.data.qpos[: self.dof] = self.arm.home
        mujoco.mj_forward(self.model, self.data)
        self.set_equilibrium(*self.tcp_pose())
        self.set_gripper(self.max_width)

    # --- commands ---------------------------------------------------------------------------------

    def set_equilibrium(self, xyz: np.ndarray, quat: np.ndarray) -> None:
        """The impedance controller's equilibrium pose (base frame, quaternion x, y, z, w)."""
        self.controller.set_target(xyz, quat)

    def set_gripper(self, width: float) -> None:
        """Commanded gripper opening (m), clipped to [0, max width]; opening releases a held object."""
        self._gripper_cmd = float(np.clip(width, 0.0, self.max_width))
        self.data.ctrl[0] = self._gripper_cmd / 2
        if self.held is not None and self._gripper_cmd > self.gripper_width() + 0.002:
            self.release()

    def step(self, duration: float) -> None:
        """Advance the physics by ``duration`` seconds (rounded to whole physics steps)."""
        model, data, ctrl = self.model, self.data, self.controller
        for _ in range(max(1, round(duration / self.physics_dt))):
            mujoco.mj_step1(model, data)
            ctrl.torque()
            mujoco.mj_step2(model, data)
            self._steps += 1
            if self.held is None and self._steps % GRASP_CHECK_EVERY == 0:
                self._grasp_assist()

    # --- grasping ---------------------------------------------------------------------------------

    def _body_geoms(self, *bodies: str) -> list[int]:
        ids = {self.model.body(b).id for b in bodies}
        return [g for g in range(self.model.ngeom) if self.model.geom_bodyid[g] in ids]

    def _grasp_assist(self) -> None:
        if self._gripper_cmd > self.gripper_width() - 0.001:
            return  # not closing on anything
        touching: dict[int, set[int]] = {}
        data, model = self.data, self.model
        for i in range(data.ncon):
            c = data.contact[i]
            for g, other in ((c.geom1, c.geom2), (c.geom2, c.geom1)):
                if g in self.finger_geoms:
                    touching.setdefault(int(model.geom_bodyid[other]), set()).add(int(g))
        for name, body in self.body_ids.items():
            if len(touching.get(body, ())) >= 2:
                self.grasp(name)
                return

    def grasp(self, name: str) -> None:
        """Weld body ``name`` to the hand where it is now."""
        model, data = self.model, self.data
        body, eq = self.body_ids[name], self.welds[name]
        hand_pos, hand_quat = data.xpos[self.hand_body], data.xquat[self.hand_body]
        inv = np.zeros(4)
        mujoco.mju_negQuat(inv, hand_quat)
        rel_pos = np.zeros(3)
        mujoco.mju_rotVecQuat(rel_pos, data.xpos[body] - hand_pos, inv)
        rel_quat = np.zeros(4)
        mujoco.mju_mulQuat(rel_quat, inv, data.xquat[body])
        model.eq_data[eq, 0:3] = 0.0
        model.eq_data[eq, 3:6] = rel_pos
        model.eq_data[eq, 6:10] = rel_quat
        model.eq_data[eq, 10] = 1.0
        data.eq_active[eq] = 1
        self.held = name

    def release(self) -> None:
        """Let go of the held object."""
        if self.held is not None:
            self.data.eq_active[self.welds[self.held]] = 0
            self.held = None

    # --- resets -----------------------------------------------------------------------------------

    def teleport_arm(self, xyz: np.ndarray, quat: np.ndarray) -> None:
        """Put the arm at the TCP pose (IK from home, damped least squares), at rest, tracking it."""
        model, data = self.model, self.data
        self.release()
        data.qpos[: self.dof] = self.arm.home
        data.qvel[:] = 0.0
        goal = np.asarray(xyz, dtype=np.float64)
        self.controller.set_target(goal, quat)
        jac = np.zeros((6, model.nv))
        lo, hi = model.jnt_range[: self.dof, 0], model.jnt_range[: self.dof, 1]
        for _ in range(100):
            mujoco.mj_kinematics(model, data)
            mujoco.mj_comPos(model, data)
            err = self.controller.pose_error()
            if np.linalg.norm(err) < 1e-7:
                break
            mujoco.mj_jacSite(model, data, jac[:3], jac[3:], self.tcp_site)
            j = jac[:, : self.dof]
            dq = j.T @ np.linalg.solve(j @ j.T + 1e-4 * np.eye(6), err)
            dq += 0.1 * (np.eye(self.dof) - np.linalg.pinv(j) @ j) @ (np.array(self.arm.home) - data.qpos[: self.dof])
            data.qpos[: self.dof] = np.clip(data.qpos[: self.dof] + dq, lo, hi)
        mujoco.mj_forward(model, data)

    def reset_scene(self, seed: int, episode: int) -> None:
        """Re-randomize the task's objects from (seed, episode); a held-at-start object goes into the hand."""
        self.release()
        self.task.reset(self, np.random.default_rng([seed, episode]))
        self.data.qvel[self.dof:] = 0.0
        mujoco.mj_forward(self.model, self.data)

    def reset(self, seed: int, episode: int, arm_pose: Pose | None = None) -> None:
        """Headless reset: the arm to ``arm_pose`` (or the task's randomized reset pose), then the scene."""
        mujoco.mj_resetData(self.model, self.data)
        self._steps = 0
        if arm_pose is None:
            arm_pose = reset_pose(self.task_cfg, self.workspace, np.random.default_rng([seed, episode, 1]))
        self.teleport_arm(arm_pose.xyz, arm_pose.quat)
        self.set_gripper(self.max_width)
        self.data.qpos[self.finger_qadr] = self.max_width / 2
        self.reset_scene(seed, episode)

    def restart(self, seed: int, episode: int) -> None:
        """The whole simulation anew, as :meth:`reset` at the controller's equilibrium pose: the arm at rest
        there, the gripper open, the objects from (seed, episode), whatever happened before."""
        w, x, y, z = self.controller.quat_des
        self.reset(seed, episode, Pose(self.controller.xyz_des.copy(), np.array([x, y, z, w])))

    def place_in_hand(self, name: str, pos_tcp: np.ndarray, quat_tcp_xyzw: np.ndarray, width: float) -> None:
        """Put free body ``name`` at a pose in the TCP frame, close the fingers to ``width`` and weld it."""
        xyz, quat = self.tcp_pose()
        world_pos = xyz + quat_to_matrix(quat) @ np.asarray(pos_tcp, dtype=np.float64)
        world_quat = quat_multiply(quat, np.asarray(quat_tcp_xyzw, dtype=np.float64))
        self.set_free_pose(name, world_pos, world_quat)
        self.data.qpos[self.finger_qadr] = width / 2
        self.set_gripper(0.0)
        mujoco.mj_forward(self.model, self.data)
        self.grasp(name)

    def set_free_pose(self, name: str, xyz: np.ndarray, quat_xyzw: np.ndarray) -> None:
        """Pose of a free-floating body (its free joint), at rest."""
        jnt = self.model.body(name).jntadr[0]
        adr, vadr = self.model.jnt_qposadr[jnt], self.model.jnt_dofadr[jnt]
        self.data.qpos[adr : adr + 3] = xyz
        self.data.qpos[adr + 3 : adr + 7] = _wxyz(np.asarray(quat_xyzw, dtype=np.float64))
        self.data.qvel[vadr : vadr + 6] = 0.0

    def set_joint(self, name: str, angle: float) -> None:
        """Set a scene hinge (lid, cap) at rest."""
        jnt = self.model.joint(name)
        self.data.qpos[jnt.qposadr[0]] = angle
        self.data.qvel[jnt.dofadr[0]] = 0.0

    def joint(self, name: str) -> float:
        """Angle of a scene hinge."""
        return float(self.data.qpos[self.model.joint(name).qposadr[0]])

    # --- state ------------------------------------------------------------------------------------

    @property
    def time(self) -> float:
        """Sim time (s) since the last full reset."""
        return float(self.data.time)

    def tcp_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """TCP position (m) and quaternion (x, y, z, w) in the base frame."""
        q = np.zeros(4)
        mujoco.mju_mat2Quat(q, self.data.site_xmat[self.tcp_site])
        return self.data.site_xpos[self.tcp_site].copy(), _xyzw(q)

    def tcp_velocity(self) -> np.ndarray:
        """TCP twist (linear m/s, angular rad/s) in the base frame."""
        jac = np.zeros((6, self.model.nv))
        mujoco.mj_jacSite(self.model, self.data, jac[:3], jac[3:], self.tcp_site)
        return jac[:, : self.dof] @ self.data.qvel[: self.dof]

    def body_pose(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """World position and quaternion (x, y, z, w) of a body."""
        b = self.model.body(name).id
        return self.data.xpos[b].copy(), _xyzw(self.data.xquat[b])

    def joint_positions(self) -> np.ndarray:
        """Arm joint angles (rad)."""
        return self.data.qpos[: self.dof].copy()

    def joint_velocities(self) -> np.ndarray:
        """Arm joint velocities (rad/s)."""
        return self.data.qvel[: self.dof].copy()

    def joint_efforts(self) -> np.ndarray:
        """Commanded arm joint torques (Nm)."""
        return self.data.qfrc_applied[: self.dof].copy()

    def finger_positions(self) -> np.ndarray:
        """Finger joint positions (m); the gripper width is their sum."""
        return self.data.qpos[self.finger_qadr].copy()

    def gripper_width(self) -> float:
        """Measured gripper opening (m)."""
        left, right = self.finger_qadr
        return float(self.data.qpos[left] + self.data.qpos[right])

    def wrench(self) -> np.ndarray:
        """External wrench on the end effector (force N, torque Nm about the TCP), base frame.

        The contact forces the environment exerts on the hand, fingers and the held object, as
        franka_robot_state_broadcaster's ``external_wrench_in_base_frame`` estimates them.
        """
        model, data = self.model, self.data
        ee = {self.hand_body, self.model.body("finger_left").id, self.model.body("finger_right").id}
        if self.held is not None:
            ee.add(self.body_ids[self.held])
        tcp = data.site_xpos[self.tcp_site]
        out = np.zeros(6)
        local = np.zeros(6)
        for i in range(data.ncon):
            c = data.contact[i]
            b1, b2 = model.geom_bodyid[c.geom1], model.geom_bodyid[c.geom2]
            if (b1 in ee) == (b2 in ee):
                continue
            mujoco.mj_contactForce(model, data, i, local)
            frame = c.frame.reshape(3, 3)
            force = frame.T @ local[:3]  # force on geom2 from geom1, world frame
            if b1 in ee:
                force = -force
            out[:3] += force
            out[3:] += np.cross(c.pos - tcp, force)
        return out

    def success(self) -> bool:
        """Ground-truth task success."""
        return bool(self.task.success(self))

    def privileged(self) -> dict[str, np.ndarray]:
        """Object state for the scripted expert (poses of task objects, joint angles, flags)."""
        return self.task.privileged(self)

    def object_state(self) -> np.ndarray:
        """The task's sim-only privileged observation (float32): object poses from ground truth."""
        return self.task.object_state(self).astype(np.float32)

    # --- rendering --------------------------------------------------------------------------------

    def render(self, camera: str, height: int, width: int) -> np.ndarray:
        """An RGB image (height × width × 3, uint8) from camera ``wrist`` or ``front``."""
        key = (height, width)
        if key not in self._renderers:
            self._renderers[key] = make_renderer(self.model, height, width)
        renderer = self._renderers[key]
        renderer.update_scene(self.data, camera=camera)
        return renderer.render()

    def close(self) -> None:
        """Free the renderers' GL contexts."""
        for r in self._renderers.values():
            r.close()
        self._renderers.clear()
