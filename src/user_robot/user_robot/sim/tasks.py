"""Task scenes (pure): objects as MJCF primitives, seeded resets, ground-truth success, privileged state.

Each task reads its scene parameters from the task YAML's free-form ``sim:`` section (defaults
below, overridable key by key). Lengths are metres, angles radians, positions in the robot base
frame (the table top is z = 0).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Protocol

import numpy as np

from user_robot.pose_math import quat_from_rpy, quat_to_matrix
from user_robot.sim.scene import box, yaw_quat_mj
from user_robot.task_config import TaskConfig


class SceneAccess(Protocol):
    """What a task reads and sets in the cell (``SimCell`` provides it; tasks never import the cell)."""

    held: str | None

    def place_in_hand(self, name: str, pos_tcp: np.ndarray, quat_tcp_xyzw: np.ndarray, width: float) -> None:
        """Put object ``name`` into the closed gripper at a pose relative to the TCP."""

    def set_free_pose(self, name: str, xyz: np.ndarray, quat_xyzw: np.ndarray) -> None:
        """Place a free object."""

    def set_joint(self, name: str, angle: float) -> None:
        """Set a scene joint (hinge) angle."""

    def joint(self, name: str) -> float:
        """A scene joint's angle."""

    def body_pose(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(xyz, quat xyzw) of a body."""

    def tcp_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """(xyz, quat xyzw) of the TCP."""


COMMON_DEFAULTS: dict[str, Any] = {
    "front_camera": {},  # optional "pos" and "look_at" (m, base frame); default: in front of the target
}
"""Scene settings every task accepts."""


class SimTask:
    """A task's scene: subclasses set ``DEFAULTS`` and implement the four methods."""

    DEFAULTS: ClassVar[dict[str, Any]] = {}
    graspable: tuple[str, ...] = ()  # bodies the gripper can hold
    excludes: tuple[tuple[str, str], ...] = ()  # body pairs that never collide (a cap on its thread)

    def __init__(self, cfg: TaskConfig) -> None:
        defaults = {**COMMON_DEFAULTS, **self.DEFAULTS}
        unknown = sorted(set(cfg.sim) - set(defaults))
        if unknown:
            raise ValueError(f"task {cfg.name}: unknown sim key {unknown[0]!r} (allowed: {', '.join(defaults)})")
        self.cfg = cfg
        self.params = {**defaults, **cfg.sim}
        self.target = np.asarray(cfg.target.xyz, dtype=np.float64)
        self.target_yaw = float(cfg.target.rpy[2])

    def mjcf(self) -> str:
        """Worldbody XML of the task's objects and fixtures."""
        raise NotImplementedError

    def reset(self, cell: SceneAccess, rng: np.random.Generator) -> None:
        """Place the objects (the arm is where it is)."""
        raise NotImplementedError

    def success(self, cell: SceneAccess) -> bool:
        """Ground truth: is the task done?"""
        raise NotImplementedError

    def privileged(self, cell: SceneAccess) -> dict[str, Any]:
        """What the scripted expert may know about the objects."""
        raise NotImplementedError

    def object_state_size(self) -> int:
        """Length of :meth:`object_state` (known from the config alone)."""
        raise NotImplementedError

    def object_state(self, cell: SceneAccess) -> np.ndarray:
        """The sim-only privileged observation (the ``object_state`` key): object poses from ground truth,
        positions relative to the target in the task's ``position_scale`` units, yaws as the sine and
        cosine of the yaw over the object's symmetry period (continuous where the object looks the same)."""
        raise NotImplementedError

    def _position(self, xyz: np.ndarray) -> np.ndarray:
        return (np.asarray(xyz, dtype=np.float64) - self.target) * self.cfg.observation.position_scale


def periodic(angle: float, period: float) -> np.ndarray:
    """(sin, cos) of ``angle`` over ``period``: continuous, and equal for angles a period apart."""
    phase = 2 * math.pi * angle / period
    return np.array([math.sin(phase), math.cos(phase)])


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

    DEFAULTS: ClassVar[dict[str, Any]] = {
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
                geoms.append(box(f"wall{axis}{sign:+.0f}", at(sign * (h + w / 2), 0, low / 2),
                                 size(w / 2, span, low / 2), extra='class="fixture"'))
                geoms.append(box(f"rim{axis}{sign:+.0f}", at(sign * (h + c + (w - c) / 2), 0, top - c / 2),
                                 size((w - c) / 2, span, c / 2), extra='class="fixture"'))
                rot = (math.cos(math.pi / 8), 0, math.sin(math.pi / 8), 0) if axis == 0 else \
                    (math.cos(math.pi / 8), math.sin(math.pi / 8), 0, 0)
                geoms.append(box(f"chamfer{axis}{sign:+.0f}", at(sign * (h + c), 0, top - c),
                                 size(diamond, span, diamond), quat=rot, extra='class="fixture"'))
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

    def reset(self, cell: SceneAccess, rng: np.random.Generator) -> None:
        jitter = float(self.params["grasp_jitter"])
        dx, dz = rng.uniform(-jitter, jitter, size=2)
        cell.place_in_hand("part", np.array([dx, 0.0, dz]), np.array([0.0, 0.0, 0.0, 1.0]), self.grip_width)

    def tip_position(self, cell: SceneAccess) -> np.ndarray:
        """World position of the centre of the part's tip."""
        pos, quat = cell.body_pose("part")
        return pos + quat_to_matrix(quat) @ np.array([0.0, 0.0, self.tip])

    def success(self, cell: SceneAccess) -> bool:
        tip = self.tip_position(cell)
        c, s = math.cos(self.target_yaw), math.sin(self.target_yaw)
        d = tip[:2] - self.target[:2]
        local = np.array([c * d[0] + s * d[1], -s * d[0] + c * d[1]])
        inside = bool(np.all(np.abs(local) <= self.half_hole + 1e-4))
        return inside and tip[2] <= self.top - self.params["insert_fraction"] * self.depth

    def privileged(self, cell: SceneAccess) -> dict[str, Any]:
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

    def object_state_size(self) -> int:
        return 5

    def object_state(self, cell: SceneAccess) -> np.ndarray:
        """The part's tip (3) and its yaw relative to the hole (2)."""
        yaw = yaw_of(cell.body_pose("part")[1]) - self.target_yaw
        return np.concatenate([self._position(self.tip_position(cell)), periodic(yaw, self.symmetry)])



OBJECT_KINDS: dict[str, tuple[str, float, float, float]] = {
    # kind: (geoms XML in the body frame, resting height of the body origin, grasp width, yaw symmetry)
    "duck": (
        '<geom type="sphere" size="0.022" rgba="0.95 0.8 0.1 1" class="object" mass="0.04"/>'
        '<geom type="sphere" size="0.014" pos="0.018 0 0.026" rgba="0.95 0.8 0.1 1" class="object" mass="0.01"/>'
        '<geom type="box" size="0.008 0.006 0.003" pos="0.034 0 0.024" rgba="0.9 0.4 0.1 1" class="object" '
        'mass="0.002"/>',
        0.022, 0.044, math.pi),
    "cube": ('<geom type="box" size="0.015 0.015 0.015" rgba="0.8 0.2 0.2 1" class="object" mass="0.03"/>',
             0.015, 0.03, math.pi / 2),
    "cylinder": ('<geom type="cylinder" size="0.016 0.02" rgba="0.2 0.7 0.3 1" class="object" mass="0.03"/>',
                 0.02, 0.032, 2 * math.pi),
    "block": ('<geom type="box" size="0.02 0.0125 0.0125" rgba="0.3 0.3 0.9 1" class="object" mass="0.03"/>',
              0.0125, 0.025, math.pi),
}
"""Graspable object shapes (primitives), each resting upright on the table."""


class PickPlaceTask(SimTask):
    """Objects on the table go into a container (a bin, or a box whose lid must then be closed).

    Objects spawn at random, non-overlapping positions in ``spawn_low``..``spawn_high`` with random
    yaw. A lid (``lid: true``) is hinged on the container's far (+x) top edge and starts open,
    leaning back past vertical. Success: every object rests inside the container, none is held,
    and the lid (if any) is shut.
    """

    DEFAULTS: ClassVar[dict[str, Any]] = {
        "objects": ["duck"],  # kinds from OBJECT_KINDS; body names are <kind>_<index>
        "container_pos": [0.5, 0.09],
        "container_half": [0.055, 0.055],  # inner half sizes (m)
        "container_height": 0.035,
        "wall": 0.006,
        "spawn_low": [0.44, -0.12],
        "spawn_high": [0.56, -0.04],
        "spawn_yaw": 0.4,
        "min_separation": 0.06,
        "lid": False,
        "lid_open_angle": 1.9,  # rad from shut (π/2 = upright)
        "lid_shut_angle": 0.12,  # success: lid angle below this
        "object_offsets": False,  # object_state also gives each object's position relative to the TCP
    }

    def __init__(self, cfg: TaskConfig) -> None:
        super().__init__(cfg)
        p = self.params
        unknown = [k for k in p["objects"] if k not in OBJECT_KINDS]
        if unknown:
            raise ValueError(f"task {cfg.name}: unknown object kind {unknown[0]!r} (known: {', '.join(OBJECT_KINDS)})")
        self.objects = [f"{kind}_{i}" for i, kind in enumerate(p["objects"])]
        self.kinds = dict(zip(self.objects, p["objects"], strict=True))
        self.graspable = tuple(self.objects)
        self.centre = np.asarray(p["container_pos"], dtype=np.float64)
        self.half = np.asarray(p["container_half"], dtype=np.float64)
        self.height = float(p["container_height"])

    def mjcf(self) -> str:
        p = self.params
        (hx, hy), h, w = self.half, self.height, float(p["wall"])
        colour = "0.55 0.4 0.25 1"
        geoms = [box("container_floor", (0, 0, 0.002), (hx + w, hy + w, 0.002), colour, extra='class="fixture"')]
        for sign in (1.0, -1.0):
            geoms.append(box(f"container_wall_x{sign:+.0f}", (sign * (hx + w / 2), 0, h / 2), (w / 2, hy + w, h / 2),
                             colour, extra='class="fixture"'))
            geoms.append(box(f"container_wall_y{sign:+.0f}", (0, sign * (hy + w / 2), h / 2), (hx, w / 2, h / 2),
                             colour, extra='class="fixture"'))
        xml = [f'<body name="container" pos="{self.centre[0]:.6g} {self.centre[1]:.6g} 0">', *geoms]
        if p["lid"]:
            lx, ly = hx + w, hy + w
            xml += [
                f'<body name="lid" pos="{lx:.6g} 0 {h:.6g}">',
                f'<joint name="lid_hinge" axis="0 1 0" range="0 {p["lid_open_angle"] + 0.05:.4f}" damping="0.002"/>',
                box("lid_plate", (-lx, 0, 0.0025), (lx, ly, 0.0025), "0.45 0.3 0.2 1",
                    extra='class="fixture" mass="0.08"'),
                "</body>",
            ]
        xml.append("</body>")
        for name in self.objects:
            geoms_xml, z, _, _ = OBJECT_KINDS[self.kinds[name]]
            xml.append(f'<body name="{name}" pos="0 0 {z}"><freejoint/>{geoms_xml}</body>')
        return "\n".join(xml)

    def reset(self, cell: SceneAccess, rng: np.random.Generator) -> None:
        p = self.params
        low, high = np.asarray(p["spawn_low"]), np.asarray(p["spawn_high"])
        placed: list[np.ndarray] = []
        for name in self.objects:
            for _ in range(1000):
                xy = rng.uniform(low, high)
                if all(np.linalg.norm(xy - q) >= p["min_separation"] for q in placed):
                    break
            placed.append(xy)
            yaw = rng.uniform(-p["spawn_yaw"], p["spawn_yaw"])
            z = OBJECT_KINDS[self.kinds[name]][1] + 0.0005
            cell.set_free_pose(name, np.array([xy[0], xy[1], z]), quat_from_rpy(np.array([0.0, 0.0, yaw])))
        if p["lid"]:
            cell.set_joint("lid_hinge", float(p["lid_open_angle"]))

    def inside(self, cell: SceneAccess, name: str) -> bool:
        """Whether object ``name`` rests inside the container (not held)."""
        pos = cell.body_pose(name)[0]
        return (cell.held != name and bool(np.all(np.abs(pos[:2] - self.centre) <= self.half))
                and pos[2] < self.height + 0.01)

    def lid_angle(self, cell: SceneAccess) -> float:
        """Lid opening (rad, 0 = shut)."""
        return cell.joint("lid_hinge") if self.params["lid"] else 0.0

    def success(self, cell: SceneAccess) -> bool:
        shut = self.lid_angle(cell) < self.params["lid_shut_angle"]
        return shut and all(self.inside(cell, name) for name in self.objects)

    def privileged(self, cell: SceneAccess) -> dict[str, Any]:
        objects = {}
        for name in self.objects:
            pos, quat = cell.body_pose(name)
            _, height, width, symmetry = OBJECT_KINDS[self.kinds[name]]
            objects[name] = {"pos": pos, "yaw": yaw_of(quat), "symmetry": symmetry, "grasp_z": height,
                             "width": width, "inside": self.inside(cell, name)}
        return {
            "objects": objects,
            "held": cell.held,
            "container": np.array([*self.centre, self.height]),
            "container_half": self.half,
            "lid": self.params["lid"],
            "lid_angle": self.lid_angle(cell),
            "lid_hinge": np.array([self.centre[0] + self.half[0] + self.params["wall"], self.centre[1], self.height]),
        }

    def object_state_size(self) -> int:
        per_object = 9 if self.params["object_offsets"] else 6
        return per_object * len(self.objects) + int(bool(self.params["lid"]))

    def object_state(self, cell: SceneAccess) -> np.ndarray:
        """Per object its position (3), yaw (2), whether it is in the container (1) and, with
        ``object_offsets``, its position relative to the TCP (3, ``position_scale`` units); then the lid angle."""
        parts = []
        tcp = cell.tcp_pose()[0] if self.params["object_offsets"] else None
        for name in self.objects:
            pos, quat = cell.body_pose(name)
            symmetry = OBJECT_KINDS[self.kinds[name]][3]
            parts += [self._position(pos), periodic(yaw_of(quat), symmetry), [float(self.inside(cell, name))]]
            if tcp is not None:
                parts.append((pos - tcp) * self.cfg.observation.position_scale)
        if self.params["lid"]:
            parts.append([self.lid_angle(cell)])
        return np.concatenate(parts)


class CapTask(SimTask):
    """A cap on a fixed bottle turns about the vertical against friction; tighten it to a target angle.

    Tightening is clockwise seen from above (negative yaw). Success: the cap angle is at or past
    ``-tighten_angle``; the cap starts at a random angle in ±``start_angle``.
    """

    DEFAULTS: ClassVar[dict[str, Any]] = {
        "bottle_radius": 0.03,
        "bottle_height": 0.06,
        "cap_radius": 0.018,
        "cap_height": 0.024,
        "friction_torque": 0.3,  # Nm of dry friction on the cap's thread
        "tighten_angle": 1.2,
        "start_angle": 0.3,
    }
    graspable = ("cap",)
    excludes = (("bottle", "cap"),)

    def __init__(self, cfg: TaskConfig) -> None:
        super().__init__(cfg)
        self.cap_z = float(self.params["bottle_height"]) + float(self.params["cap_height"]) / 2

    def mjcf(self) -> str:
        p = self.params
        x, y = self.target[:2]
        r, h, bh = float(p["cap_radius"]), float(p["cap_height"]), float(p["bottle_height"])
        return f"""
<body name="bottle" pos="{x:.6g} {y:.6g} 0">
  <geom name="bottle" type="cylinder" size="{p['bottle_radius']} {bh / 2:.6g}" pos="0 0 {bh / 2:.6g}"
    rgba="0.3 0.6 0.9 0.9" class="fixture"/>
  <body name="cap" pos="0 0 {self.cap_z:.6g}">
    <joint name="cap_hinge" axis="0 0 1" frictionloss="{p['friction_torque']}" damping="0.02" armature="0.001"/>
    <geom type="cylinder" size="{r} {h / 2:.6g}" rgba="0.9 0.9 0.9 1" class="object" mass="0.01"/>
    <geom type="box" size="{r * 0.9:.6g} 0.002 0.002" pos="0 0 {h / 2:.6g}" rgba="0.8 0.1 0.1 1" class="visual"/>
  </body>
</body>"""

    def reset(self, cell: SceneAccess, rng: np.random.Generator) -> None:
        start = float(self.params["start_angle"])
        cell.set_joint("cap_hinge", float(rng.uniform(-start, start)))

    def success(self, cell: SceneAccess) -> bool:
        return cell.joint("cap_hinge") <= -float(self.params["tighten_angle"])

    def privileged(self, cell: SceneAccess) -> dict[str, Any]:
        return {
            "cap": np.array([self.target[0], self.target[1], self.cap_z]),
            "angle": cell.joint("cap_hinge"),
            "goal_angle": -float(self.params["tighten_angle"]),
            "held": cell.held == "cap",
        }

    def object_state_size(self) -> int:
        return 2

    def object_state(self, cell: SceneAccess) -> np.ndarray:
        """The cap's angle (sine, cosine)."""
        return periodic(cell.joint("cap_hinge"), 2 * math.pi)


TASKS: dict[str, type[SimTask]] = {
    "peg_insertion": InsertionTask,
    "charger_plugging": InsertionTask,
    "pick_and_place": PickPlaceTask,
    "table_cleanup": PickPlaceTask,
    "cap_tightening": CapTask,
}
"""Scene class per task name (the task YAML's ``name``)."""


def make_task(cfg: TaskConfig) -> SimTask:
    """The scene of a task config."""
    if cfg.name not in TASKS:
        raise ValueError(f"no sim scene for task {cfg.name!r} (known: {', '.join(sorted(TASKS))})")
    return TASKS[cfg.name](cfg)

