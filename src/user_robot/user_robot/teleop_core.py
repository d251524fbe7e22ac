"""SpaceMouse → normalized action and intervention state (pure; the teleop node feeds it topics).

Per tick: each action axis ``k`` reads twist axis ``axis_map[k]`` (order linear x, y, z, angular
x, y, z), divides by ``input_full_scale``, zeroes it inside ``deadband``, multiplies by
``axis_scale[k]`` and clips to [-1, 1]. The human has control while any axis is non-zero or a
control button (any button but the label buttons) is held, and for ``hold_s`` after. Input
older than ``input_timeout_s`` counts as zero, so a lost device cannot keep driving the arm (buttons
are published on change only, so they stay held until a joy message releases them). With
7 action dims the gripper channel is +1 after a close press and -1 after an open press (0 before
either). A success/failure label (button press or :meth:`TeleopCore.label`) is emitted once, on the
next tick; a label given before the previous one was emitted replaces it (the last word counts).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from user_robot.robot_config import TeleopConfig

LABEL_NONE, LABEL_SUCCESS, LABEL_FAILURE = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class InterventionState:
    """What the teleop node publishes at one tick."""

    active: bool
    action: np.ndarray  # float32, task action dims
    label: int = LABEL_NONE


class TeleopCore:
    """SpaceMouse state machine; times are seconds on the node clock."""

    def __init__(self, cfg: TeleopConfig, dims: int) -> None:
        if dims not in (6, 7):
            raise ValueError(f"action dims must be 6 or 7, got {dims}")
        if sorted(cfg.axis_map) != list(range(6)):
            raise ValueError(f"teleop.axis_map must be a permutation of 0..5, got {cfg.axis_map}")
        self.cfg = cfg
        self.dims = dims
        self._axes = np.zeros(6)
        self._axes_at = -np.inf
        self._buttons: list[int] = []
        self._last_input = -np.inf
        self._gripper = 0.0
        self._pending_label = LABEL_NONE

    def twist(self, values: list[float], now: float) -> None:
        """A twist sample: ``[lin x, lin y, lin z, ang x, ang y, ang z]``."""
        raw = np.asarray(values, dtype=np.float64)
        self._axes = np.where(np.isfinite(raw), raw, 0.0)
        self._axes_at = now

    def joy(self, buttons: list[int]) -> None:
        """A joy sample's buttons (spacenav publishes them on change; its axes duplicate the twist)."""
        cfg = self.cfg
        pressed = [i for i, b in enumerate(buttons) if b and (i >= len(self._buttons) or not self._buttons[i])]
        for i in pressed:
            if i == cfg.button_close:
                self._gripper = 1.0
            elif i == cfg.button_open:
                self._gripper = -1.0
            elif i == cfg.button_success:
                self._pending_label = LABEL_SUCCESS
            elif i == cfg.button_failure:
                self._pending_label = LABEL_FAILURE
        self._buttons = list(buttons)

    def label(self, label: int) -> None:
        """Queue a success/failure label (from a service or keyboard) for the next tick."""
        if label not in (LABEL_SUCCESS, LABEL_FAILURE):
            raise ValueError(f"label must be {LABEL_SUCCESS} (success) or {LABEL_FAILURE} (failure), got {label}")
        self._pending_label = label

    def axes(self, now: float) -> np.ndarray:
        """The six motion channels in [-1, 1] after mapping, deadband and scaling."""
        cfg = self.cfg
        if now - self._axes_at > cfg.input_timeout_s:
            return np.zeros(6)
        normalized = self._axes[list(cfg.axis_map)] / cfg.input_full_scale
        normalized[np.abs(normalized) <= cfg.deadband] = 0.0
        return np.clip(normalized * np.asarray(cfg.axis_scale), -1.0, 1.0)

    def _control_button_held(self) -> bool:
        labels = (self.cfg.button_success, self.cfg.button_failure)
        return any(b and i not in labels for i, b in enumerate(self._buttons))

    def tick(self, now: float) -> InterventionState:
        """The intervention state at ``now``; consumes a pending label."""
        axes = self.axes(now)
        if np.any(axes != 0.0) or self._control_button_held():
            self._last_input = now
        active = now - self._last_input <= self.cfg.hold_s
        action = np.append(axes, self._gripper) if self.dims == 7 else axes
        label, self._pending_label = self._pending_label, LABEL_NONE
        return InterventionState(active, action.astype(np.float32), label)
