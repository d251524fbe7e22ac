"""Task scenes (pure): objects as MJCF primitives, seeded resets, ground-truth success, privileged state.

Each task reads its scene parameters from the task YAML's free-form ``sim:`` section (defaults
below, overridable key by key). Lengths are metres, angles radians, positions in the robot base
frame (the table top is z = 0).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from user_robot.pose_math import quat_from_rpy, quat_to_matrix, rpy_from_quat, wrap_angle
from user_robot.sim.scene import box, yaw_quat_mj
from user_robot.task_config import TaskConfig

if TYPE_CHECKING:
    from user_robot.sim.cell import SimCell


class SimTask:
    """A task's scene: subclasses set ``DEFAULTS`` and implement the four methods."""

    DEFAULTS: dict[str, Any] = {"front_camera": {}}
    graspable: tuple[str, ...] = ()

    def __init__(self, cfg: TaskConfig) -> None:
        unknown = sorted(set(cfg.sim) - set(self.DEFAULTS))
        if unknown:
            raise ValueError(f"task {cfg.name}: unknown sim key {unknown[0]!r} (allowed: {', '.join(self.DEFAULTS)})")
        self.cfg = cfg
        self.params = {**self.DEFAULTS, **cfg.sim}
        self.target = np.asarray(cfg.target.xyz, dtype=np.float64)
        self.target_yaw = float(cfg.target.rpy[2])

    def mjcf(self) -> str:
        """Worldbody XML of the task's objects and fixtures."""
        raise NotImplementedError

    def reset(self, cell: SimCell, rng: np.random.Generator) -> None:
        """Place the objects (the arm is where it is)."""
        raise NotImplementedError

    def success(self, cell: SimCell) -> bool:
        """Ground truth: is the task done?"""
        raise NotImplementedError

    def privileged(self, cell: SimCell) -> dict[str, Any]:
        """What the scripted expert may know about the objects."""
        raise NotImplementedError


def yaw_of(quat_xyzw: np.ndarray) -> float:
    """Yaw (rad) of an orientation's x axis in the base frame."""
    r = quat_to_matrix(quat_xyzw)
    return math.atan2(r[1, 0], r[0, 0])


class InsertionTask(SimTask):
    """A part held in the closed gripper goes into a hole with a small clearance and chamfer.

    The part's body frame is the TCP frame at grasp time (z pointing down, out of the gripper);
    its tip lies ``tip_below_tcp`` below the TCP, so at the target TCP pose the tip is at the hole
    bottom. An optional wider ``housing`` sits above the inserted part (a charger's body).
    Success: the tip is at least ``insert_fraction`` of the depth inside the hole.
    """

    DEFAULTS: dict[str, Any] = {
        "front_camera": {},
        "part_size": [0.03, 0.03, 0.06],  # inserted part: x, y, length (full sizes)
        "housing_size": None,  # [x, y, z] full size of a wider body above the part, held by the fingers
        "tip_below_tcp": 0.04,
        "clearance": 0.001,  # hole size minus part size, per dimension
        "depth": 0.02,
        "chamfer": 0.001,
        "wall": 0.03,
        "grasp_jitter": 0.001,  # ± offset of the part in the hand along x and z, per reset
        "insert_fraction": 0.8,
        "symmetry": None,  # yaw period of the part (rad); default: π/2 for square, else π
        "rgba": "0.2 0.4 0.8 1",
    }
    graspable = ("part",)

    def __init__(self, cfg: TaskConfig) -> None:
        super().__init__(cfg)
        p = self.params
        self.part = np.asarray(p["part_size"], dtype=np.float64)
        self.tip = float(p["tip_below_tcp"])
        self.depth = float(p["depth"])
        self.half_hole = self.part[:2] / 2 + float(p["clearance"]) / 2
        self.bottom = float(self.target[2]) - self.tip
        self.top = self.bottom + self.depth
        if self.bottom < 0.0:
            raise ValueError(f"task {cfg.name}: the hole bottom is below the table (target z too low)")
        square = abs(self.part[0] - self.part[1]) < 1e-9
        self.symmetry = float(p["symmetry"] or (math.pi / 2 if square else math.pi))
        housing = p["housing_size"]
        self.grip_width = float(housing[1] if housing else self.part[1])

    def mjcf(self) -> str:
        p = self.params
        hx, hy = self.half_hole
        c, w, top, bottom = float(p["chamfer"]), float(p["wall"]), self.top, self.bottom
        geoms = []
        if bottom > 0:
            geoms.append(box("hole_floor", (0, 0, bottom / 2), (hx + w, hy + w, bottom / 2), extra='class="fixture"'))
        diamond = c / math.sqrt(2)
        for sign in (1.0, -1.0):
            for axis, (h, other) in enumerate(((hx, hy), (hy, hx))):
                def at(u: float, v: float, z: float, axis: int = axis) -> tuple[float, float, float]:
                    return (u, v, z) if axis == 0 else (v, u, z)

                def size(u: float, v: float, z: float, axis: int = axis) -> tuple[float, float, float]:
                    return (u, v, z) if axis == 0 else (v, u, z)

                span = other + w if axis == 0 else other
                low = top - c
                geoms.append(box(f"wall{axis}{sign:+.0f}", at(sign * (h + w / 2), 0, low / 2), size(w / 2, span, low / 2),
                                 extra='class="fixture"'))
                geoms.append(box(f"rim{axis}{sign:+.0f}", at(sign * (h + c + (w - c) / 2), 0, top - c / 2),
                                 size((w - c) / 2, span, c / 2), extra='class="fixture"'))
                rot = (math.cos(math.pi / 8), 0, math.sin(math.pi / 8), 0) if axis == 0 else \
                    (math.cos(math.pi / 8), math.sin(math.pi / 8), 0, 0)
                geoms.append(box(f"chamfer{axis}{sign:+.0f}", at(sign * (h + c), 0, top - c), size(diamond, span, diamond),
                                 quat=rot, extra='class="fixture"'))
        q = " ".join(f"{v:.6g}" for v in yaw_quat_mj(self.target_yaw))
        fixture = (f'<body name="fixture" pos="{self.target[0]:.6g} {self.target[1]:.6g} 0" quat="{q}">'
                   + "\n".join(geoms) + "</body>")
        length = self.part[2]
        part = [box("part", (0, 0, self.tip - length / 2), (*self.part[:2] / 2, length / 2), rgba=p["rgba"],
                    extra='class="object" mass="0.05"')]
        if p["housing_size"]:
            hs = np.asarray(p["housing_size"], dtype=np.float64) / 2
            part.append(box("housing", (0, 0, self.tip - length - hs[2]), hs, rgba="0.15 0.15 0.15 1",
                            extra='class="object" mass="0.05"'))
        return fixture + '<body name="part" pos="0.3 0.3 0.3"><freejoint/>' + "\n".join(part) + "</body>"

    def reset(self, cell: SimCell, rng: np.random.Generator) -> None:
        jitter = float(self.params["grasp_jitter"])
        dx, dz = rng.uniform(-jitter, jitter, size=2)
        cell.place_in_hand("part", np.array([dx, 0.0, dz]), np.array([0.0, 0.0, 0.0, 1.0]), self.grip_width)

    def tip_position(self, cell: SimCell) -> np.ndarray:
        """World position of the centre of the part's tip."""
        pos, quat = cell.body_pose("part")
        return pos + quat_to_matrix(quat) @ np.array([0.0, 0.0, self.tip])

    def success(self, cell: SimCell) -> bool:
        tip = self.tip_position(cell)
        c, s = math.cos(self.target_yaw), math.sin(self.target_yaw)
        d = tip[:2] - self.target[:2]
        local = np.array([c * d[0] + s * d[1], -s * d[0] + c * d[1]])
        inside = bool(np.all(np.abs(local) <= self.half_hole + 1e-4))
        return inside and tip[2] <= self.top - self.params["insert_fraction"] * self.depth

    def privileged(self, cell: SimCell) -> dict[str, Any]:
        _, quat = cell.body_pose("part")
        return {
            "tip": self.tip_position(cell),
            "part_yaw": yaw_of(quat),
            "hole_top": np.array([self.target[0], self.target[1], self.top]),
            "hole_bottom": self.bottom,
            "hole_yaw": self.target_yaw,
            "symmetry": self.symmetry,
            "held": cell.held == "part",
        }


TASKS: dict[str, type[SimTask]] = {
    "peg_insertion": InsertionTask,
    "charger_plugging": InsertionTask,
}
"""Scene class per task name (the task YAML's ``name``)."""


def make_task(cfg: TaskConfig) -> SimTask:
    """The scene of a task config."""
    if cfg.name not in TASKS:
        raise ValueError(f"no sim scene for task {cfg.name!r} (known: {', '.join(sorted(TASKS))})")
    return TASKS[cfg.name](cfg)


__all__ = ["TASKS", "InsertionTask", "SimTask", "make_task", "quat_from_rpy", "rpy_from_quat", "wrap_angle"]
