"""The learner without ROS: transitions in, gradient updates, weight packets and checkpoints out.

:class:`LearnerCore` owns the episode assembler, the online and demo replay buffers, the algorithm
(any registered one, by name), TensorBoard and checkpoints. The learner node feeds it received Transition messages
(:meth:`ingest`) on its ROS thread and calls :meth:`update` / :meth:`weights_packet` on its
training thread; a lock guards the buffers between the two.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import math
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from user_learner.algo_config import AlgorithmConfig, load_algorithm_config
from user_learner.algorithms.base import ALGORITHMS
from user_learner.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from user_learner.data_parallel import DataParallel
from user_learner.episode_assembler import EpisodeAssembler, EpisodeStats, StepRecord
from user_learner.prefetch import BatchPrefetcher
from user_learner.replay_buffer import Batch, MixedSampler, ReplayBuffer
from user_learner.transition_log import TransitionLog
from user_policies.observation import instruction_slice, state_dim
from user_policies.policies.base import POLICIES, build_policy, frozen_state
from user_policies.policy_spec import SPEC_METADATA_KEY, PolicySpec
from user_policies.weights_codec import FROZEN_METADATA_KEY, WeightsPacket, encode_weights, tensors_sha256
from user_robot.config_loader import ConfigError, config_dir, config_names
from user_robot.contracts import TRUTH_SOLVED, TRUTH_UNKNOWN
from user_robot.task_config import TaskConfig


def recipe_name(algo: str, obs: str) -> str:
    """The recipe file's name for ``algo`` and ``obs``: ``<algo>_cnn`` for pixels when it exists, else ``algo``."""
    return f"{algo}_cnn" if obs == "pixels" and f"{algo}_cnn" in config_names("algorithms") else algo


def load_algorithm(algo: str, obs: str, policy: str = "") -> AlgorithmConfig:
    """``config/algorithms/<recipe_name>.yaml`` for ``obs``.

    ``policy`` replaces the recipe's policy kind (its options then take that kind's defaults); the
    kind is then adapted to the observation (e.g. the Gaussian ``mlp`` becomes ``cnn`` for pixels).
    """
    cfg = load_algorithm_config(recipe_name(algo, obs))
    spec = cfg.policy
    if policy and policy != spec.kind:
        spec = dataclasses.replace(spec, kind=policy, options={})
    kind = POLICIES.get(spec.kind).kind_for(spec.kind, obs)
    if kind != spec.kind:
        spec = dataclasses.replace(spec, kind=kind)
    return dataclasses.replace(cfg, policy=POLICIES.get(kind).complete_spec(spec))


def task_policy_spec(cfg: AlgorithmConfig, task: TaskConfig, obs: str) -> PolicySpec:
    """The recipe's policy at ``task``'s sizes (state, action, the cameras for pixels, the instruction)."""
    cameras = task.observation.cameras if obs == "pixels" else ()
    return cfg.policy.for_task(state_dim(task), task.action.dims, cameras, task.observation.image_size,
                               instruction_slice(task))


def check_policy_runs(algo: str, obs: str, policy: str, tasks: Iterable[TaskConfig]) -> None:
    """``ConfigError`` naming the recipe file when its policy cannot be built and run for each of ``tasks``
    (:meth:`Policy.check_runs`: an outside module that cannot be imported, or of other sizes)."""
    cfg = load_algorithm(algo, obs, policy)
    for task in tasks:
        try:
            POLICIES.get(cfg.policy.kind).check_runs(task_policy_spec(cfg, task, obs))
        except ValueError as exc:
            file = config_dir() / "algorithms" / f"{recipe_name(algo, obs)}.yaml"
            raise ConfigError(file, "policy", f"{exc} (task {task.name})") from exc


def replay_image_device(
    cfg: AlgorithmConfig, shapes: dict[str, tuple[int, ...]], device: str, with_demos: bool, reserved_per_row: int = 0
) -> str | None:
    """Where the replay buffers keep their images (None: host memory): ``replay_images: device`` on the
    learner's device; ``auto`` there when it is a GPU and both buffers' images, with the algorithm's
    ``reserved_per_row`` bytes of each row (a backbone cache's maps, kept there anyway), fill at most half
    of its free memory, else host memory (batches then go over pinned copies)."""
    if len(shapes) == 1 or cfg.replay_images == "host":  # (no images, or asked for host memory)
        return None
    if cfg.replay_images == "device":
        return device
    if not device.startswith("cuda"):
        return None
    rows = cfg.buffer_capacity + (cfg.demo_capacity if with_demos else 0)
    row_bytes = sum(math.prod(shape) for key, shape in shapes.items() if key != "state") + reserved_per_row
    return device if rows * row_bytes <= torch.cuda.mem_get_info(torch.device(device))[0] / 2 else None


def _rate(successes: collections.deque[bool]) -> float:
    return sum(successes) / len(successes) if successes else 0.0


def default_device() -> str:
    """CUDA when available, else CPU."""
    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclasses.dataclass
class LearnerCounters:
    """What the learner has done, for status, diagnostics and TensorBoard."""

    transitions_received: int = 0
    transitions_added: int = 0
    episodes: int = 0
    updates: int = 0
    version: int = 0
    demo_transitions: int = 0
    transitions_too_stale: int = 0  # policy transitions kept out of the buffer by ``max_policy_lag``
    last_metrics: Mapping[str, float] = dataclasses.field(default_factory=dict)


class LearnerCore:
    """See the module docstring."""

    def __init__(
        self,
        task: TaskConfig,
        algo: str,
        obs: str,
        embodiments: Iterable[str],
        log_dir: str | Path,
        *,
        seed: int = 0,
        device: str | None = None,
        tensorboard: bool = True,
        policy: str = "",
    ) -> None:
        self.task = task
        self.cfg = load_algorithm(algo, obs, policy)
        self.device = device or default_device()
        self.spec = task_policy_spec(self.cfg, task, obs)
        self.algorithm = ALGORITHMS.get(self.cfg.algorithm)(self.cfg.params, self.spec, self.device, seed=seed)
        self.algorithm.bind_task(task)
        shapes = self.spec.observation_shapes()
        demo_ratio = self.algorithm.demo_ratio
        self.image_device = replay_image_device(self.cfg, shapes, self.device, with_demos=bool(demo_ratio),
                                                reserved_per_row=self.algorithm.device_bytes_per_row)
        self.online = ReplayBuffer(self.cfg.buffer_capacity, shapes, task.action.dims, self.image_device)
        self.demo = (ReplayBuffer(self.cfg.demo_capacity, shapes, task.action.dims, self.image_device)
                     if demo_ratio else None)
        self.sampler = self._sampler()
        self.algorithm.image_source = self._batch_images
        self._episode_rows: dict[str, list[tuple[int, int]]] = {}  # open episode -> its online (row, generation)s
        self.assembler = EpisodeAssembler()
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.parallel: DataParallel | None = None
        self.policy_id = f"{'+'.join(task.observation.tasks) or task.name}/{self.cfg.algorithm}/{self.spec.kind}"
        self.embodiments = tuple(sorted(set(embodiments)))
        self.log_dir = Path(log_dir)
        self.wal = TransitionLog(self.log_dir / "wal")
        self.counters = LearnerCounters(version=self._published_version())
        self.recent_success: collections.deque[bool] = collections.deque(maxlen=20)
        self.recent_by_robot: dict[str, collections.deque[bool]] = {}  # robot_id -> its last 20 successes
        self.recent_by_embodiment: dict[str, collections.deque[bool]] = {}
        self.recent_truth: collections.deque[bool] = collections.deque(maxlen=20)  # the sim's verdicts, where known
        self._lags: list[int] = []  # policy lag of each transition received since the last episode end
        self.lock = threading.Lock()
        self.prefetcher = BatchPrefetcher(self._sample, self.device) if self.cfg.prefetch else None
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.log_dir / "tensorboard"))
        self._start = time.monotonic()
        self._unlogged: tuple[Mapping[str, float], int, dict[str, float]] | None = None  # (see update)
        self._unlogged_lock = threading.Lock()  # (flushed by the training thread, and by save and close)

    # --- data
    def keep_observation(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The observation keys this learner's policy reads (``ValueError`` naming a missing one)."""
        shapes = self.spec.observation_shapes()
        missing = [k for k in shapes if k not in obs]
        if missing:
            raise ValueError(f"transition has no {missing[0]!r} observation (has {sorted(obs)})")
        return {k: obs[k] for k in shapes}

    def log_transition(self, raw: bytes) -> None:
        """Write a serialized transition to the transition log (before it is ingested, later, without ``raw``)."""
        with self.lock:
            self.wal.append(raw)

    def ingest(self, record: StepRecord, raw: bytes | None = None) -> EpisodeStats | None:
        """Add one received step (logged first when its serialized message ``raw`` is given); returns the
        episode's stats when this message ended it."""
        record = dataclasses.replace(record, obs=self.keep_observation(dict(record.obs)))
        with self.lock:
            if raw is not None:
                self.wal.append(raw)
            self.counters.transitions_received += 1
            if record.policy_version > 0:  # (0: no learned weights drove it yet)
                self._lags.append(self.counters.version - record.policy_version)
            transitions, stats = self.assembler.add(record)
            for t in transitions:
                if self._too_stale(t):
                    self.counters.transitions_too_stale += 1
                    continue
                row = self.online.add(t.obs, t.action, t.reward, t.next_obs, t.done, t.intervened, stream=t.robot_id)
                self._episode_rows.setdefault(t.episode_id, []).append(row)
                while len(self._episode_rows) > self.assembler.max_open_episodes:  # (abandoned ones)
                    del self._episode_rows[next(iter(self._episode_rows))]
                self.counters.transitions_added += 1
                if t.intervened and self.demo is not None and self.algorithm.intervened_steps_as_demos:
                    self.demo.add(t.obs, t.action, t.reward, t.next_obs, t.done, True, stream=f"human:{t.robot_id}")
            if stats is not None:
                rows = self._episode_rows.pop(stats.episode_id, [])
                if stats.success:
                    self.online.mark_success(rows)
                lags, self._lags = self._lags, []
        if stats is not None:
            self._episode_done(stats, lags)
        return stats

    def _too_stale(self, t) -> bool:
        """A policy transition from weights more than ``max_policy_lag`` versions old (never a human's)."""
        bound = self.cfg.max_policy_lag
        lag = self.counters.version - t.policy_version
        return bool(bound and not t.intervened and t.policy_version and lag > bound)

    def _sampler(self) -> MixedSampler:
        return MixedSampler(self.online, self.demo, self.algorithm.demo_ratio, self.algorithm.select_online,
                            self.spec.chunk_size, self.algorithm.batch_images)

    def _batch_images(self, refs: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The algorithm's :data:`~user_learner.replay_buffer.ImageSource`: images from this learner's buffers."""
        with self.lock:
            return self.sampler.images_of(refs, self.device)

    def add_demos(self, records: Iterable[StepRecord]) -> int:
        """Fill the demo buffer from recorded steps (e.g. bags); returns the transitions added."""
        if self.demo is None:
            raise ValueError(f"algorithm {self.cfg.algorithm!r} samples no demos (demo_ratio 0; use rlpd)")
        assembler = EpisodeAssembler()
        added = 0
        for record in records:
            record = dataclasses.replace(record, obs=self.keep_observation(dict(record.obs)))
            for t in assembler.add(record)[0]:
                self.demo.add(t.obs, t.action, t.reward, t.next_obs, t.done, t.intervened, stream=f"demo:{t.robot_id}")
                added += 1
        self.counters.demo_transitions += added
        return added

    def add_demo_bags(self, paths: Iterable[str | Path]) -> int:
        """Fill the demo buffer from demo recordings (rosbag2; images only when the policy sees them)."""
        from user_learner.bags.transition_bag import episode_records, read_episodes

        images = bool(self.spec.image_keys)
        episodes = (episode for path in paths for episode in read_episodes(path, images=images))
        return self.add_demos(episode_records(episodes))

    def _episode_done(self, stats: EpisodeStats, lags: list[int]) -> None:
        """Episode statistics to TensorBoard, and ``time/policy_lag`` (the learner's newest weight version minus
        the version that produced each transition received since the last episode end: mean and histogram)."""
        self.counters.episodes += 1
        with self.lock:  # (read by success_rates on another thread)
            self.recent_success.append(stats.success)
            by_robot = self.recent_by_robot.setdefault(stats.robot_id, collections.deque(maxlen=20))
            by_robot.append(stats.success)
            by_embodiment = self.recent_by_embodiment.setdefault(stats.embodiment or "unknown",
                                                                 collections.deque(maxlen=20))
            by_embodiment.append(stats.success)
            overall, robot_rate, embodiment_rate = self.success_rate(), _rate(by_robot), _rate(by_embodiment)
        step = self.counters.transitions_added
        episode = {
            "success_once": float(stats.success),
            "return": stats.episode_return,
            "episode_len": float(stats.length),
            "intervened_steps": float(stats.intervened_steps),
            "intervention_rate": stats.intervention_rate,
            "takeovers": float(stats.takeovers),
        }
        for prefix, rate in (("env", overall), (f"env/{stats.robot_id}", robot_rate)):
            self.scalars({**{f"{prefix}/{k}": v for k, v in episode.items()}, f"{prefix}/success_rate_20": rate}, step)
        self.scalars({f"env/embodiment/{stats.embodiment or 'unknown'}/success_rate_20": embodiment_rate}, step)
        judged = {"reward/false_positive_rate": stats.false_positive_rate,
                  "reward/false_negative_rate": stats.false_negative_rate}
        if stats.truth != TRUTH_UNKNOWN:
            self.recent_truth.append(stats.truth == TRUTH_SOLVED)
            judged["env/ground_truth_success_rate_20"] = sum(self.recent_truth) / len(self.recent_truth)
        self.scalars({k: v for k, v in judged.items() if v is not None}, step)
        if lags:
            self.scalars({"time/policy_lag": float(np.mean(lags)),
                          "time/transitions_too_stale": float(self.counters.transitions_too_stale)}, step)
            if self.writer is not None:
                self.writer.add_histogram("time/policy_lag", np.asarray(lags), step)

    def success_rate(self) -> float:
        """Success over the last 20 episodes."""
        return _rate(self.recent_success)

    def success_rates(self) -> tuple[dict[str, float], dict[str, float]]:
        """Success over the last 20 episodes of each robot (by robot id) and of each embodiment."""
        with self.lock:
            return ({k: _rate(v) for k, v in sorted(self.recent_by_robot.items())},
                    {k: _rate(v) for k, v in sorted(self.recent_by_embodiment.items())})

    # --- training
    def join(self, parallel: DataParallel) -> None:
        """Learn as one rank of a data-parallel group (:mod:`user_learner.data_parallel`): rank 0's state,
        this rank's own shard of each batch, gradients averaged over the ranks. Call once the policy is
        initialised or resumed, on every rank."""
        parallel.shard_rows(self.algorithm.rows_per_update)  # (fails early on a batch that does not split)
        parallel.attach(self.algorithm)
        self._discard_prefetched()
        self.parallel = parallel
        self.rng = np.random.default_rng([self.seed, parallel.rank])

    def ready(self) -> bool:
        """Enough data to start training: ``min_buffer`` online rows the algorithm learns from, or (for an
        algorithm that learns from them alone) demos."""
        with self.lock:
            online = self.sampler.online_available()
            demos = len(self.demo) if self.demo is not None and self.algorithm.trains_on_demos_alone else 0
        return online >= self.cfg.min_buffer or demos > 0

    def updates_allowed(self) -> bool:
        """Whether the update-to-data ratio allows another update now (``utd`` 0 = unlimited)."""
        return self.updates_due(1) > 0

    def updates_due(self, limit: int) -> int:
        """How many more updates the update-to-data ratio allows now, at most ``limit`` (``utd`` 0: ``limit``)."""
        if self.cfg.utd <= 0:
            return limit
        return max(0, min(limit, math.ceil(self.cfg.utd * self.counters.transitions_added - self.counters.updates)))

    def _sample(self) -> Batch:
        """A batch of the algorithm's rows (this rank's shard of them) on the learner's device."""
        rows = self.algorithm.rows_per_update
        if self.parallel is not None:
            rows = self.parallel.shard_rows(rows)
        with self.lock:
            return self.sampler.sample(rows, self.rng, self.device)

    def _discard_prefetched(self) -> None:
        if self.prefetcher is not None:
            self.prefetcher.discard()

    def update(self) -> Mapping[str, float]:
        """One algorithm update on a fresh batch (drawn ahead with ``prefetch``); returns its metrics.

        Their TensorBoard scalars are written at the next update (or :meth:`flush_scalars`), after that
        update has been queued: on a GPU the host then waits for this update's metrics only while the next
        one runs, never with an empty queue (:class:`~user_learner.algorithms.update_metrics.UpdateMetrics`).
        ``time/update_s`` is the wall time of one call, in a steady stream the time per update.
        """
        start = time.monotonic()
        batch = self._sample() if self.prefetcher is None else self.prefetcher.next()
        metrics = self.algorithm.update(batch)
        self.counters.updates += 1
        self.counters.last_metrics = metrics
        self.flush_scalars()
        scalars = {"time/update_s": time.monotonic() - start}
        if self.counters.updates % 10 == 0:
            scalars["buffer/online_size"] = float(len(self.online))
            scalars["buffer/demo_size"] = float(len(self.demo)) if self.demo is not None else 0.0
        self._unlogged = (metrics, self.counters.updates, scalars)
        return metrics

    def flush_scalars(self) -> None:
        """Write the scalars of the last update (:meth:`update` defers them by one)."""
        with self._unlogged_lock:
            unlogged, self._unlogged = self._unlogged, None
        if unlogged is None:
            return
        metrics, step, scalars = unlogged
        self.scalars({**{f"train/{self.cfg.algorithm}/{k}": v for k, v in metrics.items()}, **scalars}, step)

    def weights_packet(self) -> WeightsPacket:
        """The actor's current weights as the next version.

        The version is also written to ``<log_dir>/weights_version``, so a learner restarted on the
        same log dir (resumed from an older checkpoint, or fresh) keeps the log dir's ``learner_id``
        and publishes versions newer than any its predecessor sent. A frozen encoder that every
        actor rebuilds itself is left out (:attr:`frozen_digest`).
        """
        self.counters.version += 1
        self.log_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.log_dir / ".weights_version.tmp"
        tmp.write_text(str(self.counters.version))
        tmp.replace(self.log_dir / "weights_version")
        state = self.algorithm.publish_state()
        metadata = {SPEC_METADATA_KEY: self.spec.to_json(), "updates": self.counters.updates}
        if self.frozen_digest is not None:
            names, digest = self.frozen_digest
            state = {k: v for k, v in state.items() if k not in names}
            metadata[FROZEN_METADATA_KEY] = digest
        return encode_weights(
            state,
            policy_id=self.policy_id,
            version=self.counters.version,
            embodiments=self.embodiments,
            dtype=self.cfg.publish_dtype,
            metadata=metadata,
            learner_id=self.learner_id,
        )

    @functools.cached_property
    def frozen_digest(self) -> tuple[frozenset[str], str] | None:
        """(names, sha256) of the policy's frozen tensors when they are what any process builds from the spec
        (the fixed-seed initialisation or the pretrained file): weights then leave them out. None (send
        everything) when there are none, or when they came from elsewhere (an older checkpoint)."""
        frozen = frozen_state(self.algorithm.policy)
        if not frozen:
            return None
        digest = tensors_sha256(frozen)
        rebuilt = tensors_sha256(frozen_state(build_policy(self.spec, load_pretrained=True)))
        return (frozenset(frozen), digest) if digest == rebuilt else None

    @functools.cached_property
    def learner_id(self) -> str:
        """This learner run's identity, kept in ``<log_dir>/learner_id`` so a restarted learner keeps it."""
        path = self.log_dir / "learner_id"
        if path.is_file() and path.read_text().strip():
            return path.read_text().strip()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        learner_id = uuid.uuid4().hex[:16]
        path.write_text(learner_id + "\n")
        return learner_id

    def scalars(self, values: dict[str, float], step: int) -> None:
        """Write TensorBoard scalars (no-op without TensorBoard)."""
        if self.writer is None:
            return
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)

    # --- checkpoints
    @property
    def checkpoint_root(self) -> Path:
        """Where checkpoints go: ``<log_dir>/checkpoints``."""
        return self.log_dir / "checkpoints"

    def save(self) -> Path:
        """Checkpoint agent, buffers, RNG, counters, the assembler's de-duplication state and the open episodes'
        rows (atomic); the transition log up to this moment is dropped once the checkpoint is on disk."""
        with self.lock:
            self.wal.seal()
            buffers = {"online": self.online, **({"demo": self.demo} if self.demo is not None else {})}
            self.flush_scalars()
            counters = dataclasses.asdict(dataclasses.replace(self.counters,
                                                              last_metrics=dict(self.counters.last_metrics)))
            metadata = {"counters": counters, "assembler": self.assembler.state(), "task": self.task.name,
                        "tasks": list(self.task.observation.tasks), "episode_rows": self._episode_rows}
            path = save_checkpoint(self.checkpoint_root, self.algorithm, buffers, rng=self.rng, metadata=metadata)
            self.wal.drop_sealed()
            return path

    def sync_log(self) -> None:
        """fsync the transition log (the learner node does it once a second)."""
        with self.lock:
            self.wal.sync()

    def init_policy(self, checkpoint: str | Path) -> Path:
        """Start from the policy of ``checkpoint`` (a checkpoint or a log dir: its newest), e.g. a cloned
        one; returns the checkpoint used. Its policy must be this learner's (kind, sizes, options)."""
        from user_learner.checkpoint import resolve_checkpoint
        from user_learner.evaluation import load_checkpoint_algorithm

        path = resolve_checkpoint(checkpoint)
        source = load_checkpoint_algorithm(path)
        if source.spec != self.spec:
            raise ValueError(
                f"{path}: its policy ({source.spec.to_json()}) is not this learner's ({self.spec.to_json()}): "
                f"start from a checkpoint made with the same policy settings"
            )
        with self.lock:
            self.algorithm.policy.load_state_dict(source.policy.state_dict())
        return path

    def resume(self) -> Path | None:
        """Restore the newest checkpoint under :attr:`checkpoint_root`; returns it (None when there is none)."""
        path = latest_checkpoint(self.checkpoint_root)
        if path is not None:
            self.restore(path)
        return path

    def restore(self, path: Path) -> None:
        """Restore checkpoint ``path``: algorithm, buffers, RNG, counters, de-duplication state, open episodes."""
        self._discard_prefetched()
        buffers, metadata = load_checkpoint(path, self.algorithm, rng=self.rng, image_device=self.image_device)
        with self.lock:
            self.online = buffers["online"]
            self.demo = buffers.get("demo", self.demo)
            self.sampler = self._sampler()
            saved: dict[str, Any] = metadata.get("counters", {})
            self.counters = LearnerCounters(**{**saved, "last_metrics": saved.get("last_metrics", {})})
            self.counters.version = max(self.counters.version, self._published_version())
            self.assembler = EpisodeAssembler()
            self.assembler.load_state(metadata.get("assembler", {}))
            self._episode_rows = {episode: [(int(row), int(gen)) for row, gen in rows]  # (success marks them)
                                  for episode, rows in metadata.get("episode_rows", {}).items()}

    def _published_version(self) -> int:
        """The newest version published from this log dir (0: none)."""
        published = self.log_dir / "weights_version"
        return int(published.read_text().strip() or 0) if published.is_file() else 0

    def close(self) -> None:
        """Stop the prefetch thread, close the transition log and flush TensorBoard."""
        if self.prefetcher is not None:
            self.prefetcher.close()
        self.wal.close()
        self.flush_scalars()
        if self.writer is not None:
            self.writer.close()
