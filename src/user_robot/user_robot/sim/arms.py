"""Arm models as MJCF built from primitives (capsules, boxes): a 7-DoF Panda and a 6-DoF ARX-style arm.

The Panda follows Franka's published modified Denavit–Hartenberg parameters and joint limits; the
hand is rotated −45° about the flange axis and the TCP lies 0.1034 m beyond the flange, as on the
real robot. The ARX-style arm has ARX5's joint layout (base yaw, shoulder/elbow/wrist pitch, wrist
yaw, wrist roll); its link lengths are chosen so that it reaches the same task targets. Both carry
the same parallel-jaw gripper (two slide joints, position servos). Only the hand and fingers
collide, which keeps contact detection and rendering cheap.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from user_robot.pose_math import quat_from_rpy, quat_multiply

PANDA_DH = (  # (a_{i-1}, d_i, alpha_{i-1}) per joint, Franka's modified DH convention
    (0.0, 0.333, 0.0),
    (0.0, 0.0, -math.pi / 2),
    (0.0, 0.316, math.pi / 2),
    (0.0825, 0.0, math.pi / 2),
    (-0.0825, 0.384, -math.pi / 2),
    (0.0, 0.0, math.pi / 2),
    (0.088, 0.0, math.pi / 2),
)
PANDA_FLANGE_D = 0.107
PANDA_LIMITS = (
    (-2.8973, 2.8973),
    (-1.7628, 1.7628),
    (-2.8973, 2.8973),
    (-3.0718, -0.0698),
    (-2.8973, 2.8973),
    (-0.0175, 3.7525),
    (-2.8973, 2.8973),
)
PANDA_MASSES = (4.97, 0.65, 3.23, 3.59, 1.23, 1.67, 0.74)
HAND_TCP_OFFSET = 0.1034  # flange → TCP along the approach axis (m)
FINGER_HALF = (0.01, 0.006, 0.022)  # finger pad box half sizes (m): along x, thickness, length


@dataclasses.dataclass(frozen=True)
class Joint:
    """One revolute joint: its body's pose in the parent body, rotation axis (local) and limits (rad)."""

    pos: tuple[float, float, float]
    quat: tuple[float, float, float, float]  # x, y, z, w
    axis: tuple[float, float, float]
    limits: tuple[float, float]
    mass: float
    radius: float  # capsule radius of the link drawn to the next joint


@dataclasses.dataclass(frozen=True)
class ArmSpec:
    """A serial arm: joints, flange pose in the last link, home configuration and gripper stroke."""

    name: str
    joints: tuple[Joint, ...]
    flange_pos: tuple[float, float, float]
    flange_quat: tuple[float, float, float, float]  # hand orientation in the last link (x, y, z, w)
    home: tuple[float, ...]
    gripper_max_width: float

    @property
    def dof(self) -> int:
        """Number of arm joints."""
        return len(self.joints)


def dh_joints(dh, limits, masses, radii) -> tuple[Joint, ...]:
    """Joints from modified DH rows: body i sits at Rx(alpha)·Tx(a)·Tz(d) in body i−1, hinge about z."""
    out = []
    for (a, d, alpha), lim, m, r in zip(dh, limits, masses, radii, strict=True):
        pos = (a, -math.sin(alpha) * d, math.cos(alpha) * d)
        quat = tuple(quat_from_rpy(np.array([alpha, 0.0, 0.0])))
        out.append(Joint(_clean(pos), _clean(quat), (0.0, 0.0, 1.0), lim, m, r))
    return tuple(out)


def _clean(v) -> tuple[float, ...]:
    return tuple(0.0 if abs(x) < 1e-12 else float(x) for x in v)


PANDA = ArmSpec(
    name="panda",
    joints=dh_joints(PANDA_DH, PANDA_LIMITS, PANDA_MASSES, (0.06, 0.06, 0.06, 0.055, 0.055, 0.05, 0.045)),
    flange_pos=(0.0, 0.0, PANDA_FLANGE_D),
    flange_quat=_clean(quat_from_rpy(np.array([0.0, 0.0, -math.pi / 4]))),
    home=(0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785),
    gripper_max_width=0.08,
)

_Y = (0.0, 1.0, 0.0)
ARX = ArmSpec(
    name="arx",
    joints=(
        Joint((0.0, 0.0, 0.06), (0.0, 0.0, 0.0, 1.0), (0.0, 0.0, 1.0), (-3.1, 3.1), 1.2, 0.045),
        Joint((0.0, 0.0, 0.09), (0.0, 0.0, 0.0, 1.0), _Y, (-2.0, 1.2), 1.0, 0.04),
        Joint((0.37, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0), _Y, (-0.2, 3.0), 0.9, 0.035),
        Joint((0.35, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0), _Y, (-1.8, 1.8), 0.5, 0.03),
        Joint((0.06, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0), (0.0, 0.0, 1.0), (-1.7, 1.7), 0.4, 0.03),
        Joint((0.05, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0), (1.0, 0.0, 0.0), (-3.1, 3.1), 0.3, 0.03),
    ),
    flange_pos=(0.03, 0.0, 0.0),
    flange_quat=_clean(quat_multiply(quat_from_rpy(np.array([0.0, math.pi / 2, 0.0])),
                                     quat_from_rpy(np.array([0.0, 0.0, math.pi])))),
    home=(0.0, -1.432, 1.355, 1.648, 0.0, 0.0),  # TCP at (0.4, 0, 0.3) pointing down
    gripper_max_width=0.088,
)

ARMS = {"panda": PANDA, "arx": ARX}


def _vec(v) -> str:
    return " ".join(f"{x:.6g}" for x in v)


def _quat_mj(q) -> str:
    """MJCF wants w, x, y, z."""
    return _vec((q[3], q[0], q[1], q[2]))


def arm_mjcf(spec: ArmSpec, gripper_max_width: float | None = None) -> str:
    """The arm's kinematic tree (bodies, joints, gripper, ``tcp`` site, ``wrist`` camera) as MJCF."""
    half = (gripper_max_width or spec.gripper_max_width) / 2
    children = [j.pos for j in spec.joints[1:]] + [spec.flange_pos]
    xml = ['<body name="link0" pos="0 0 0">',
           '<geom type="cylinder" size="0.07 0.03" pos="0 0 0.03" rgba="0.9 0.9 0.9 1" class="visual"/>']
    for i, (joint, child) in enumerate(zip(spec.joints, children, strict=True), start=1):
        xml.append(f'<body name="link{i}" pos="{_vec(joint.pos)}" quat="{_quat_mj(joint.quat)}">')
        xml.append(f'<joint name="joint{i}" axis="{_vec(joint.axis)}" range="{_vec(joint.limits)}" class="arm"/>')
        length = float(np.linalg.norm(child))
        if length > 1e-6:
            xml.append(f'<geom type="capsule" fromto="0 0 0 {_vec(child)}" size="{joint.radius}" mass="{joint.mass}"'
                       f' rgba="{0.95 if i % 2 else 0.8} {0.95 if i % 2 else 0.8} 0.95 1" class="visual"/>')
        else:
            xml.append(f'<geom type="sphere" size="{joint.radius}" mass="{joint.mass}" rgba="0.9 0.9 0.95 1"'
                       ' class="visual"/>')
    fx, fy, fz = FINGER_HALF
    tip = HAND_TCP_OFFSET + 0.005
    finger_z = tip - fz - 0.0584
    xml += [
        f'<body name="hand" pos="{_vec(spec.flange_pos)}" quat="{_quat_mj(spec.flange_quat)}">',
        '<geom type="box" size="0.025 0.1 0.03" pos="0 0 0.03" mass="0.73" rgba="0.85 0.85 0.85 1" class="hand"/>',
        '<geom type="cylinder" size="0.04 0.01" pos="0 0 0.005" rgba="0.2 0.2 0.2 1" class="visual"/>',
        f'<site name="tcp" pos="0 0 {HAND_TCP_OFFSET}" size="0.004" rgba="1 0 0 0.5" group="4"/>',
        '<camera name="wrist" pos="0.07 0 0.03" xyaxes="0 1 0 0.97 0 0.25" fovy="75"/>',  # looks down past the fingers
    ]
    for side, sign in (("left", 1.0), ("right", -1.0)):
        xml += [
            f'<body name="finger_{side}" pos="0 0 0.0584">',
            f'<joint name="finger_{side}_joint" type="slide" axis="0 {sign:g} 0" range="0 {half:.5f}" class="finger"/>',
            f'<geom type="box" size="{fx} {fy} {fz}" pos="0 {sign * fy:.5f} {finger_z:.5f}" mass="0.02"'
            ' rgba="0.25 0.25 0.25 1" class="finger"/>',
            "</body>",
        ]
    xml.append("</body>")
    xml += ["</body>"] * len(spec.joints)
    xml.append("</body>")
    return "\n".join(xml)


ARM_DEFAULTS = """
<default class="arm"><joint damping="0.5" armature="0.1" limited="true"/></default>
<default class="visual"><geom contype="0" conaffinity="0" group="1"/></default>
<default class="hand"><geom contype="1" conaffinity="1" condim="3" friction="1 0.005 0.0001" group="1"/></default>
<default class="finger">
  <joint damping="5" armature="0.01" limited="true"/>
  <geom contype="1" conaffinity="1" condim="4" friction="1.5 0.01 0.001" group="1"/>
</default>
"""
"""MJCF default classes the arm uses (arm joints, non-colliding links, colliding hand and fingers)."""
