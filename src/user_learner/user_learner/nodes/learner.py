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
"""

from __future__ import annotations

import os
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
from user_learner.episode_assembler import StepRecord, step_record
from user_learner.learner_core import LearnerCore
from user_learner.transition_log import read_segment
from user_policies.nodes.messages import image_array
from user_policies.weights_codec import load_secret, packet_to_msg, sign_packet
from user_robot.contracts import LEARNER_STATUS_TOPIC, TRANSITIONS_TOPIC, WEIGHTS_TOPIC
from user_robot.diagnostics import diagnostic_array
from user_robot.nodes.qos import STATUS, TRANSITIONS, WEIGHTS
from user_robot.nodes.runtime import declare, run
from user_robot.robot_config import load_robot
from user_robot.task_config import load_task


def message_record(msg: Transition) -> StepRecord:
    """A received Transition message as the assembler's :class:`StepRecord`."""
    obs = {"state": np.asarray(msg.state, dtype=np.float32)}
    for name, image in zip(msg.camera_names, msg.images, strict=True):
        obs[name] = image_array(image)
    return step_record(msg.robot_id, msg.episode_id, msg, obs)


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

    def __init__(self) -> None:
        super().__init__("learner")
        p = self._declare_parameters()
        self.task = load_task(p["task"])
        self.pipeline = p["pipeline"]
        embodiment = load_robot(p["robot"]).embodiment
        self.core = LearnerCore(
            self.task, p["algo"], p["obs"], [embodiment], p["log_dir"], seed=p["seed"], policy=p["policy"]
        )
        self.running_marker = Path(p["log_dir"]) / RUNNING_MARKER
        crashed = self.running_marker.is_file()  # the previous learner on this log dir never shut down
        if crashed and _alive(self.running_marker.read_text().strip()):
            raise ValueError(f"another learner (pid {self.running_marker.read_text().strip()}) runs on "
                             f"{p['log_dir']}: give this one another log_dir")
        if crashed and not p["resume"]:
            self.get_logger().warning(
                f"{self.running_marker} exists: the previous learner here did not shut down cleanly; resuming"
            )
        if (p["resume"] or crashed) and self.core.resume():
            self.get_logger().info(
                f"resumed from checkpoint: {self.core.counters.updates} updates, v{self.core.counters.version}, "
                f"{len(self.core.online)} online transitions"
            )
        else:
            if p["init"]:
                self.get_logger().info(f"policy initialised from {self.core.init_policy(p['init'])}")
            if not self.core.counters.demo_transitions:
                self._load_demos(p["demos"])
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
            "task": ("peg_insertion", "task config name"),
            "algo": ("rlpd", "algorithm config name (config/algorithms/<algo>.yaml)"),
            "policy": ("", "policy kind replacing the algorithm config's (empty = the config's)"),
            "obs": ("state", "policy observation: state | pixels"),
            "pipeline": ("async", "async: train continuously; sync: train after every episode"),
            "log_dir": ("logs", "TensorBoard logs and checkpoints"),
            "resume": (False, "resume from the newest checkpoint in log_dir"),
            "init": ("", "a checkpoint (or log dir) whose policy a fresh learner starts from, e.g. a cloned "
                         "one (`user-rl pretrain`); ignored when resuming"),
            "demos": ([""], "demo recordings (rosbag2) for the demo buffer"),
            "robot": ("sim", "robot config name whose embodiment the weights serve"),
            "seed": (0, "random seed"),
            "weights_secret_file": ("", "file holding a shared secret: weights are signed with it (HMAC-SHA256); "
                                        "empty = unsigned"),
        }
        values = declare(self, described)
        values["demos"] = [d for d in values["demos"] if d]
        self.declare_parameter(
            "robots",
            1,
            ParameterDescriptor(
                description="number of robots feeding this learner (informational)",
                read_only=True,
                integer_range=[IntegerRange(from_value=1, to_value=64, step=1)],
            ),
        )
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

    def _load_demos(self, paths: list[str]) -> None:
        if not paths:
            return
        from user_learner.bags.transition_bag import episode_records, read_episodes

        images = bool(self.core.spec.image_keys)
        records = episode_records(episode for path in paths for episode in read_episodes(path, images=images))
        added = self.core.add_demos(records)
        self.get_logger().info(f"loaded {added} demo transitions from {len(paths)} recording(s)")

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
        msg = deserialize_message(raw, Transition)
        try:
            stats = self.core.ingest(message_record(msg), raw)
        except ValueError as exc:
            self.get_logger().warning(f"dropped transition {msg.episode_id}:{msg.step}: {exc}")
            return
        if stats is not None and self.pipeline == "sync" and self.core.ready():
            with self._wake:
                self._pending_episode_updates += max(1, round(stats.length * max(self.core.cfg.utd, 1.0)))
                self._wake.notify()

    # --- training thread
    def _train_loop(self) -> None:
        torch.set_num_threads(1)
        cfg = self.core.cfg
        window = last_save = time.monotonic()
        window_updates = 0
        while not self._stop.is_set():
            if not self._may_update():
                with self._wake:
                    self._wake.wait(0.01)
                continue
            self.core.update()
            window_updates += 1
            updates = self.core.counters.updates
            if self.pipeline == "sync":  # one new version per episode, once its updates are done
                with self._wake:
                    self._pending_episode_updates -= 1
                    publish = self._pending_episode_updates == 0
            else:
                publish = updates % self._publish_every() == 0
            if publish:
                self._publish_weights()
            overdue = cfg.checkpoint_every_s and time.monotonic() - last_save > cfg.checkpoint_every_s
            if updates % cfg.checkpoint_every == 0 or overdue:
                self.core.save()
                last_save = time.monotonic()
            if time.monotonic() - window > 2.0:
                self._ups = window_updates / (time.monotonic() - window)
                window, window_updates = time.monotonic(), 0

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
        self.weights_pub.publish(msg)
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


def main(args: list[str] | None = None) -> None:
    """Run the learner until interrupted; ``Learner.shutdown`` checkpoints on the way out."""
    run(Learner, "learner", args, threads=2)


if __name__ == "__main__":
    main()
