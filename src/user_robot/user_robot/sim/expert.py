"""Scripted experts: a virtual human with a SpaceMouse, per task, from privileged sim state.

An expert looks at the cell's ground truth (object poses, joint angles), picks a goal pose for
the TCP and a gripper intent, and expresses the motion as a normalized action with
:func:`~user_robot.action_mapping.action_toward` (the inverse of the bridge's mapping). The
action then travels the same path a human's would: :class:`VirtualSpaceMouse` turns it into the
spacenav Twist axes and Joy buttons that the teleop node reads.

:class:`ExpertSchedule` decides when the expert has the SpaceMouse: always, never, or part of
the time (per-episode takeover probability and on/off periods), for intervention tests; and
:class:`SimulatedHuman` takes it the way a person supervising HG-DAgger does: when the policy goes
wrong.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from user_robot.action_mapping import action_toward
from user_robot.pose_math import quat_conjugate, quat_from_rotvec, quat_multiply, rotvec_from_quat
from user_robot.robot_config import TeleopConfig
from user_robot.safety import Workspace
from user_robot.task_config import TaskConfig

if TYPE_CHECKING:
    from user_robot.sim.cell import SimCell

CLOSE, OPEN, KEEP = 1, -1, 0
"""Gripper intents."""

COMMON_DEFAULTS: dict[str, Any] = {
    "gain": 0.5,
    "human_window": 10,
    "human_min_progress": 0.01,
    "human_progress_fraction": 0.0,
    "human_tolerance": 0.015,
    "human_handback": 15,
    "human_stall_ticks": 30,
    "human_phase_ticks": 0,
}
"""Expert settings shared by every task: ``gain``, the fraction of the remaining way moved per tick;
``human_*``, the simulated human's thresholds (:class:`SimulatedHuman`; ``human_stall_ticks`` and
``human_phase_ticks`` 0 are off)."""


def wrap_period(angle: float, period: float) -> float:
    """``angle`` wrapped to [-period/2, period/2) (yaw error of a part with rotational symmetry)."""
    return (angle + period / 2) % period - period / 2


class Expert:
    """Base: ``goal(cell)`` gives (goal xyz, goal relative yaw, gripper intent); ``act`` makes the action.

    Experts are phase machines: ``phase`` names the current phase, ``ticks`` counts control ticks in it.
    """

    DEFAULTS: ClassVar[dict[str, Any]] = {}
    START_PHASE: ClassVar[str] = "start"

    def __init__(self, task: TaskConfig) -> None:
        defaults = {**COMMON_DEFAULTS, **self.DEFAULTS}
        unknown = sorted(set(task.expert) - set(defaults))
        if unknown:
            allowed = ", ".join(defaults)
            raise ValueError(f"task {task.name}: unknown expert key {unknown[0]!r} (allowed: {allowed})")
        self.task = task
        self.p = {**defaults, **task.expert}
        self.workspace = Workspace(task.target, task.workspace)
        self.target = np.asarray(task.target.xyz, dtype=np.float64)
        self.reset()

    def reset(self) -> None:
        """Forget the episode's progress: back to the first phase."""
        self.phase, self.ticks = self.START_PHASE, 0
        self.last_goal = np.zeros(3)  # the (clipped) TCP goal of the last act()

    def _go(self, phase: str) -> None:
        self.phase, self.ticks = phase, 0

    def goal(self, cell: SimCell) -> tuple[np.ndarray, float, int]:
        """TCP goal position, goal yaw relative to the target orientation, gripper intent."""
        raise NotImplementedError

    def act(self, cell: SimCell) -> tuple[np.ndarray, int]:
        """The normalized action toward the goal (gripper channel 0) and the gripper intent.

        Each tick moves ``gain`` of the way to the goal (a human's smooth approach; with gain < 1 the
        loop stays stable when the teleop path delays actions by a tick or two).
        """
        xyz, quat = cell.tcp_pose()
        self.ticks += 1
        goal_xyz, goal_yaw, grip = self.goal(cell)
        gain = self.p["gain"]
        self.last_goal = self.workspace.clip_xyz(goal_xyz)
        goal_xyz = xyz + gain * (self.last_goal - xyz)
        goal_quat = self.workspace.from_relative_rpy(np.array([0.0, 0.0, goal_yaw]))
        turn = rotvec_from_quat(quat_multiply(goal_quat, quat_conjugate(quat)))
        goal_quat = quat_multiply(quat_from_rotvec(gain * turn), quat)
        return action_toward(xyz, quat, goal_xyz, goal_quat, self.task.action), grip

    def judged_offset(self, offset: np.ndarray) -> np.ndarray:
        """The part of the way to the goal (``goal - tcp``) the simulated human judges progress on: all of it."""
        return offset

    def relative_yaw(self, cell: SimCell) -> float:
        """The TCP's yaw relative to the target orientation."""
        return float(self.workspace.relative_rpy(cell.tcp_pose()[1])[2])


class InsertionExpert(Expert):
    """Align the part's tip over the hole (position and yaw), hover, then push it in."""

    DEFAULTS: ClassVar[dict[str, Any]] = {"hover": 0.004, "align_xy": 0.0008, "align_yaw": 0.01, "push": 0.004}

    START_PHASE: ClassVar[str] = "align"

    def goal(self, cell: SimCell) -> tuple[np.ndarray, float, int]:
        p, s = self.p, cell.privileged()
        xyz = cell.tcp_pose()[0]
        dyaw = wrap_period(s["part_yaw"] - s["hole_yaw"], s["symmetry"])
        d_xy = s["hole_top"][:2] - s["tip"][:2]
        above = float(s["tip"][2] - s["hole_top"][2])
        aligned = np.linalg.norm(d_xy) < p["align_xy"] and abs(dyaw) < p["align_yaw"]
        if aligned and above < p["hover"] + 0.002:
            self._go("insert")
        elif self.phase == "insert" and above > 0.001 and np.linalg.norm(d_xy) > 3 * p["align_xy"]:
            self._go("align")
        inserting = self.phase == "insert"
        dz = (s["hole_bottom"] - p["push"] if inserting else s["hole_top"][2] + p["hover"]) - s["tip"][2]
        return xyz + np.array([d_xy[0], d_xy[1], dz]), self.relative_yaw(cell) - dyaw, KEEP


def _yaw_goal(yaw: float, symmetry: float, target_yaw: float) -> float:
    """The grasp yaw relative to the target orientation, nearest to it over the object's symmetry."""
    return wrap_period(yaw - target_yaw, symmetry) if symmetry < 2 * math.pi else 0.0


class PickPlaceExpert(Expert):
    """Per object: above it, down, close, lift, over its slot in the container, down, open; then the lid.

    The lid (hinged on the container's far edge, leaning open) is pushed from behind its top,
    toward the robot, until it passes upright and falls shut.
    """

    DEFAULTS: ClassVar[dict[str, Any]] = {
        "carry_height": 0.08,  # m above the target height while carrying
        "grasp_retry_ticks": 15,  # reopen and retry when a grasp has not held after this many ticks
        "lid_push_height": 0.07,  # m above the container rim where the fingers push the lid
        "drop_spacing": 0.03,  # m between the objects' drop slots along x
        "drop_stagger": 0.025,  # m alternating offset of the slots along y
        "approach_near": 0.01,  # m: within this of the object in xy, align where it is (no climb to carry)
        "approach_hover": 0.005,  # m above the grasp height the near alignment keeps at least
        "approach_funnel": 0.0,  # beyond approach_near, the lowest approach height rises this many m per m
        # of xy distance (a cone over the object, capped at carry height); 0: off, always at carry height
        "object_order": "listed",  # which object next: the task's list order, or the one nearest the TCP (xy)
        "human_approach_xy": False,  # the simulated human judges the approach by its xy way alone: a
        # policy coming down toward the object early is not drifting while it closes in over the table
    }

    START_PHASE: ClassVar[str] = "approach"

    def __init__(self, task: TaskConfig) -> None:
        super().__init__(task)
        if self.p["object_order"] not in ("listed", "nearest"):
            raise ValueError(f"task {task.name}: expert.object_order must be listed or nearest, "
                             f"got {self.p['object_order']!r}")

    def goal(self, cell: SimCell) -> tuple[np.ndarray, float, int]:
        p, s = self.p, cell.privileged()
        xyz = cell.tcp_pose()[0]
        carry = self.target[2] + p["carry_height"]
        over = {n: bool(np.all(np.abs(o["pos"][:2] - s["container"][:2]) <= s["container_half"]))
                for n, o in s["objects"].items()}
        pending = [n for n, o in s["objects"].items() if not o["inside"] and not over[n] and s["held"] != n]
        if p["object_order"] == "nearest":  # (whichever object a policy heads for is the one the human judges)
            pending.sort(key=lambda n: float(np.linalg.norm((s["objects"][n]["pos"] - xyz)[:2])))
        name = s["held"] or (pending[0] if pending else None)
        if name is None and not all(o["inside"] for o in s["objects"].values()):
            return xyz, 0.0, OPEN  # something is still falling into the container
        if name is None:
            return self._lid(s, xyz)
        obj = s["objects"][name]
        yaw = _yaw_goal(obj["yaw"], obj["symmetry"], float(self.task.target.rpy[2]))
        grasp = self.workspace.clip_xyz(np.array([obj["pos"][0], obj["pos"][1], obj["grasp_z"]]))
        # Near the object it aligns at its height (kept a hover above the grasp): a supervisor that sent a
        # policy which came down beside the object back up to carry height would teach "up" where the demos
        # teach "down", and a clone learns to hover between them. With a funnel, "near" widens into a cone.
        above = np.array([*grasp[:2], np.clip(xyz[2], self._approach_floor(grasp, xyz, carry), carry)])
        index = list(s["objects"]).index(name)
        stagger = 0.0 if len(s["objects"]) == 1 else p["drop_stagger"] * (1 if index % 2 else -1)
        slot = np.array([(index - (len(s["objects"]) - 1) / 2) * p["drop_spacing"], stagger])
        drop = np.array([*(s["container"][:2] + slot), carry])
        release = np.array([*drop[:2], s["container"][2] + obj["grasp_z"] + 0.012])
        if self.phase == "approach":
            if np.linalg.norm((above - xyz)[:2]) < 0.004 and abs(self.relative_yaw(cell) - yaw) < 0.05:
                self._go("descend")
            return above, yaw, OPEN
        if self.phase == "descend":
            if abs(xyz[2] - grasp[2]) < 0.004:
                self._go("close")
            return grasp, yaw, OPEN
        if self.phase == "close":
            if s["held"] == name:
                self._go("carry")
            elif self.ticks > p["grasp_retry_ticks"]:
                self._go("approach")
            return grasp, yaw, CLOSE
        if self.phase == "carry":
            if s["held"] is None:
                self._go("approach")
            elif np.linalg.norm(drop - xyz) < 0.01:
                self._go("lower")
            lifted = xyz[2] > carry - 0.02
            return (drop if lifted else np.array([xyz[0], xyz[1], carry])), 0.0, CLOSE
        if self.phase == "lower":
            if s["held"] is None:
                self._go("approach")
            elif abs(xyz[2] - release[2]) < 0.005:
                self._go("release")
            return release, 0.0, CLOSE
        if s["held"] is None and self.ticks > 2:
            self._go("approach")
        return release, 0.0, OPEN

    def judged_offset(self, offset: np.ndarray) -> np.ndarray:
        """With ``human_approach_xy``, the approach's height is the expert's own path, not judged."""
        if self.phase == "approach" and self.p["human_approach_xy"]:
            return np.array([offset[0], offset[1], 0.0])
        return offset

    def _approach_floor(self, grasp: np.ndarray, xyz: np.ndarray, carry: float) -> float:
        """The lowest height the approach accepts at the TCP's xy distance from the grasp (carry: none lower)."""
        p, distance = self.p, float(np.linalg.norm((grasp - xyz)[:2]))
        if distance < p["approach_near"]:
            return grasp[2] + p["approach_hover"]
        if p["approach_funnel"] <= 0:
            return carry
        return min(carry, grasp[2] + p["approach_hover"] + p["approach_funnel"] * (distance - p["approach_near"]))

    def _lid(self, s: dict[str, Any], xyz: np.ndarray) -> tuple[np.ndarray, float, int]:
        if not s["lid"] or s["lid_angle"] < 0.05:
            return xyz + np.array([0.0, 0.0, 0.01]), 0.0, KEEP
        hinge, height = s["lid_hinge"], s["lid_hinge"][2] + self.p["lid_push_height"]
        behind = np.array([hinge[0] + 0.07, hinge[1], height])
        if self.phase not in ("lid_above", "lid_down", "lid_push"):
            self._go("lid_above")
        if self.phase == "lid_above":
            goal = behind + np.array([0.0, 0.0, 0.04])
            if np.linalg.norm(goal - xyz) < 0.01:
                self._go("lid_down")
            return goal, 0.0, CLOSE
        if self.phase == "lid_down":
            if np.linalg.norm(behind - xyz) < 0.01:
                self._go("lid_push")
            return behind, 0.0, CLOSE
        if s["lid_angle"] > 1.2 and self.ticks > 30:
            self._go("lid_above")
        return np.array([hinge[0] - 0.03, hinge[1], height]), 0.0, CLOSE


class CapExpert(Expert):
    """Grasp the cap turned to +``turn_yaw``, turn to −``turn_yaw``, let go; repeat until tight."""

    DEFAULTS: ClassVar[dict[str, Any]] = {"turn_yaw": 0.85, "hover": 0.02, "grasp_retry_ticks": 10}

    START_PHASE: ClassVar[str] = "pre"

    def goal(self, cell: SimCell) -> tuple[np.ndarray, float, int]:
        p, s = self.p, cell.privileged()
        xyz = cell.tcp_pose()[0]
        yaw = self.relative_yaw(cell)
        grasp = s["cap"] + np.array([0.0, 0.0, self.target[2] - s["cap"][2]])
        above = grasp + np.array([0.0, 0.0, p["hover"]])
        turn = p["turn_yaw"]
        if s["angle"] <= s["goal_angle"]:
            return above, yaw, OPEN
        if self.phase == "pre":
            if np.linalg.norm(above - xyz) < 0.003 and abs(yaw - turn) < 0.05:
                self._go("descend")
            return above, turn, OPEN
        if self.phase == "descend":
            if abs(xyz[2] - grasp[2]) < 0.003:
                self._go("close")
            return grasp, turn, OPEN
        if self.phase == "close":
            if s["held"]:
                self._go("turn")
            elif self.ticks > p["grasp_retry_ticks"]:
                self._go("pre")
            return grasp, turn, CLOSE
        if self.phase == "turn":
            if not s["held"] or yaw < -turn + 0.05:
                self._go("release")
            return grasp, -turn, CLOSE
        if not s["held"] and self.ticks > 2:
            self._go("pre")
        return grasp + np.array([0.0, 0.0, 0.01]) if not s["held"] else grasp, yaw, OPEN


EXPERTS: dict[str, type[Expert]] = {
    "peg_insertion": InsertionExpert,
    "charger_plugging": InsertionExpert,
    "pick_and_place": PickPlaceExpert,
    "table_cleanup": PickPlaceExpert,
    "cap_tightening": CapExpert,
}
"""Scripted expert class per task name."""


def make_expert(task: TaskConfig) -> Expert:
    """The scripted expert of a task."""
    if task.name not in EXPERTS:
        raise ValueError(f"no scripted expert for task {task.name!r} (known: {', '.join(sorted(EXPERTS))})")
    return EXPERTS[task.name](task)


NUDGE_FLOOR = 0.2
NUDGE = 1.2


class VirtualSpaceMouse:
    """Turns an expert's normalized action and gripper intent into spacenav Twist axes and Joy buttons.

    The inverse of the teleop mapping (:mod:`user_robot.teleop_core`): action axis ``k`` is twist
    axis ``axis_map[k]``, divided by ``axis_scale[k]``, times ``input_full_scale``. Like a person,
    it pushes a little past the deadband when it means a small motion (inputs between
    ``NUDGE_FLOOR`` and 1 deadband become ``NUDGE`` deadbands). A change of gripper intent is one
    button press (held for one message, then released).
    """

    def __init__(self, cfg: TeleopConfig) -> None:
        self.cfg = cfg
        self.reset()

    def reset(self) -> None:
        """New episode: the next gripper intent is pressed whatever the last one was."""
        self.intent = KEEP
        self._pressed: int | None = None

    def twist(self, action: np.ndarray) -> list[float]:
        """Twist ``[lin x, lin y, lin z, ang x, ang y, ang z]`` for the first six action channels."""
        cfg, out = self.cfg, [0.0] * 6
        for k, axis in enumerate(cfg.axis_map):
            value = float(action[k]) / cfg.axis_scale[k]
            if NUDGE_FLOOR * cfg.deadband < abs(value) <= cfg.deadband:
                value = math.copysign(NUDGE * cfg.deadband, value)
            out[axis] = value * cfg.input_full_scale
        return out

    def buttons(self, intent: int) -> list[int]:
        """The Joy buttons for this tick: a press when the intent changes, released on the next tick."""
        n = max(self.cfg.button_close, self.cfg.button_open) + 1
        out = [0] * n
        if intent != KEEP and intent != self.intent and self._pressed is None:
            self._pressed = self.cfg.button_close if intent == CLOSE else self.cfg.button_open
            self.intent = intent
            out[self._pressed] = 1
        else:
            self._pressed = None
        return out


@dataclasses.dataclass
class ExpertSchedule:
    """When the expert has the SpaceMouse.

    ``mode``: ``off``, ``always`` or ``partial``. In ``partial`` mode an episode is taken over with
    probability ``takeover_probability``; within it the expert alternates ``on_steps`` active and
    ``off_steps`` passive control ticks, starting at a random phase. Seeded per (seed, episode).
    """

    mode: str = "off"
    takeover_probability: float = 0.5
    on_steps: int = 10
    off_steps: int = 10

    def __post_init__(self) -> None:
        if self.mode not in ("off", "always", "partial"):
            raise ValueError(f"expert mode must be off, always or partial, got {self.mode!r}")
        if not 0.0 <= self.takeover_probability <= 1.0:
            raise ValueError("takeover_probability must lie in [0, 1]")
        if self.on_steps < 1 or self.off_steps < 0:
            raise ValueError("on_steps must be >= 1 and off_steps >= 0")
        self._episode_on = self.mode == "always"
        self._phase = 0

    def start_episode(self, seed: int, episode: int) -> None:
        """Draw this episode's takeover decision and phase."""
        rng = np.random.default_rng([seed, episode, 2])
        takeover, phase = rng.random(), int(rng.integers(0, self.on_steps + self.off_steps))
        self._episode_on = self.mode == "always" or (self.mode == "partial" and takeover < self.takeover_probability)
        self._phase = phase

    def active(self, step: int) -> bool:
        """Whether the expert drives at control tick ``step`` of the episode."""
        if not self._episode_on:
            return False
        if self.mode == "always":
            return True
        return (step + self._phase) % (self.on_steps + self.off_steps) < self.on_steps


class SimulatedHuman:
    """The scripted expert watching the policy, as a person supervising HG-DAgger: it takes the SpaceMouse
    when the TCP has come less than ``human_min_progress`` (m; see :meth:`required_progress`) closer to
    where the expert would take it over the last ``human_window`` control ticks while still farther than
    ``human_tolerance`` from it
    (drifting away, or stalled) or, near it, while the expert's phase has not advanced for
    ``human_stall_ticks`` (hovering where the expert would have moved on: the next sub-goal is never
    reached), drives for ``human_handback`` ticks, and lets go. With ``human_phase_ticks`` it judges the task's
    progress instead of the way: it takes over only when the expert's sub-goal (grasp this object, carry it
    over the box, ...) has not been reached in that many ticks. The thresholds are
    the task YAML's ``expert:`` keys. The expert follows the episode all along (its phase machine sees
    every tick), so its goal is the one it would pursue from here."""

    def __init__(self, expert: Expert) -> None:
        self.expert = expert
        self.window = int(expert.p["human_window"])
        self.min_progress = float(expert.p["human_min_progress"])
        self.progress_fraction = float(expert.p["human_progress_fraction"])
        self.tolerance = float(expert.p["human_tolerance"])
        self.handback = int(expert.p["human_handback"])
        self.stall_ticks = int(expert.p["human_stall_ticks"])
        self.phase_ticks = int(expert.p["human_phase_ticks"])
        if self.window < 1 or self.handback < 1 or min(self.min_progress, self.tolerance, self.stall_ticks,
                                                        self.progress_fraction, self.phase_ticks) < 0:
            raise ValueError(f"task {expert.task.name}: need human_window, human_handback >= 1 and human_min_progress, "
                             f"human_progress_fraction, human_tolerance, human_stall_ticks, human_phase_ticks >= 0")
        self.takeovers = 0  # (over all episodes)
        self.reason = ""  # why it took the newest takeover (phase, distance, progress)
        self.driven = 0  # control ticks it drove (over all episodes)
        self.reset()

    def reset(self) -> None:
        """Episode start: not driving, nothing watched yet."""
        self.driving = 0  # ticks left before handing back (0: the policy drives)
        self.positions: list[np.ndarray] = []  # the TCP over the last window
        self.phase = ""

    def required_progress(self, distance: float) -> float:
        """The progress (m over the window) below which the TCP ``distance`` from the goal counts as drifting:
        ``human_min_progress``, or with ``human_progress_fraction`` that fraction of the way left beyond the
        tolerance where less (closing in slowly near the goal is not drifting)."""
        if self.progress_fraction <= 0:
            return self.min_progress
        return min(self.min_progress, self.progress_fraction * max(0.0, distance - self.tolerance))

    def tick(self, cell: SimCell) -> tuple[np.ndarray, int] | None:
        """Watch one control tick: the expert's (action, gripper intent) while it drives, else None."""
        action, grip = self.expert.act(cell)
        if self.expert.phase != self.phase:  # a new sub-goal: progress is measured afresh
            self.phase, self.positions = self.expert.phase, []
        self.positions = [*self.positions[-self.window:], cell.tcp_pose()[0].copy()]
        if self.driving:
            self.driving -= 1
            if not self.driving:
                self.positions = []
            self.driven += 1
            return action, grip
        if self.phase_ticks:
            return self._judge_phase(action, grip)
        goal = self.expert.last_goal  # (progress toward where it wants to go now: its goal may move)
        then, now = (float(np.linalg.norm(self.expert.judged_offset(goal - p)))
                     for p in (self.positions[0], self.positions[-1]))
        stalled = 0 < self.stall_ticks < self.expert.ticks
        judged = len(self.positions) > self.window and then - now < self.required_progress(now)
        if not (judged and (now > self.tolerance or stalled)):
            return None
        self._take_over()
        stall = f", {self.expert.ticks} ticks in the phase" if now <= self.tolerance else ""
        self.reason = (f"phase {self.phase}, TCP {np.round(self.positions[-1], 3)}, its goal {np.round(goal, 3)}, "
                       f"{now:.3f} m from it, {then - now:+.3f} m closer over {self.window} ticks{stall}")
        return action, grip

    def _take_over(self) -> None:
        self.driving, self.takeovers, self.driven = self.handback - 1, self.takeovers + 1, self.driven + 1

    def _judge_phase(self, action: np.ndarray, grip: int) -> tuple[np.ndarray, int] | None:
        """``human_phase_ticks``: the policy's way is its own; the human takes over only once the task's
        current step (the expert's sub-goal) has not been reached in that many ticks."""
        if self.expert.ticks < self.phase_ticks:
            return None
        self._take_over()
        self.reason = f"phase {self.phase}, {self.expert.ticks} ticks in it (limit {self.phase_ticks})"
        return action, grip
