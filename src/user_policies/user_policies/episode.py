"""One episode of one robot as a pure state machine: observation in, command and transitions out.

At every control tick the actor calls :meth:`Episode.tick` with the newest observation. The
episode closes the previous step (its reward is known only now, after the arm moved), decides
whether the episode ends, and otherwise picks the action to execute: the human's when an
intervention is active, else the policy's. A policy returns an action chunk (H × A); the episode
executes its rows in order, one per tick, and asks the policy again once the chunk is used up (or
at once after a human intervention). Every executed step records the weights version of the chunk
that produced it. The records it returns follow the Transition message
protocol: one record per executed step, then one final record that carries only the final
observation with ``terminated`` or ``truncated`` and the reason.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable

import numpy as np

from user_policies.reward import LABEL_FAILURE, LABEL_SUCCESS, RewardTracker
from user_robot.contracts import (
    END_ABORTED,
    END_FAILURE,
    END_NONE,
    END_STALE_INPUT,
    END_SUCCESS,
    END_TIME_LIMIT,
    TRUTH_UNKNOWN,
)


@dataclasses.dataclass(frozen=True)
class Observation:
    """What the actor sees at one tick."""

    state: np.ndarray  # float32 state vector
    images: dict[str, np.ndarray]  # camera name -> uint8 HxWx3 (empty for state-only policies)
    xyz: np.ndarray  # TCP position (for dense reward)
    solved: bool  # the task's success check on this observation
    gripper_closed: bool | None = None
    stamp: float = 0.0
    truth: int = TRUTH_UNKNOWN  # the sim cell's ground truth for this observation, where one runs


@dataclasses.dataclass(frozen=True)
class StepRecord:
    """One Transition message worth of data (the node fills provenance and converts to ROS)."""

    step: int
    obs: Observation
    action: np.ndarray  # empty on the final record
    reward: float
    policy_version: int
    intervened: bool = False
    intervention_action: np.ndarray | None = None
    terminated: bool = False
    truncated: bool = False
    end_reason: int = END_NONE


@dataclasses.dataclass
class TickResult:
    """What to do after a tick: the action to command (None = nothing) and records to publish."""

    action: np.ndarray | None
    records: list[StepRecord]
    ended: bool = False
    policy_version: int = 0  # version that produced ``action`` (0 for human or untrained)
    intervened: bool = False


@dataclasses.dataclass
class EpisodeSummary:
    """Running totals, reported in the episode result."""

    episode_return: float = 0.0
    length: int = 0
    intervened_steps: int = 0
    success: bool = False
    end_reason: int = END_NONE
    policy_versions: set[int] = dataclasses.field(default_factory=set)
    nonfinite_actions: int = 0
    truth: int = TRUTH_UNKNOWN  # the sim cell's ground truth on the final observation


PolicyFn = Callable[[Observation], tuple[np.ndarray, int]]
"""Returns the policy's action chunk (H × A, or one action of A) for an observation and the weights
version that produced it. The episode executes every row before it calls the policy again."""


class Episode:
    """The episode state machine (see module docstring)."""

    def __init__(self, tracker: RewardTracker, action_dim: int, max_steps: int) -> None:
        self.tracker = tracker
        self.action_dim = action_dim
        self.max_steps = max_steps
        self.summary = EpisodeSummary()
        self._pending: StepRecord | None = None  # executed, reward not yet known
        self._planned: collections.deque[tuple[np.ndarray, int]] = collections.deque()  # (action, version) to run
        self.ended = False

    def tick(
        self,
        obs: Observation | None,
        policy: PolicyFn,
        intervention: np.ndarray | None = None,
        label: int = 0,
    ) -> TickResult:
        """Advance one control tick. ``obs`` None means an input is stale: the episode is truncated."""
        if self.ended:
            return TickResult(None, [], ended=True)
        if obs is None:
            return self._end_stale()
        records: list[StepRecord] = []
        if label == LABEL_SUCCESS:  # a person's success label marks the frame it was given for
            obs = dataclasses.replace(obs, solved=True)
        pending = self._pending
        if pending is not None:
            outcome = self.tracker.step(obs.solved, obs.xyz, label, obs.gripper_closed)
            records.append(dataclasses.replace(pending, reward=outcome.reward))
            self.summary.episode_return += outcome.reward
            self.summary.length += 1
            if outcome.terminated or self.summary.length >= self.max_steps:
                reason = END_SUCCESS if outcome.success else END_FAILURE if outcome.failure else END_TIME_LIMIT
                self.summary.success = outcome.success
                records.append(self._final(obs, pending.step + 1, reason, terminated=outcome.terminated))
                return TickResult(None, records, ended=True)
        elif label == LABEL_FAILURE:
            records.append(self._final(obs, 0, END_FAILURE, terminated=True))
            return TickResult(None, records, ended=True)
        action, version, intervened = self._choose(obs, policy, intervention)
        step = 0 if pending is None else pending.step + 1
        self._pending = StepRecord(
            step=step,
            obs=obs,
            action=action,
            reward=0.0,
            policy_version=version,
            intervened=intervened,
            intervention_action=action if intervened else None,
        )
        return TickResult(action, records, policy_version=version, intervened=intervened)

    def abort(self, reason: int = END_ABORTED) -> list[StepRecord]:
        """End now (goal cancelled, node shutdown, arm error): the final record repeats the last observation."""
        if self.ended or self._pending is None:
            self.ended = True
            self.summary.end_reason = reason
            return []
        pending = self._pending
        return [self._final(pending.obs, pending.step, reason, terminated=False)]

    def _end_stale(self) -> TickResult:
        return TickResult(None, self.abort(END_STALE_INPUT), ended=True)

    def _choose(
        self, obs: Observation, policy: PolicyFn, intervention: np.ndarray | None
    ) -> tuple[np.ndarray, int, bool]:
        if intervention is not None:
            self.summary.intervened_steps += 1
            self._planned.clear()  # the human moved the arm: the rest of the chunk is stale
            return self._sanitize(intervention), 0, True
        if not self._planned:
            chunk, version = policy(obs)
            chunk = np.asarray(chunk, dtype=np.float32)
            if chunk.ndim > 2 or chunk.size == 0 or chunk.shape[-1] != self.action_dim:
                raise ValueError(f"policy returned shape {chunk.shape}; the task expects (H, {self.action_dim})")
            self._planned.extend((row, int(version)) for row in chunk.reshape(-1, self.action_dim))
            self.summary.policy_versions.add(int(version))
        action, version = self._planned.popleft()
        return self._sanitize(action), version, False

    def _sanitize(self, action: np.ndarray) -> np.ndarray:
        """NaN/inf never reach the arm: a non-finite action becomes 'hold' (zeros)."""
        action = np.asarray(action, dtype=np.float32).reshape(-1)
        if action.shape != (self.action_dim,):
            raise ValueError(f"action has {action.size} entries, the task expects {self.action_dim}")
        if not np.isfinite(action).all():
            self.summary.nonfinite_actions += 1
            return np.zeros(self.action_dim, dtype=np.float32)
        return np.clip(action, -1.0, 1.0)

    def _final(self, obs: Observation, step: int, reason: int, *, terminated: bool) -> StepRecord:
        self.ended = True
        self._pending = None
        self.summary.end_reason = reason
        self.summary.truth = obs.truth
        return StepRecord(
            step=step,
            obs=obs,
            action=np.zeros(0, dtype=np.float32),
            reward=0.0,
            policy_version=0,
            terminated=terminated,
            truncated=not terminated,
            end_reason=reason,
        )
