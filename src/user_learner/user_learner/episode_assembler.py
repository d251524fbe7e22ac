"""Rebuild full transitions from the per-step Transition message stream (pure; no ROS).

Protocol (``user_interfaces/msg/Transition``): message ``t`` of an episode carries the observation at
step ``t``, the action executed there and the reward it earned; the episode ends with one extra message
carrying only the final observation, with ``terminated`` or ``truncated`` set. So transition ``t`` is
``(obs_t, action_t, reward_t, obs_{t+1}, done)`` with ``done`` true only when message ``t+1`` is the
final one and ``terminated`` (a truncated episode bootstraps). Robots and episodes may interleave;
a gap in step indices drops the transition that would span it (counted in :attr:`EpisodeAssembler.dropped`).
A robot starting a new episode abandons its open one; so does evicting the oldest of too many open episodes.

Every message has an identity, ``(episode_id, step)``, and each is used once: a message of a finished
episode, or of a step at or before one already seen, is a duplicate (counted, ignored). Publishers
replay their recent history to a restarted learner (transient-local durability), so after a resume
(:meth:`EpisodeAssembler.load_state` with the checkpoint's :meth:`EpisodeAssembler.state`) the replay
adds only what the checkpoint lacks; an episode open at the checkpoint continues from its newest
step, whose message is taken again as the start of the next transition.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np

from user_robot.contracts import END_SUCCESS, TRUTH_SOLVED, TRUTH_UNKNOWN


@dataclasses.dataclass(frozen=True)
class StepRecord:
    """One received Transition message, without ROS types."""

    robot_id: str
    episode_id: str
    step: int
    obs: Mapping[str, np.ndarray]
    action: np.ndarray
    reward: float
    terminated: bool = False
    truncated: bool = False
    intervened: bool = False
    end_reason: int = 0
    policy_version: int = 0
    solved: bool = False  # the reward source's verdict on this observation
    truth: int = TRUTH_UNKNOWN  # the sim cell's ground truth on it
    embodiment: str = ""  # the robot's embodiment and task, as its messages name them ("": not known)
    task: str = ""

    @property
    def is_final(self) -> bool:
        """The message that closes the episode (final observation only)."""
        return self.terminated or self.truncated


@dataclasses.dataclass(frozen=True)
class Transition:
    """One complete transition, ready for :meth:`ReplayBuffer.add` (``done`` = terminated)."""

    obs: Mapping[str, np.ndarray]
    action: np.ndarray
    reward: float
    next_obs: Mapping[str, np.ndarray]
    done: bool
    intervened: bool
    robot_id: str
    episode_id: str
    step: int
    policy_version: int


@dataclasses.dataclass(frozen=True)
class EpisodeStats:
    """Summary of one finished episode, over the steps that arrived."""

    robot_id: str
    episode_id: str
    length: int
    episode_return: float
    success: bool
    terminated: bool
    truncated: bool
    end_reason: int
    intervened_steps: int
    missing_steps: int
    policy_version: int
    takeovers: int = 0  # runs of consecutive intervened steps (how often a human took over)
    truth: int = TRUTH_UNKNOWN  # the sim cell's ground truth on the final observation
    reward_confusion: tuple[int, int, int, int] = (0, 0, 0, 0)  # frames with ground truth: (tp, fp, tn, fn)
    embodiment: str = ""
    task: str = ""

    @property
    def intervention_rate(self) -> float:
        """Share of the episode's steps whose action came from a human."""
        return self.intervened_steps / self.length if self.length else 0.0

    @property
    def false_positive_rate(self) -> float | None:
        """Share of the ground-truth unsolved frames the reward source called solved (None: none known)."""
        _, fp, tn, _ = self.reward_confusion
        return fp / (fp + tn) if fp + tn else None

    @property
    def false_negative_rate(self) -> float | None:
        """Share of the ground-truth solved frames the reward source missed (None: none known)."""
        tp, _, _, fn = self.reward_confusion
        return fn / (fn + tp) if fn + tp else None


@dataclasses.dataclass
class _OpenEpisode:
    robot_id: str
    last: StepRecord | None = None
    length: int = 0
    episode_return: float = 0.0
    intervened_steps: int = 0
    takeovers: int = 0
    missing_steps: int = 0
    confusion: list[int] = dataclasses.field(default_factory=lambda: [0, 0, 0, 0])  # tp, fp, tn, fn

    def judge(self, record: StepRecord) -> None:
        """Count the reward source's verdict on this frame against the ground truth, where there is one."""
        if record.truth != TRUTH_UNKNOWN:
            truth = record.truth == TRUTH_SOLVED
            self.confusion[(0 if record.solved else 3) if truth else (1 if record.solved else 2)] += 1


def step_record(
    robot_id: str, episode_id: str, step: Any, obs: dict[str, np.ndarray], embodiment: str = "", task: str = ""
) -> StepRecord:
    """A :class:`StepRecord` from anything with the Transition fields (a message or a bag step)."""
    return StepRecord(
        robot_id=robot_id,
        episode_id=episode_id,
        embodiment=embodiment,
        task=task,
        step=int(step.step),
        obs=obs,
        action=np.asarray(step.action, dtype=np.float32),
        reward=float(step.reward),
        terminated=bool(step.terminated),
        truncated=bool(step.truncated),
        intervened=bool(step.intervened),
        end_reason=int(step.end_reason),
        policy_version=int(step.policy_version),
        solved=bool(getattr(step, "solved", False)),  # (absent from recordings made before it existed)
        truth=int(getattr(step, "truth", TRUTH_UNKNOWN)),
    )



class EpisodeAssembler:
    """Turns :class:`StepRecord` s into :class:`Transition` s and :class:`EpisodeStats`."""

    def __init__(self, max_open_episodes: int = 64) -> None:
        self.max_open_episodes = max_open_episodes
        self._open: OrderedDict[str, _OpenEpisode] = OrderedDict()
        self._robot_episode: dict[str, str] = {}
        self.dropped = 0
        """Transitions lost to missing steps or abandoned episodes."""
        self.duplicates = 0
        """Messages received again (a replayed history) and ignored."""
        self._finished: set[str] = set()
        self._resume_at: dict[str, int] = {}  # open at the checkpoint: episode -> its newest step then
        self.transitions = 0
        self.episodes = 0

    def _abandon(self, episode_id: str) -> None:
        episode = self._open.pop(episode_id)
        if self._robot_episode.get(episode.robot_id) == episode_id:
            del self._robot_episode[episode.robot_id]
        self.dropped += int(episode.last is not None)

    def state(self) -> dict[str, object]:
        """What a checkpoint needs to de-duplicate a replay after resuming: finished and open episodes."""
        open_steps = {eid: e.last.step for eid, e in self._open.items() if e.last is not None}
        return {"finished": sorted(self._finished), "open": {**self._resume_at, **open_steps}}

    def load_state(self, state: Mapping[str, object]) -> None:
        """Resume from :meth:`state` (a fresh assembler)."""
        self._finished = set(state.get("finished", ()))  # type: ignore[arg-type]
        self._resume_at = {str(k): int(v) for k, v in dict(state.get("open", {})).items()}  # type: ignore[call-overload]

    def _duplicate(self, record: StepRecord) -> bool:
        if record.episode_id in self._finished:
            return True
        episode = self._open.get(record.episode_id)
        if episode is not None and episode.last is not None and record.step <= episode.last.step:
            return True
        resume_at = self._resume_at.get(record.episode_id)
        return episode is None and resume_at is not None and record.step < resume_at

    def add(self, record: StepRecord) -> tuple[list[Transition], EpisodeStats | None]:
        """Feed one message; returns the transitions it completed and, on a final message, the episode stats."""
        if self._duplicate(record):
            self.duplicates += 1
            return [], None
        episode = self._open.get(record.episode_id)
        resumed = episode is None and self._resume_at.pop(record.episode_id, None) == record.step
        if episode is None:
            previous = self._robot_episode.get(record.robot_id)
            if previous is not None:
                self._abandon(previous)
            while len(self._open) >= self.max_open_episodes:
                self._abandon(next(iter(self._open)))
            episode = self._open[record.episode_id] = _OpenEpisode(record.robot_id, missing_steps=record.step)
            self._robot_episode[record.robot_id] = record.episode_id
        self._open.move_to_end(record.episode_id)

        out: list[Transition] = []
        last = episode.last
        episode.judge(record)
        if resumed:  # its transitions up to this step are in the checkpoint; the next one starts here
            episode.missing_steps = 0
            episode.last = record
            return out, None
        if last is not None and record.step == last.step + 1:
            out.append(self._transition(last, record))
        elif last is not None:
            self.dropped += 1
            episode.missing_steps += max(record.step - last.step - 1, 0)
        if not record.is_final:
            episode.length += 1
            episode.episode_return += float(record.reward)
            episode.intervened_steps += int(record.intervened)
            episode.takeovers += int(record.intervened and (last is None or not last.intervened))
            episode.last = record
            return out, None

        del self._open[record.episode_id]
        self._robot_episode.pop(record.robot_id, None)
        self._finished.add(record.episode_id)
        self.episodes += 1
        stats = EpisodeStats(
            robot_id=record.robot_id,
            episode_id=record.episode_id,
            length=episode.length,
            episode_return=episode.episode_return,
            success=record.terminated and record.end_reason == END_SUCCESS,
            terminated=record.terminated,
            truncated=record.truncated,
            end_reason=record.end_reason,
            intervened_steps=episode.intervened_steps,
            takeovers=episode.takeovers,
            missing_steps=episode.missing_steps,
            policy_version=last.policy_version if last is not None else record.policy_version,
            truth=record.truth,
            reward_confusion=tuple(episode.confusion),
            embodiment=record.embodiment,
            task=record.task,
        )
        return out, stats

    def _transition(self, current: StepRecord, following: StepRecord) -> Transition:
        self.transitions += 1
        return Transition(
            obs=current.obs,
            action=np.asarray(current.action, dtype=np.float32),
            reward=float(current.reward),
            next_obs=following.obs,
            done=following.is_final and following.terminated,
            intervened=current.intervened,
            robot_id=current.robot_id,
            episode_id=current.episode_id,
            step=current.step,
            policy_version=current.policy_version,
        )

    @property
    def open_episodes(self) -> int:
        """Episodes started and not yet finished."""
        return len(self._open)
