"""Our learning recordings as rosbag2 files: write transitions, episode results and interventions; read episodes.

A recording is a valid rosbag2 bag (MCAP by default, sqlite3 on request) that ``ros2 bag``,
``rosbags`` and ``mcap`` readers open. It never holds policy weights: the writer refuses the
weights topic and type (weights are checkpoints, not data).

Episodes follow the ``Transition`` protocol: consecutive messages of one ``(robot_id,
episode_id)``, ending with a final-observation message (empty action) that has ``terminated`` or
``truncated`` set. :func:`read_episodes` yields them as :class:`Episode` s of :class:`Step` s with
numpy arrays, for the learner's demo buffer.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer

from user_learner.bags.images import array_to_image, header, image_to_array, stamp_ns
from user_learner.bags.recording import open_recording
from user_learner.bags.typestore import typestore
from user_learner.episode_assembler import StepRecord, step_record
from user_learner.progress import progress as show_progress
from user_robot.config_loader import UsageError
from user_robot.contracts import END_SUCCESS, TRANSITIONS_TOPIC, TRUTH_SOLVED, TRUTH_UNKNOWN, WEIGHTS_TOPIC

TRANSITION = "user_interfaces/msg/Transition"
EPISODE_RESULT = "user_interfaces/msg/EpisodeResult"
INTERVENTION = "user_interfaces/msg/Intervention"
POLICY_WEIGHTS = "user_interfaces/msg/PolicyWeights"
RECORDED_TYPES = (TRANSITION, EPISODE_RESULT, INTERVENTION)

Storage = Literal["mcap", "sqlite3"]
_PLUGINS = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}


@dataclasses.dataclass
class Step:
    """One ``Transition`` message as arrays: the observation at ``step`` and what was executed."""

    stamp_ns: int
    step: int
    state: np.ndarray  # float32 (S,)
    images: dict[str, np.ndarray]  # camera name -> HxWx3 uint8 RGB
    action: np.ndarray  # float32 (A,), empty on the final-observation step
    reward: float = 0.0
    terminated: bool = False
    truncated: bool = False
    end_reason: int = 0
    intervened: bool = False
    intervention_action: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.float32))
    policy_version: int = 0
    reward_source: int = 0
    solved: bool = False  # the reward source judged this observation solved
    truth: int = TRUTH_UNKNOWN  # the sim cell's ground truth for this observation

    @property
    def labelled_success(self) -> bool:
        """This observation counts as a success frame: the sim cell's ground truth where it was recorded
        (a learned reward's false positives become negatives), else the reward source's verdict (in
        recordings made before ``solved`` existed, the final observation of a successful episode)."""
        if self.truth != TRUTH_UNKNOWN:
            return self.truth == TRUTH_SOLVED
        return self.solved or (self.terminated and self.end_reason == END_SUCCESS)


@dataclasses.dataclass
class Episode:
    """The steps of one episode of one robot (the last one carries the final observation)."""

    robot_id: str
    embodiment: str
    task: str
    episode_id: str
    steps: list[Step]
    mode: str = ""  # from the EpisodeResult, when recorded
    result_success: bool | None = None  # from the EpisodeResult, when recorded

    @property
    def done(self) -> bool:
        """The final-observation step has been seen."""
        return bool(self.steps) and (self.steps[-1].terminated or self.steps[-1].truncated)

    @property
    def length(self) -> int:
        """Number of executed actions."""
        return sum(1 for s in self.steps if s.action.size)

    @property
    def success(self) -> bool:
        """The EpisodeResult's verdict, else whether the episode ended with END_SUCCESS."""
        if self.result_success is not None:
            return self.result_success
        return self.done and self.steps[-1].end_reason == END_SUCCESS

    @property
    def episode_return(self) -> float:
        """Sum of rewards."""
        return float(sum(s.reward for s in self.steps))

    @property
    def intervened_steps(self) -> int:
        """Steps whose action came from a human (or the scripted expert)."""
        return sum(1 for s in self.steps if s.intervened)

    @property
    def interventions(self) -> int:
        """Number of interventions: runs of consecutive intervened steps."""
        flags = [s.intervened for s in self.steps]
        return sum(1 for i, f in enumerate(flags) if f and (i == 0 or not flags[i - 1]))


def transition_message(episode: Episode, step: Step, camera_names: list[str] | None = None) -> Any:
    """A ``user_interfaces/msg/Transition`` (rosbags) for ``step`` of ``episode``."""
    names = list(step.images) if camera_names is None else camera_names
    return typestore().types[TRANSITION](
        header=header(step.stamp_ns),
        robot_id=episode.robot_id,
        embodiment=episode.embodiment,
        task=episode.task,
        episode_id=episode.episode_id,
        step=step.step,
        policy_version=step.policy_version,
        camera_names=names,
        images=[array_to_image(step.images[n], step.stamp_ns, n) for n in names],
        state=np.asarray(step.state, dtype=np.float32),
        action=np.asarray(step.action, dtype=np.float32),
        reward=float(step.reward),
        terminated=step.terminated,
        truncated=step.truncated,
        end_reason=step.end_reason,
        intervened=step.intervened,
        intervention_action=np.asarray(step.intervention_action, dtype=np.float32),
        reward_source=step.reward_source,
        solved=step.solved,
        truth=step.truth,
    )


def episode_result_message(episode: Episode, mode: str = "demo") -> Any:
    """A ``user_interfaces/msg/EpisodeResult`` (rosbags) summarizing ``episode``."""
    last = episode.steps[-1]
    first = episode.steps[0]
    return typestore().types[EPISODE_RESULT](
        header=header(last.stamp_ns),
        robot_id=episode.robot_id,
        embodiment=episode.embodiment,
        task=episode.task,
        episode_id=episode.episode_id,
        mode=mode,
        success=episode.success,
        episode_return=episode.episode_return,
        length=episode.length,
        intervened_steps=episode.intervened_steps,
        end_reason=last.end_reason,
        policy_versions=np.unique(np.array([s.policy_version for s in episode.steps], dtype=np.uint64)),
        duration_s=(last.stamp_ns - first.stamp_ns) * 1e-9,
        truth=last.truth,
    )


class TransitionBagWriter:
    """Writes a recording; use as a context manager. Refuses the weights topic and type."""

    def __init__(self, path: str | Path, storage: Storage = "mcap") -> None:
        if storage not in _PLUGINS:
            raise ValueError(f"storage must be one of {', '.join(_PLUGINS)}, got {storage!r}")
        self.path = Path(path)
        self._writer = Writer(self.path, version=9, storage_plugin=_PLUGINS[storage])
        self._connections: dict[str, Any] = {}
        self.finished: set[tuple[str, str]] = set()
        self.results: set[tuple[str, str]] = set()
        self._writer.open()

    def __enter__(self) -> TransitionBagWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Finish the bag (writes metadata.yaml)."""
        self._writer.close()

    def _connection(self, topic: str, msgtype: str) -> Any:
        if topic == WEIGHTS_TOPIC or msgtype == POLICY_WEIGHTS:
            raise ValueError(f"refusing to record policy weights ({topic}, {msgtype}): recordings hold data only")
        if msgtype not in RECORDED_TYPES:
            allowed = ", ".join(RECORDED_TYPES)
            raise ValueError(f"{topic}: type {msgtype} is not part of a recording (allowed: {allowed})")
        conn = self._connections.get(topic)
        if conn is None:
            conn = self._writer.add_connection(topic, msgtype, typestore=typestore())
            self._connections[topic] = conn
        elif conn.msgtype != msgtype:
            raise ValueError(f"{topic} already carries {conn.msgtype}, not {msgtype}")
        return conn

    def write_raw(self, topic: str, msgtype: str, data: bytes, stamp: int) -> None:
        """Write an already CDR-serialized message (e.g. from an rclpy raw subscription).

        An episode's final step and its result are followed by :meth:`sync`, so a crash loses at
        most the episode in progress; :attr:`finished` and :attr:`results` collect their ids.
        """
        self._writer.write(self._connection(topic, msgtype), stamp, data)
        if msgtype == EPISODE_RESULT:
            msg = typestore().deserialize_cdr(data, msgtype)
            self.results.add((msg.robot_id, msg.episode_id))
            self.sync()
        elif msgtype == TRANSITION:
            msg = typestore().deserialize_cdr(data, msgtype)
            if msg.terminated or msg.truncated:
                self.finished.add((msg.robot_id, msg.episode_id))
                self.sync()

    @property
    def complete(self) -> set[tuple[str, str]]:
        """``(robot_id, episode_id)`` of the episodes whose final step and result are both written."""
        return self.finished & self.results

    def sync(self) -> None:
        """Put everything written so far on disk (an MCAP chunk is closed; sqlite3 commits)."""
        storage = self._writer.storage
        if hasattr(storage, "close_chunk"):  # rosbags' MCAP writer buffers one chunk in memory
            if storage.chunk.bio.tell():
                storage.close_chunk()
            storage.bio.flush()
            os.fsync(storage.bio.fileno())
        elif hasattr(storage, "conn"):
            storage.conn.commit()

    def write(self, topic: str, msg: Any, stamp: int | None = None) -> None:
        """Write a rosbags message; ``stamp`` (ns) defaults to the message's header stamp."""
        data = typestore().serialize_cdr(msg, msg.__msgtype__)
        self.write_raw(topic, msg.__msgtype__, bytes(data), stamp_ns(msg.header) if stamp is None else stamp)

    def write_episode(self, episode: Episode, mode: str = "demo") -> None:
        """Write every step of ``episode`` on the transitions topic and its EpisodeResult."""
        for step in episode.steps:
            self.write(TRANSITIONS_TOPIC, transition_message(episode, step))
        self.write(f"/{episode.robot_id}/episode_result", episode_result_message(episode, mode))


def step_from_message(msg: Any, images: bool = True) -> Step:
    """A :class:`Step` from a deserialized ``Transition``."""
    return Step(
        stamp_ns=stamp_ns(msg.header),
        step=int(msg.step),
        state=np.asarray(msg.state, dtype=np.float32),
        images={n: image_to_array(im) for n, im in zip(msg.camera_names, msg.images, strict=True)} if images else {},
        action=np.asarray(msg.action, dtype=np.float32),
        reward=float(msg.reward),
        terminated=bool(msg.terminated),
        truncated=bool(msg.truncated),
        end_reason=int(msg.end_reason),
        intervened=bool(msg.intervened),
        intervention_action=np.asarray(msg.intervention_action, dtype=np.float32),
        policy_version=int(msg.policy_version),
        reward_source=int(msg.reward_source),
        solved=bool(getattr(msg, "solved", False)),  # (absent from recordings made before it existed)
        truth=int(getattr(msg, "truth", TRUTH_UNKNOWN)),
    )


def read_episodes(
    path: str | Path, *, images: bool = True, complete_only: bool = True, progress: bool = False
) -> Iterator[Episode]:
    """Yield the episodes of a recording in the order they end (interleaved robots are separated).

    ``images=False`` skips decoding camera images (fast summaries); ``complete_only=False`` also
    yields episodes cut off by the end of the bag; ``progress`` shows a progress bar. A recording
    whose writer died is read up to its last complete record (:mod:`user_learner.bags.recording`).
    """
    open_episodes: dict[tuple[str, str], Episode] = {}
    recording = open_recording(path)
    topics = recording.topics()
    if not any(t.msgtype == TRANSITION for t in topics):
        names = ", ".join(sorted(t.name for t in topics)) or "none"
        raise UsageError(f"{path}: no {TRANSITION} messages (topics: {names})")
    results = {(m.robot_id, m.episode_id): m for _, m in recording.messages((EPISODE_RESULT,))}
    total = sum(t.count for t in topics if t.msgtype == TRANSITION)
    with show_progress(f"reading {Path(path).name}", total, "messages", enabled=progress) as report:
        for _, msg in recording.messages((TRANSITION,)):
            report.advance()
            key = (msg.robot_id, msg.episode_id)
            episode = open_episodes.get(key)
            if episode is None:
                result = results.get(key)
                episode = open_episodes[key] = Episode(
                    msg.robot_id,
                    msg.embodiment,
                    msg.task,
                    msg.episode_id,
                    [],
                    mode=result.mode if result else "",
                    result_success=bool(result.success) if result else None,
                )
            episode.steps.append(step_from_message(msg, images))
            if episode.done:
                yield open_episodes.pop(key)
    if not complete_only:
        yield from open_episodes.values()


def episode_records(episodes: Iterable[Episode]) -> Iterator[StepRecord]:
    """The steps of recorded episodes as the learner's :class:`StepRecord` s (images as read)."""
    for episode in episodes:
        for step in episode.steps:
            yield step_record(episode.robot_id, episode.episode_id, step, {"state": step.state, **step.images},
                              episode.embodiment, episode.task)


def check_recording(path: str | Path, check: Callable[[Episode], None] = lambda _episode: None) -> str:
    """A line on a recording's complete episodes; a :class:`UsageError` names the file when there are none.
    ``check`` sees each episode (without images) on the way, and may raise."""
    count = 0
    for episode in read_episodes(path, images=False):
        check(episode)
        count += 1
    if not count:
        raise UsageError(f"{path}: no complete episode in this recording")
    damage = open_recording(path).damage
    note = f" (truncated recording, read up to the cut: {damage})" if damage else ""
    return f"{path}: {count} complete episodes{note}"

