"""Small, dependency-free pose maths (numpy): quaternions in ROS order (x, y, z, w), rpy, rotvecs.

rpy means extrinsic roll about x, then pitch about y, then yaw about z (R = Rz·Ry·Rx), as in
ROS/tf2. Angles are wrapped to [-π, π).
"""

from __future__ import annotations

import numpy as np

Array = np.ndarray


def wrap_angle(a: Array | float) -> Array:
    """Wrap angle(s) to [-π, π)."""
    return (np.asarray(a, dtype=np.float64) + np.pi) % (2.0 * np.pi) - np.pi


def quat_normalize(q: Array) -> Array:
    """Unit quaternion with w >= 0 (a canonical sign, so equal rotations compare equal)."""
    q = np.asarray(q, dtype=np.float64)
    q = q / np.linalg.norm(q)
    return -q if q[3] < 0 else q


def quat_multiply(a: Array, b: Array) -> Array:
    """Hamilton product a ⊗ b (apply b, then a)."""
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return np.array(
        [
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz,
        ]
    )


def quat_conjugate(q: Array) -> Array:
    """Inverse of a unit quaternion."""
    return np.array([-q[0], -q[1], -q[2], q[3]])


def quat_from_rotvec(v: Array) -> Array:
    """Quaternion of a rotation vector (axis × angle, rad)."""
    v = np.asarray(v, dtype=np.float64)
    angle = float(np.linalg.norm(v))
    if angle < 1e-12:
        return np.array([0.5 * v[0], 0.5 * v[1], 0.5 * v[2], 1.0]) / np.sqrt(1.0 + 0.25 * angle**2)
    axis = v / angle
    s = np.sin(0.5 * angle)
    return np.array([axis[0] * s, axis[1] * s, axis[2] * s, np.cos(0.5 * angle)])


def rotvec_from_quat(q: Array) -> Array:
    """Rotation vector (axis × angle, angle in [0, π]) of a quaternion."""
    q = quat_normalize(q)
    s = float(np.linalg.norm(q[:3]))
    if s < 1e-12:
        return 2.0 * q[:3]
    angle = 2.0 * np.arctan2(s, q[3])
    return q[:3] / s * angle


def quat_from_rpy(rpy: Array) -> Array:
    """Quaternion of extrinsic roll-pitch-yaw."""
    r, p, y = (0.5 * float(a) for a in rpy)
    cr, sr, cp, sp, cy, sy = np.cos(r), np.sin(r), np.cos(p), np.sin(p), np.cos(y), np.sin(y)
    return quat_normalize(
        np.array(
            [
                sr * cp * cy - cr * sp * sy,
                cr * sp * cy + sr * cp * sy,
                cr * cp * sy - sr * sp * cy,
                cr * cp * cy + sr * sp * sy,
            ]
        )
    )


def rpy_from_quat(q: Array) -> Array:
    """Extrinsic roll-pitch-yaw of a quaternion (pitch in [-π/2, π/2])."""
    x, y, z, w = quat_normalize(q)
    roll = np.arctan2(2.0 * (w * x + y * z), 1.0 - 2.0 * (x * x + y * y))
    pitch = np.arcsin(np.clip(2.0 * (w * y - z * x), -1.0, 1.0))
    yaw = np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))
    return np.array([roll, pitch, yaw])


def quat_to_matrix(q: Array) -> Array:
    """3×3 rotation matrix of a quaternion."""
    x, y, z, w = quat_normalize(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def quat_angle(a: Array, b: Array) -> float:
    """Angle (rad, in [0, π]) of the rotation between two orientations."""
    d = abs(float(np.dot(quat_normalize(a), quat_normalize(b))))
    return 2.0 * float(np.arccos(min(1.0, d)))
