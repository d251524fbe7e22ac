"""Compose a task scene: table, lights, front camera, the arm and the task's objects, as one MJCF model."""

from __future__ import annotations

import numpy as np

from user_robot.sim.arms import ARM_DEFAULTS, ArmSpec, arm_mjcf


def box(name: str, pos, size, rgba: str = "0.6 0.6 0.65 1", quat=None, extra: str = "") -> str:
    """A box geom (``size`` = half sizes), optionally rotated (``quat`` in MuJoCo's w, x, y, z order)."""
    q = f' quat="{" ".join(f"{v:.6g}" for v in quat)}"' if quat is not None else ""
    p = " ".join(f"{v:.6g}" for v in pos)
    s = " ".join(f"{v:.6g}" for v in size)
    return f'<geom name="{name}" type="box" pos="{p}" size="{s}"{q} rgba="{rgba}" {extra}/>'


def yaw_quat_mj(yaw: float) -> np.ndarray:
    """Quaternion (w, x, y, z) of a rotation about the world z axis."""
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])


def build_scene(arm: ArmSpec, gripper_width: float, target_xyz, objects: str, welds: tuple[str, ...],
                excludes: tuple[tuple[str, str], ...], front_camera: dict, physics_dt: float) -> str:
    """The full MJCF: ``objects`` is the task's worldbody XML; ``welds`` the bodies the hand can hold;
    ``excludes`` body pairs without contacts; ``front_camera`` optional ``pos`` and ``look_at``."""
    weld = '<weld name="grasp_{}" body1="hand" body2="{}" active="false" solref="0.004 1"/>'
    tx, ty, tz = target_xyz
    cam_pos = np.asarray(front_camera.get("pos", (tx + 0.45, ty, tz + 0.35)), dtype=float)
    look = np.asarray(front_camera.get("look_at", (tx, ty, tz)), dtype=float)
    fwd = (look - cam_pos) / np.linalg.norm(look - cam_pos)
    right = np.cross(fwd, (0.0, 0.0, 1.0))
    right /= np.linalg.norm(right)
    up = np.cross(right, fwd)
    xyaxes = " ".join(f"{v:.5f}" for v in (*right, *up))
    weld_xml = "\n".join(weld.format(b, b) for b in welds)
    finger = f"{gripper_width / 2:.5f}"
    exclude_xml = "".join(f'<exclude body1="{a}" body2="{b}"/>' for a, b in excludes)
    return f"""
<mujoco model="user_sim_cell">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{physics_dt}"/>
  <visual><global offwidth="640" offheight="480"/><quality shadowsize="0"/></visual>
  <default>
    {ARM_DEFAULTS}
    <default class="object"><geom contype="1" conaffinity="1" condim="4" friction="1 0.01 0.001"
      solref="0.01 1" group="1"/></default>
    <default class="fixture"><geom contype="1" conaffinity="1" condim="3" friction="0.6 0.005 0.0001"
      solref="0.01 1" group="1"/></default>
  </default>
  <asset>
    <texture name="grid" type="2d" builtin="checker" rgb1="0.55 0.5 0.45" rgb2="0.5 0.45 0.4" width="64" height="64"/>
    <material name="table" texture="grid" texrepeat="8 8"/>
  </asset>
  <worldbody>
    <light pos="0.4 0 1.5" dir="0 0 -1" diffuse="0.8 0.8 0.8" castshadow="false"/>
    <light pos="1.2 0.6 1.0" dir="-1 -0.5 -1" diffuse="0.4 0.4 0.4" castshadow="false"/>
    <geom name="table" type="box" pos="0.45 0 -0.02" size="0.6 0.7 0.02" material="table" class="fixture"/>
    <camera name="front" pos="{cam_pos[0]:.4f} {cam_pos[1]:.4f} {cam_pos[2]:.4f}" xyaxes="{xyaxes}" fovy="55"/>
    {arm_mjcf(arm, gripper_width)}
    {objects}
  </worldbody>
  <contact>{exclude_xml}</contact>
  <equality>
    <joint name="finger_couple" joint1="finger_left_joint" joint2="finger_right_joint" polycoef="0 1 0 0 0"/>
    {weld_xml}
  </equality>
  <actuator>
    <position name="fingers" joint="finger_left_joint" kp="300" kv="10" ctrlrange="0 {finger}" forcerange="-40 40"/>
  </actuator>
</mujoco>
"""
