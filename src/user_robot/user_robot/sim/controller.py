"""Cartesian impedance control in the sim, as franka_ros2's / crisp's controllers do it.

``tau = Jᵀ(K·clip(e) − D·J·q̇) + N(K_n(q_rest − q) − D_n·q̇) + bias``: the pose error ``e`` to the
commanded equilibrium pose is clipped per axis (translation) and in norm per axis (rotation, a
rotation vector in the base frame), so contact forces stay near ``stiffness × clip``; ``bias``
compensates gravity and Coriolis forces (the Franka does this inside the robot); ``N`` projects a
posture spring toward a rest configuration into the Jacobian's null space (7-DoF arms only).
"""

from __future__ import annotations

import mujoco
import numpy as np

from user_robot.task_config import ImpedanceConfig

NULLSPACE_EVERY = 5
"""Controller calls between recomputations of the null-space projector."""


class ImpedanceController:
    """Computes arm joint torques from the current state of ``data`` (call after ``mj_step1``)."""

    def __init__(
        self,
        model: mujoco.MjModel,
        data: mujoco.MjData,
        site: int,
        dof: int,
        cfg: ImpedanceConfig,
        q_rest: np.ndarray,
        nullspace_stiffness: float = 10.0,
    ) -> None:
        self.model, self.data, self.site, self.dof = model, data, site, dof
        self.set_gains(cfg)
        self.q_rest = np.asarray(q_rest, dtype=np.float64)
        self.k_null = nullspace_stiffness
        self.d_null = 2.0 * np.sqrt(nullspace_stiffness)
        self.xyz_des = np.zeros(3)
        self.quat_des = np.array([1.0, 0.0, 0.0, 0.0])  # MuJoCo order w, x, y, z
        self._jac = np.zeros((6, model.nv))
        self._quat = np.zeros(4)
        self._local = np.zeros(3)
        self._err = np.zeros(6)
        self._null = np.zeros((self.dof, self.dof))
        self._calls = 0

    def set_gains(self, cfg: ImpedanceConfig) -> None:
        """Stiffness, damping and error clipping (translation per axis, rotation per axis)."""
        self.k = np.array([cfg.translational_stiffness] * 3 + [cfg.rotational_stiffness] * 3)
        self.d = np.array([cfg.translational_damping] * 3 + [cfg.rotational_damping] * 3)
        self.clip = np.array([*cfg.error_clip_xyz, cfg.error_clip_rot, cfg.error_clip_rot, cfg.error_clip_rot])
        self._low = -self.clip

    def set_target(self, xyz: np.ndarray, quat_xyzw: np.ndarray) -> None:
        """The equilibrium pose: position (m) and quaternion in ROS order (x, y, z, w)."""
        self.xyz_des = np.asarray(xyz, dtype=np.float64).copy()
        q = np.asarray(quat_xyzw, dtype=np.float64)
        self.quat_des = np.array([q[3], q[0], q[1], q[2]]) / np.linalg.norm(q)

    def pose_error(self) -> np.ndarray:
        """Unclipped 6-D error (position, rotation vector in the base frame) from the TCP to the target.

        The returned array is reused by the next call.
        """
        data = self.data
        err, xmat = self._err, data.site_xmat[self.site]
        mujoco.mju_mat2Quat(self._quat, xmat)
        mujoco.mju_subQuat(self._local, self.quat_des, self._quat)  # rotation vector in the TCP frame
        err[3:] = xmat.reshape(3, 3) @ self._local
        np.subtract(self.xyz_des, data.site_xpos[self.site], out=err[:3])
        return err

    def torque(self) -> np.ndarray:
        """Arm joint torques for the current state (also written to ``data.qfrc_applied``)."""
        model, data, n = self.model, self.data, self.dof
        mujoco.mj_jacSite(model, data, self._jac[:3], self._jac[3:], self.site)
        jac = self._jac[:, :n]
        qd = data.qvel[:n]
        err = self.pose_error()
        np.maximum(err, self._low, out=err)
        np.minimum(err, self.clip, out=err)
        tau = jac.T @ (self.k * err - self.d * (jac @ qd))
        tau += data.qfrc_bias[:n]
        if n > 6:
            if self._calls % NULLSPACE_EVERY == 0:  # the projector changes slowly with the configuration
                self._null = np.eye(n) - jac.T @ np.linalg.solve(jac @ jac.T + 1e-6 * np.eye(6), jac)
            tau += self._null @ (self.k_null * (self.q_rest - data.qpos[:n]) - self.d_null * qd)
        self._calls += 1
        data.qfrc_applied[:n] = tau
        return tau
