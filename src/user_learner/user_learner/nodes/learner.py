"""The learner node: transitions in, the configured algorithm on its own thread, latched weights out.

Subscribes ``/user/transitions`` (reliable, deep queue) and feeds :class:`LearnerCore`; a
training thread updates continuously from ``min_buffer`` on (async pipeline) or, after every
finished episode, ``utd`` x its length updates (sync pipeline), publishes the actor's weights on
the latched ``/user/policy_weights`` every ``publish_every`` updates (async) or once those
episode updates are done (sync: one version per episode), checkpoints every
``checkpoint_every`` updates (or ``checkpoint_every_s``) and on shutdown, and reports
``/user/learner_status`` and ``/diagnostics``. Every transition is written to the transition log
(``<log_dir>/wal``) before it is used. With ``resume:=true``, or after a crash, it continues from the
newest checkpoint in ``log_dir`` and replays the log, so nothing received is lost.

Under ``torchrun --nproc-per-node N`` it learns data-parallel (:mod:`user_learner.data_parallel`):
rank 0 is this node; ranks 1..N-1 run :func:`follow` without ROS, on the transitions rank 0
forwards to them each round, and log nothing of their own.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import torch
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import IntegerRange, ParameterDescriptor
from rclpy.node import Node
from rclpy.serialization import deserialize_message

from user_interfaces.msg import LearnerStatus, PolicyWeights, Transition
from user_learner.data_parallel import DataParallel, RankLostError, Round
from user_learner.episode_assembler import EpisodeStats, StepRecord, step_record
from user_learner.learner_core import LearnerCore
from user_learner.transition_log import read_segment
from user_policies.nodes.messages import image_array
from user_policies.observation import with_task_identity
from user_policies.weights_codec import load_secret, packet_to_msg, sign_packet, split_message
from user_robot.contracts import LEARNER_STATUS_TOPIC, TRANSITIONS_TOPIC, WEIGHTS_TOPIC
from user_robot.diagnostics import diagnostic_array
from user_robot.nodes.qos import STATUS, TRANSITIONS, WEIGHTS, WEIGHTS_PARTS
from user_robot.nodes.runtime import declare, run
from user_robot.robot_config import load_robot
from user_robot.task_config import load_task

ROUND_UPDATES = 10
"""Data-parallel: the most updates one round runs before rank 0 forwards newer transitions."""


def message_record(msg: Transition) -> StepRecord:
    """A received Transition message as the assembler's :class:`StepRecord`."""
    obs = {"state": np.asarray(msg.state, dtype=np.float32)}
    for name, image in zip(msg.camera_names, msg.images, strict=True):
        obs[name] = image_array(image)
    return step_record(msg.robot_id, msg.episode_id, msg, obs, msg.embodiment, msg.task)


def ingest_raw(core: LearnerCore, raw: bytes, log: bool) -> tuple[Transition, EpisodeStats | None]:
    """Decode a serialized Transition and give it to ``core`` (logged first when ``log``); ``ValueError`` for
    one the learner cannot use."""
    msg = deserialize_message(raw, Transition)
    return msg, core.ingest(message_record(msg), raw if log else None)


def build_core(p: dict, log_dir: str | Path, tensorboard: bool = True) -> LearnerCore:
    """The learner core the parameters ``p`` describe (every rank builds the same one)."""
    embodiments = [load_robot(name).embodiment for name in p["robots"]]
    task = with_task_identity(load_task(p["task"]), [t for t in p["tasks"] if t])
    return LearnerCore(task, p["algo"], p["obs"], embodiments, log_dir, seed=p["seed"],
                       policy=p["policy"], tensorboard=tensorboard)


def start_fresh(core: LearnerCore, p: dict) -> tuple[Path | None, int]:
    """A learner not resumed: its policy from ``init`` (if given), its demo buffer from ``demos``; returns (the
    checkpoint it started from, demo transitions added)."""
    init = core.init_policy(p["init"]) if p["init"] else None
    return init, core.add_demo_bags(p["demos"]) if p["demos"] else 0


def follow(parallel: DataParallel) -> None:
    """A follower rank of a data-parallel learner: rank 0's learner, fed the transitions rank 0 forwards, updated
    in step with it; it publishes and writes nothing (its log dir is ``<log_dir>/ranks/rank<N>``)."""
    torch.set_num_threads(1)
    p = parallel.share(None)
    core = build_core(p, Path(p["log_dir"]) / "ranks" / f"rank{parallel.rank}", tensorboard=False)
    resumed = parallel.share(None)
    if resumed is not None:
        core.restore(resumed)
    else:
        start_fresh(core, p)
    core.join(parallel)
    print(f"learner rank {parallel.rank} of {parallel.world_size} following rank 0", flush=True)
    while not (round_ := parallel.share(None)).stop:
        for raw in round_.transitions:
            with contextlib.suppress(ValueError):  # (rank 0 drops it too, and says so)
                ingest_raw(core, raw, log=False)
        for _ in range(round_.updates):
            core.update()
    core.close()


RUNNING_MARKER = "learner.running"
"""Written in the log dir while a learner runs there, removed at a clean shutdown: a learner that finds
it resumes from the newest checkpoint (a respawn after a crash continues instead of starting over)."""


def _alive(pid: str) -> bool:
    """Whether process ``pid`` (text) exists and is not this one."""
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError, PermissionError):
        return False
    return int(pid) != os.getpid()


class Learner(Node):
    """See the module docstring."""

    def __init__(self, parallel: DataParallel | None = None) -> None:
        super().__init__("learner")
        p = self._declare_parameters()
        self.pipeline = p["pipeline"]
        self.parallel = parallel
        if parallel is not None:
            parallel.share(p)  # the followers build the same learner
        self.core = build_core(p, p["log_dir"])
        self.running_marker = Path(p["log_dir"]) / RUNNING_MARKER
        crashed = self.running_marker.is_file()  # the previous learner on this log dir never shut down
        if crashed and _alive(self.running_marker.read_text().strip()):
            raise ValueError(f"another learner (pid {self.running_marker.read_text().strip()}) runs on "
                             f"{p['log_dir']}: give this one another log_dir")
        if crashed and not p["resume"]:
            self.get_logger().warning(
                f"{self.running_marker} exists: the previous learner here did not shut down cleanly; resuming"
            )
        resumed = self.core.resume() if p["resume"] or crashed else None
        if resumed is not None:
            self.get_logger().info(
                f"resumed from checkpoint: {self.core.counters.updates} updates, v{self.core.counters.version}, "
                f"{len(self.core.online)} online transitions"
            )
        else:
            init, added = start_fresh(self.core, p)
            if init is not None:
                self.get_logger().info(f"policy initialised from {init}")
            if p["demos"]:
                self.get_logger().info(f"loaded {added} demo transitions from {len(p['demos'])} recording(s)")
        if parallel is not None:
            parallel.share(resumed)
            self.core.join(parallel)
            self.get_logger().info(f"data-parallel over {parallel.world_size} ranks: each samples "
                                   f"{parallel.shard_rows(self.core.algorithm.rows_per_update)} rows of every batch")
        self.failed = False  # a data-parallel rank was lost: the process exits non-zero
        self._forward: list[bytes] = []  # data-parallel: received, not yet shared with the followers
        self._forward_lock = threading.Lock()
        self.running_marker.parent.mkdir(parents=True, exist_ok=True)
        self.running_marker.write_text(f"{os.getpid()}\n")
        self.secret = load_secret(p["weights_secret_file"]) if p["weights_secret_file"] else None
        self.weights_pub = self.create_publisher(PolicyWeights, WEIGHTS_TOPIC, WEIGHTS)
        self.status_pub = self.create_publisher(LearnerStatus, LEARNER_STATUS_TOPIC, STATUS)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._pending_episode_updates = 0
        self._wake = threading.Condition()
        if p["resume"] or crashed:
            self._replay_log()
        # raw: the serialized message goes to the transition log as it came, then is decoded
        self.create_subscription(Transition, TRANSITIONS_TOPIC, self._on_transition, TRANSITIONS, raw=True)
        self.create_timer(1.0, self._publish_status)
        self._stop = threading.Event()
        self._publish_latency_ms = 0.0
        self._ups = 0.0
        self._trainer = threading.Thread(target=self._train_loop, name="trainer", daemon=True)
        self._trainer.start()
        if self.core.counters.version or p["init"]:
            self._publish_weights()  # a resumed (or initialised) learner publishes at once, as a newer version
        self.get_logger().info(
            f"learner ready: {self.core.policy_id} on {self.core.device}, learner_id={self.core.learner_id}"
            f"{' (signed weights)' if self.secret else ''}, pipeline={self.pipeline}, "
            f"demos={len(self.core.demo) if self.core.demo is not None else 0}"
        )

    def _declare_parameters(self) -> dict:
        described = {
            "task": ("peg_insertion", "task config name (a multi-task learner: the first of tasks)"),
            "tasks": ([""], "a multi-task policy's tasks (the state key 'task': a one-hot over them; empty: one)"),
            "algo": ("rlpd", "algorithm config name (config/algorithms/<algo>.yaml)"),
            "policy": ("", "policy kind replacing the algorithm config's (empty = the config's)"),
            "obs": ("state", "policy observation: state | pixels"),
            "pipeline": ("async", "async: train continuously; sync: train after every episode"),
            "log_dir": ("logs", "TensorBoard logs and checkpoints"),
            "resume": (False, "resume from the newest checkpoint in log_dir"),
            "init": ("", "a checkpoint (or log dir) whose policy a fresh learner starts from, e.g. a cloned "
                         "one (`user-rl pretrain`); ignored when resuming"),
            "demos": ([""], "demo recordings (rosbag2) for the demo buffer"),
            "robots": (["sim"], "robot config of each robot feeding this learner: the weights serve their embodiments"),
            "seed": (0, "random seed"),
            "weights_secret_file": ("", "file holding a shared secret: weights are signed with it (HMAC-SHA256); "
                                        "empty = unsigned"),
        }
        values = declare(self, described)
        values["demos"] = [d for d in values["demos"] if d]
        self.declare_parameter(
            "publish_every",
            0,
            ParameterDescriptor(
                description="updates between weight publishes (0 = the algorithm config's); safe to change live",
                integer_range=[IntegerRange(from_value=0, to_value=10_000, step=1)],
            ),
        )
        return values

    def _publish_every(self) -> int:
        live = self.get_parameter("publish_every").value
        return live if live > 0 else self.core.cfg.publish_every

    def _replay_log(self) -> None:
        """Ingest what the transition log holds: what a learner that died here received after its last checkpoint."""
        duplicates, replayed = self.core.assembler.duplicates, 0
        for segment in self.core.wal.adopt():  # (re-logged as replayed; dropped at the next checkpoint)
            for raw in read_segment(segment):
                self._on_transition(raw)
                replayed += 1
        if replayed:
            self.get_logger().info(
                f"replayed {replayed} logged transitions "
                f"({self.core.assembler.duplicates - duplicates} of them already in the checkpoint)"
            )

    def _on_transition(self, raw: bytes) -> None:
        if self.parallel is not None:  # logged now, ingested by every rank at the next round
            self.core.log_transition(raw)
            with self._forward_lock:
                self._forward.append(raw)
            return
        self._ingest(raw, log=True)

    def _ingest(self, raw: bytes, log: bool) -> None:
        try:
            msg, stats = ingest_raw(self.core, raw, log)
        except ValueError as exc:
            msg = deserialize_message(raw, Transition)
            self.get_logger().warning(f"dropped transition {msg.episode_id}:{msg.step}: {exc}")
            return
        if stats is not None and self.pipeline == "sync" and self.core.ready():
            with self._wake:
                self._pending_episode_updates += max(1, round(stats.length * max(self.core.cfg.utd, 1.0)))
                self._wake.notify()

    # --- training thread
    def _train_loop(self) -> None:
        torch.set_num_threads(1)
        self._window = self._last_save = time.monotonic()
        self._window_updates = 0
        try:
            while not self._stop.is_set():
                due = self._due_updates()
                if not due:
                    with self._wake:
                        self._wake.wait(0.01)
                for _ in range(due):
                    self._update()
            if self.parallel is not None:
                self.parallel.share(Round(stop=True))
        except RankLostError as exc:
            self.get_logger().fatal(str(exc))
            self.failed = True
            signal.raise_signal(signal.SIGTERM)  # stop the node: it checkpoints what it has on the way out

    def _update(self) -> None:
        cfg = self.core.cfg
        self.core.update()
        self._window_updates += 1
        updates = self.core.counters.updates
        if self.pipeline == "sync":  # one new version per episode, once its updates are done
            with self._wake:
                self._pending_episode_updates -= 1
                publish = self._pending_episode_updates == 0
        else:
            publish = updates % self._publish_every() == 0
        if publish:
            self._publish_weights()
        overdue = cfg.checkpoint_every_s and time.monotonic() - self._last_save > cfg.checkpoint_every_s
        if updates % cfg.checkpoint_every == 0 or overdue:
            self.core.save()
            self._last_save = time.monotonic()
        if time.monotonic() - self._window > 2.0:
            self._ups = self._window_updates / (time.monotonic() - self._window)
            self._window, self._window_updates = time.monotonic(), 0

    def _due_updates(self) -> int:
        """Updates to run now. Data-parallel: rank 0 first ingests what it received and shares it, with the count,
        as one round (at most :data:`ROUND_UPDATES` updates)."""
        if self.parallel is None:
            return int(self._may_update())
        with self._forward_lock:
            received, self._forward = tuple(self._forward), []
        for raw in received:
            self._ingest(raw, log=False)
        due = 0
        if self.core.ready():
            sync = self.pipeline == "sync"
            due = min(self._pending_episode_updates, ROUND_UPDATES) if sync else self.core.updates_due(ROUND_UPDATES)
        return self.parallel.share(Round(received, due)).updates

    def _may_update(self) -> bool:
        if not self.core.ready():
            return False
        if self.pipeline == "sync":
            return self._pending_episode_updates > 0
        return self.core.updates_allowed()

    def _publish_weights(self) -> None:
        start = time.monotonic()
        packet = self.core.weights_packet()
        if self.secret is not None:
            packet = sign_packet(packet, self.secret)
        msg = packet_to_msg(packet, PolicyWeights())
        msg.header.stamp = self.get_clock().now().to_msg()
        for part in split_message(msg, int(self.core.cfg.publish_part_mb * 1e6), WEIGHTS_PARTS):
            self.weights_pub.publish(part)
        self._publish_latency_ms = (time.monotonic() - start) * 1e3
        self.core.scalars({"time/weight_publish_ms": self._publish_latency_ms}, self.core.counters.updates)
        self._publish_status()

    def _publish_status(self) -> None:
        self.core.sync_log()
        c = self.core.counters
        msg = LearnerStatus()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.policy_id, msg.algorithm, msg.version, msg.updates = (
            self.core.policy_id,
            self.core.cfg.algorithm,
            c.version,
            c.updates,
        )
        msg.transitions_received = c.transitions_received
        msg.online_buffer_size = len(self.core.online)
        msg.demo_buffer_size = len(self.core.demo) if self.core.demo is not None else 0
        msg.updates_per_second = self._ups
        msg.metric_names = list(c.last_metrics)
        msg.metric_values = [float(v) for v in c.last_metrics.values()]
        msg.success_rate = self.core.success_rate()
        by_robot, by_embodiment = self.core.success_rates()
        msg.robot_ids, msg.robot_success_rates = list(by_robot), list(by_robot.values())
        msg.embodiments, msg.embodiment_success_rates = list(by_embodiment), list(by_embodiment.values())
        msg.state = "training" if self.core.ready() else "waiting_for_data"
        self.status_pub.publish(msg)
        values = {
            "updates": c.updates,
            "updates_per_second": self._ups,
            "online_buffer_size": msg.online_buffer_size,
            "demo_buffer_size": msg.demo_buffer_size,
            "transitions_received": c.transitions_received,
            "transitions_duplicate": self.core.assembler.duplicates,
            "weight_version": c.version,
            "publish_latency_ms": self._publish_latency_ms,
        }
        self.diag_pub.publish(diagnostic_array(msg.header.stamp, "learner", self.core.policy_id, values))

    def shutdown(self) -> None:
        """Stop training and write a final checkpoint (nothing received is lost)."""
        self._stop.set()
        self._trainer.join(timeout=30.0)
        if self.core.counters.transitions_added:
            path = self.core.save()
            self.get_logger().info(f"saved checkpoint {path}")
        self.core.close()
        self.running_marker.unlink(missing_ok=True)
        if self.parallel is not None:
            self.parallel.close()


def main(args: list[str] | None = None) -> None:
    """Run the learner until interrupted; ``Learner.shutdown`` checkpoints on the way out. Under ``torchrun``
    rank 0 runs the node and the other ranks :func:`follow` it."""
    parallel = DataParallel.from_env()
    if parallel is not None and not parallel.leader:
        stopping = threading.Event()  # a signal: go on until rank 0, which checkpoints first, says stop
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stopping.set())
        try:
            follow(parallel)
        except RankLostError as exc:
            if not stopping.is_set():
                raise SystemExit(f"[learner rank {parallel.rank}] {exc}") from exc
        finally:
            parallel.close()
        return
    run(functools.partial(Learner, parallel), "learner", args, threads=2, fatal=(RankLostError,))


if __name__ == "__main__":
    main()
