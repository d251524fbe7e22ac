"""The actor: a fixed-rate control loop that never blocks, and episodes as an action server.

Each tick reads the newest cached inputs (arm state, cameras, intervention, success signal),
asks the policy (or the human) for an action, publishes ``arm/command`` and one
``user_interfaces/Transition`` per executed step on ``/user/transitions``. Weights arrive on the
latched ``/user/policy_weights`` topic; they are decoded and verified on another thread and
swapped in between ticks, and a bad packet leaves the old weights in place.

Run episodes with the ``run_episode`` action (reset arm → reset scene → run → result).
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
import uuid
from collections.abc import Iterator

import numpy as np
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import FloatingPointRange, ParameterDescriptor, SetParametersResult
from rclpy.action import ActionClient, ActionServer, CancelResponse, GoalResponse
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.task import Future
from std_msgs.msg import Float32MultiArray, Header
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from user_interfaces.action import ResetArm, RunEpisode
from user_interfaces.msg import ArmCommand, ArmState, EpisodeResult, Intervention, PolicyWeights, Transition
from user_policies.chunk_player import BackgroundChunks, ChunkPlayer
from user_policies.classifier_reward import ClassifierReward
from user_policies.episode import Episode, Observation
from user_policies.nodes.messages import arm_sample, seconds_to_stamp, stamp_seconds, transition_msg
from user_policies.observation import (
    StateEncoder,
    check_state_keys,
    present_mask,
    uses_privileged_state,
    with_task_identity,
)
from user_policies.policy_slot import PolicySlot
from user_policies.reward import RewardTracker, in_success_region, within_pose_gate
from user_policies.success_classifier import SuccessClassifier, check_classifier, load_classifier
from user_policies.weights_codec import WeightsParts, load_secret
from user_robot.action_mapping import command_frame
from user_robot.contracts import (
    ACTOR_TICK_TOPIC,
    END_ABORTED,
    END_SAFETY,
    OBJECT_STATE_TOPIC,
    REWARD_SOURCES,
    TICK_COMMANDED,
    TICK_IDLE,
    TRANSITIONS_TOPIC,
    TRUTH_SOLVED,
    TRUTH_UNKNOWN,
    TRUTH_UNSOLVED,
    WEIGHTS_TOPIC,
    object_state_of,
)
from user_robot.diagnostics import WARN, diagnostic_array
from user_robot.markers import status_markers, workspace_markers
from user_robot.nodes.qos import CONTROL, HEARTBEAT, STATUS, TRANSITIONS, WEIGHTS
from user_robot.nodes.runtime import ControlLoop, declare, run
from user_robot.nodes.stamps import stamp_ns
from user_robot.robot_config import load_robot
from user_robot.task_config import load_task

WEIGHTS_WAIT_S = 30.0
"""Longest an episode start waits for the weights a synchronous goal asks for."""
DRAIN_TIMEOUT_S = 5.0
"""At shutdown, how long to wait for the learner to acknowledge the last transitions and results: Fast DDS
readers acknowledge in reply to the writer's heartbeat, every 3 s by default (measured: 3.0 s)."""
TICK_INPUT_WAIT_S = 2.0
"""On sim time, longest a tick waits for the arm and object state of its own time (then it reads the newest)."""
RESET_ATTEMPTS = 3
START_HOLD_S = 10.0
"""``hold_clock_for_start``: the longest a tick holds the clock for an episode's start (then it goes on)."""
ACTOR_REWARD_SOURCES = ("sim", "pose_region", "human", "classifier")
"""Reward sources the actor computes itself."""
TRUTH_MAX_AGE_S = 1.0
"""The sim cell's success signal older than this is no ground truth."""


class Actor(Node):
    """See the module docstring."""

    def __init__(self) -> None:
        super().__init__("actor")
        p = self._declare_parameters()
        self.task = with_task_identity(load_task(p["task"]), [t for t in p["tasks"] if t])
        self.robot = load_robot(p["robot"])
        self.robot_id = p["robot_id"] or self.get_namespace().strip("/") or "robot_0"
        self.obs_kind = p["obs"]
        self.record_images = p["record_images"] or self.obs_kind == "pixels"
        self.seed = p["seed"]
        self.deterministic = bool(p["deterministic"])
        self.rng = np.random.default_rng(self.seed)
        if self.task.reward.source not in ACTOR_REWARD_SOURCES:
            raise ValueError(f"reward source {self.task.reward.source!r} is not available in the actor yet")
        self.encoder = StateEncoder(self.task, self.robot.gripper_max_width, self.robot.embodiment,
                                    present_mask(self.task, self.robot))
        check_state_keys(self.task, self.robot)
        if uses_privileged_state(self.task):
            self.get_logger().warning(
                f"task {self.task.name} observes the sim-only privileged key 'object_state' (object poses from the "
                f"simulator's ground truth): a CPU-scale stand-in for cameras, not a real-robot observation"
            )
        self.policy = PolicySlot(
            embodiment=self.robot.embodiment,
            state_dim=self.encoder.dim,
            action_dim=self.task.action.dims,
            cameras=self.task.observation.cameras if self.obs_kind == "pixels" else (),
            learner_id=self.get_parameter("learner_id").value,
            secret=load_secret(p["weights_secret_file"]) if p["weights_secret_file"] else None,
            device=p["device"],
        )
        self.chunks = None  # inline: the tick infers a chunk when the last is used up
        if p["chunk_inference"] == "background":
            player = ChunkPlayer(p["chunk_blend"], p["chunk_lead_ticks"], p["chunk_ensemble_decay"])
            self.chunks = BackgroundChunks(self._infer_chunk, player)
        elif p["chunk_inference"] != "inline":
            raise ValueError(f"chunk_inference must be inline or background, got {p['chunk_inference']!r}")
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.command_frame = command_frame(self.task.action, self.robot.base_frame, self.robot.ee_frame)

        self._lock = threading.Lock()
        self._inputs_arrived = threading.Condition(self._lock)  # (notified by arm and object states, frames)
        self._stopping = False  # the node is on its way out: ticks neither wait for inputs nor act
        self._arm: ArmState | None = None
        self._intervention: Intervention | None = None
        self._intervention_time = 0.0
        self._label = 0
        self._sim_success: tuple[bool, float] = (False, -1.0)
        self.cameras = None
        judge = self._load_classifier(p["reward_classifier"] or self.task.reward.classifier)
        if self.record_images or judge is not None:
            from user_robot.nodes.cameras import CameraSet

            self.cameras = CameraSet(self, self.robot, self.task)
            self.cameras.on_arrival = self._notify_inputs
        self.classifier = None if judge is None else ClassifierReward(*judge, self.cameras).start()

        self.create_subscription(ArmState, "arm/state", self._on_arm, CONTROL)
        self.create_subscription(Intervention, "intervention", self._on_intervention, CONTROL)
        self._objects: tuple[np.ndarray | None, float] = (None, -1.0)
        self._objects_ns = -1  # the sim time of the newest object state
        self._scene_seen, self._stale_scene = -1, None  # object states of _stale_scene are the last episode's
        self._last_action: np.ndarray | None = None  # executed at the previous tick (``last_action`` state key)
        if self.robot.backend == "sim":  # object poses (privileged state) and the verdict (the reward with source
            # sim, else the ground truth logged beside it) of one sim step, in one message stamped with its time
            self.create_subscription(Float32MultiArray, OBJECT_STATE_TOPIC, self._on_objects, CONTROL)
        # on sim time each tick observes the inputs of its own time (_await_tick_inputs)
        self._tick_inputs = self.robot.backend == "sim" and bool(self.get_parameter("use_sim_time").value)
        self._hold_for_start = self._tick_inputs and bool(p["hold_clock_for_start"])
        self._start_hold = threading.Condition()  # (see _clock_held)
        self._hold_wanted = False  # an episode's start asks the control loop to hold the clock at its next tick
        self._held = False  # a tick is holding
        self._weights_inbox: PolicyWeights | None = None  # the newest message the weights thread has not taken
        self._weights_arrived = threading.Condition()
        self._weights_parts = WeightsParts()
        threading.Thread(target=self._load_weights, name="weights", daemon=True).start()
        self.create_subscription(PolicyWeights, WEIGHTS_TOPIC, self._on_weights, WEIGHTS)
        self.command_pub = self.create_publisher(ArmCommand, "arm/command", CONTROL)
        self.tick_pub = self.create_publisher(Header, ACTOR_TICK_TOPIC, HEARTBEAT)
        self.transition_pub = self.create_publisher(Transition, TRANSITIONS_TOPIC, TRANSITIONS)
        self.result_pub = self.create_publisher(EpisodeResult, "episode_result", STATUS)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.status_markers_pub = self.create_publisher(MarkerArray, "status_markers", 10)
        workspace_pub = self.create_publisher(MarkerArray, "workspace_markers", STATUS)  # latched for rviz2
        workspace_pub.publish(workspace_markers(self.task, self.robot.base_frame, self.get_clock().now().to_msg()))

        self.reset_client = ActionClient(self, ResetArm, "arm/reset")
        self.scene_client = self.create_client(Trigger, "reset_scene")
        self._goal_lock = threading.Lock()
        self._busy = False  # an accepted episode goal has not yet ended
        ActionServer(
            self,
            RunEpisode,
            "run_episode",
            execute_callback=self._run_episode,
            goal_callback=self._accept_goal,
            cancel_callback=lambda _: CancelResponse.ACCEPT,
        )

        self.episode: Episode | None = None
        self.stale_reason = ""
        self._episode_done = threading.Event()
        self._episode_meta: dict = {}
        self._episodes = 0
        self._periods: collections.deque[float] = collections.deque(maxlen=500)
        self._last_tick = 0.0
        self._goal_handle = None
        self.loop = ControlLoop(self, 1.0 / self.task.control_rate_hz, self._tick)
        self.create_timer(1.0, self._publish_diagnostics)
        self.loop.start()
        self.get_logger().info(
            f"actor ready: task={self.task.name} robot={self.robot.name} id={self.robot_id} obs={self.obs_kind} "
            f"rate={self.task.control_rate_hz} Hz"
        )

    def _declare_parameters(self) -> dict:
        specs = {
            "task": ("peg_insertion", "task config name (config/tasks/<task>.yaml)"),
            "tasks": ([""], "a multi-task policy's tasks (the state key 'task': a one-hot over them; empty: one)"),
            "robot": ("sim", "robot config name (config/robots/<robot>.yaml)"),
            "robot_id": ("", "robot id in transitions (default: the namespace)"),
            "obs": ("state", "policy observation: state | pixels"),
            "record_images": (False, "put camera images into transitions even for state policies"),
            "seed": (0, "seed of resets and exploration"),
            "deterministic": (False, "act with the policy's deterministic action in training episodes too (set for "
                                     "algorithms that do not explore, e.g. hg_dagger)"),
            "reward_classifier": ("", "success classifier directory for reward source 'classifier' (empty = the "
                                      "task's reward.classifier)"),
            "weights_secret_file": ("", "file holding the learner's shared secret: only weights signed with it are "
                                        "taken (empty = unsigned weights are taken)"),
            "device": ("cpu", "where the policy runs: cpu, cuda, cuda:<i>"),
            "chunk_inference": ("inline", "inline: a tick infers the next chunk when the last is used up; background: "
                                          "a worker infers it while the current one plays (never inside the tick)"),
            "chunk_blend": ("switch", "background: switch (the newest chunk takes over where it arrives) or ensemble "
                                      "(temporal ensembling of every chunk covering the tick)"),
            "chunk_lead_ticks": (2, "background: ask for the next chunk when this many rows are left to play"),
            "chunk_ensemble_decay": (0.1, "ensemble: chunk i (0 the oldest) votes with weight exp(-decay * i)"),
            "hold_clock_for_start": (False, "lockstep sim: the control loop holds the clock at a tick from the scene "
                                            "reset to the episode's start (its first step at the next tick), so "
                                            "that an episode starts a fixed number of physics steps after its "
                                            "scene reset (with the cell's restart_at_scene_reset: exactly replayed)"),
        }
        values = declare(self, specs)
        self.declare_parameter(
            "learner_id",
            "",
            ParameterDescriptor(
                description="the learner run whose weights are taken (empty = the first one heard); setting it, "
                "also to empty, switches learners live",
            ),
        )
        self.declare_parameter(
            "input_max_age_s",
            0.0,
            ParameterDescriptor(
                description="override of the task's observation.max_age_s (0 = use the task's)",
                floating_point_range=[FloatingPointRange(from_value=0.0, to_value=5.0, step=0.0)],
            ),
        )
        return values

    # --- inputs (cached; the tick reads them)
    def _load_classifier(self, path: str) -> tuple[SuccessClassifier, float] | None:
        """The success classifier of reward source 'classifier', checked against the task, and its threshold."""
        reward = self.task.reward
        if reward.source != "classifier":
            return None
        if not path:
            raise ValueError(
                f"config/tasks/{self.task.name}.yaml: reward.classifier: reward source 'classifier' needs a model "
                f"directory (user-rl reward train --out), or the actor parameter reward_classifier"
            )
        model = load_classifier(path)
        obs = self.task.observation
        check_classifier(model.spec, self.task.name, obs.cameras, obs.image_size)
        threshold = reward.classifier_threshold or model.spec.threshold
        self.get_logger().info(
            f"reward from success classifier {path} (cameras {', '.join(model.spec.cameras)}, threshold "
            f"{threshold:.3f}, hold {reward.success_hold_steps} steps, pose gate "
            f"{reward.pose_gate or 'off'}; held-out precision {model.spec.metrics.get('precision', '-')})"
        )
        return model, threshold

    def _on_arm(self, msg: ArmState) -> None:
        with self._inputs_arrived:
            self._arm = msg
            self._inputs_arrived.notify_all()

    def _notify_inputs(self) -> None:
        with self._inputs_arrived:
            self._inputs_arrived.notify_all()

    def _on_intervention(self, msg: Intervention) -> None:
        with self._lock:
            self._intervention = msg
            self._intervention_time = time.monotonic()
            if msg.label:
                self._label = msg.label

    def _on_objects(self, msg: Float32MultiArray) -> None:
        scene, stamp = object_state_of(msg.layout.dim[0].label) if msg.layout.dim else (-1, -1)
        data, now = np.asarray(msg.data, dtype=np.float32), time.monotonic()
        with self._inputs_arrived:
            if scene == self._stale_scene:  # (sent before the scene reset, arriving after it)
                return
            self._scene_seen, self._objects_ns = scene, max(self._objects_ns, stamp)
            self._objects, self._sim_success = (data[:-1], now), (bool(data[-1] > 0.5), now)
            self._inputs_arrived.notify_all()

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        for param in params:
            if param.name == "learner_id":
                self.policy.follow(param.value)
                self.get_logger().info(f"following learner {param.value or '(the next one heard)'}")
        return SetParametersResult(successful=True)

    def _on_weights(self, msg: PolicyWeights) -> None:
        """Hand the message (once whole: a large payload comes in parts) to the weights thread (the newest wins):
        decoding never holds up the inputs."""
        msg = self._weights_parts.add(msg)
        if msg is None:
            return
        with self._weights_arrived:
            self._weights_inbox = msg
            self._weights_arrived.notify()

    def _load_weights(self) -> None:
        """The weights thread: decode and verify off the control and ROS threads, then swap (a bad
        message leaves the old weights in place)."""
        while self.context.ok():
            with self._weights_arrived:
                self._weights_arrived.wait_for(lambda: self._weights_inbox is not None, timeout=0.5)
                msg, self._weights_inbox = self._weights_inbox, None
            if msg is None:
                continue
            error = self.policy.load_message(msg)
            if error:
                self.get_logger().warning(f"rejected policy weights v{msg.version}: {error}")
            else:
                self.get_logger().info(
                    f"loaded policy weights v{self.policy.version} from learner {msg.learner_id or '-'} "
                    f"({msg.byte_size / 1e6:.2f} MB)"
                )

    # --- the control loop
    def _now(self) -> float:
        return self.loop.clock.now().nanoseconds * 1e-9

    def _max_age(self) -> float:
        """Oldest usable input (s): the override, else the task's, relaxed to the cell's driver-state age."""
        override = self.get_parameter("input_max_age_s").value
        return override if override > 0 else max(self.task.observation.max_age_s, self.robot.safety.max_state_age_s)

    def _observe(self) -> Observation | None:
        """The newest observation, or None (reason in ``self.stale_reason``) when an input is too old."""
        arm = self._arm
        now = self._now()
        if arm is None or arm.status == ArmState.STATUS_NO_DATA:
            self.stale_reason = "no arm state" if arm is None else f"arm bridge: {arm.message or 'no driver data'}"
            return None
        age = now - stamp_seconds(arm.header.stamp)
        if age > self._max_age():
            self.stale_reason = f"arm state is {age:.2f} s old (max {self._max_age():.2f} s)"
            return None
        sample = arm_sample(arm)
        images: dict[str, np.ndarray] = {}
        if self.cameras is not None:
            stale = self.cameras.stale(now, self._max_age())
            if stale:
                self.stale_reason = f"camera(s) {', '.join(stale)} older than {self._max_age():.2f} s"
                return None
            if self.record_images:
                images = {name: frame for name, (frame, _stamp) in self.cameras.latest().items()}
        objects, received = self._objects
        if uses_privileged_state(self.task) and (objects is None or time.monotonic() - received > 1.0):
            self.stale_reason = "no object state from the sim cell (sim/object_state) for 1 s"
            return None
        truth_solved, received = self._sim_success
        truth = TRUTH_UNKNOWN
        if time.monotonic() - received < TRUTH_MAX_AGE_S:
            truth = TRUTH_SOLVED if truth_solved else TRUTH_UNSOLVED
        source = self.task.reward.source
        if source == "sim":
            solved = truth == TRUTH_SOLVED
        elif source == "pose_region":
            solved = in_success_region(self.task, sample.xyz, sample.quat)
        elif source == "classifier":
            solved = self.classifier.solved(now, self._max_age()) and within_pose_gate(self.task, sample.xyz)
        else:
            solved = False
        return Observation(
            state=self.encoder.encode(sample, objects, self._last_action),
            images=images,
            xyz=sample.xyz,
            solved=solved,
            gripper_closed=bool(arm.gripper_closed) if self.task.action.gripper == "binary" else None,
            stamp=stamp_seconds(arm.header.stamp),
            truth=truth,
        )

    def _human(self) -> tuple[np.ndarray | None, int]:
        """The active intervention action (if any) and a pending label (consumed)."""
        with self._lock:
            msg, label = self._intervention, self._label
            self._label = 0
            fresh = msg is not None and time.monotonic() - self._intervention_time < 3.0 / self.task.control_rate_hz
        if not (fresh and msg.active and len(msg.action) == self.task.action.dims):
            return None, label
        return np.asarray(msg.action, dtype=np.float32), label

    def _infer_chunk(self, policy_obs: dict[str, np.ndarray]) -> tuple[np.ndarray, int] | None:
        mode = self._episode_meta.get("mode", "train")
        return self.policy.act(policy_obs, deterministic=mode == "eval" or self.deterministic)

    def _policy_action(self, obs: Observation) -> tuple[np.ndarray, int]:
        mode = self._episode_meta.get("mode", "train")
        hold = np.zeros(self.task.action.dims, dtype=np.float32)
        if mode == "demo":
            return hold, 0
        policy_obs = {"state": obs.state, **obs.images}
        if self.chunks is not None:  # this tick's action at once; the next chunk is inferred on the worker
            action = self.chunks.step(policy_obs)
            if action is not None or self.policy.version:
                return (hold, 0) if action is None else (action[0][None], action[1])
        else:
            action = self._infer_chunk(policy_obs)
        if action is None:  # no weights yet: explore uniformly (train) or hold (eval)
            if mode == "eval":
                return hold, 0
            return self.rng.uniform(-1.0, 1.0, self.task.action.dims).astype(np.float32), 0
        return action

    def _tick(self) -> None:
        if not rclpy.ok():
            return
        t = time.monotonic()
        if self._last_tick:
            self._periods.append(t - self._last_tick)
        self._last_tick = t
        stamp = self.loop.clock.now().to_msg()
        commanded = self._control(stamp_ns(stamp))
        if self._hold_wanted:  # (hold_clock_for_start; read without the lock: a start missed here holds the next)
            self._hold_while_starting()
        self.tick_pub.publish(Header(stamp=stamp, frame_id=TICK_COMMANDED if commanded else TICK_IDLE))

    def _hold_while_starting(self) -> None:
        """If an episode's start asked for it, hold this tick's answer (a lockstep cell's clock with it) until
        the episode has started (bounded: ``START_HOLD_S``)."""
        with self._start_hold:
            if not self._hold_wanted or self._stopping:
                return
            self._held = True
            self._start_hold.notify_all()
            released = self._start_hold.wait_for(lambda: not self._hold_wanted or self._stopping, START_HOLD_S)
            self._held = False
        if not released:
            self.get_logger().warning(f"held the clock {START_HOLD_S:.0f} s for an episode's start; going on")

    @contextlib.contextmanager
    def _clock_held(self) -> Iterator[None]:
        """With ``hold_clock_for_start``: the clock stands still at a tick (the control loop holds it) inside."""
        if not self._hold_for_start:
            yield
            return
        with self._start_hold:
            self._hold_wanted = True
            if not self._start_hold.wait_for(lambda: self._held or self._stopping, START_HOLD_S):
                self.get_logger().warning(f"no tick came to hold the clock within {START_HOLD_S:.0f} s")
        try:
            yield
        finally:
            with self._start_hold:
                self._hold_wanted = False
                self._start_hold.notify_all()

    def _control(self, tick_ns: int) -> bool:
        """One control step (at ``tick_ns``) of the running episode; True when it commanded the arm."""
        episode = self.episode
        if episode is None or episode.ended or self._stopping:
            return False
        if self._tick_inputs:
            self._await_tick_inputs(tick_ns)
            if self._stopping:  # (the inputs stopped coming because the node stops)
                return False
        arm = self._arm
        if arm is not None and arm.status == ArmState.STATUS_ERROR:
            self.get_logger().error(f"arm error, ending episode: {arm.message}")
            self._finish(episode.abort(END_SAFETY))
            return False
        human, label = self._human()
        if human is not None and self.chunks is not None:
            self.chunks.clear()  # the human moves the arm: the chunks in play are stale
        obs = self._observe()
        if obs is None:
            self.get_logger().warning(f"stale input, truncating the episode: {self.stale_reason}")
        result = episode.tick(obs, self._policy_action, intervention=human, label=label)
        self._last_action = result.action
        if result.action is not None:
            cmd = ArmCommand()
            cmd.header.stamp = self.loop.clock.now().to_msg()
            cmd.header.frame_id = self.command_frame
            cmd.action = result.action.tolist()
            cmd.policy_version = result.policy_version
            cmd.intervened = result.intervened
            self.command_pub.publish(cmd)
        self._publish_records(result.records)
        if self._goal_handle is not None and result.action is not None:
            fb = RunEpisode.Feedback(
                step=episode.summary.length,
                episode_return=episode.summary.episode_return,
                intervened=human is not None,
                policy_version=self.policy.version,
            )
            self._goal_handle.publish_feedback(fb)
        if result.ended:
            self._episode_done.set()
        return result.action is not None

    def _await_tick_inputs(self, tick_ns: int) -> None:
        """Hold the tick until the arm state, the cell's object state and the camera frames of its own time
        have come.

        The lockstep cell holds the clock at the tick, and the bridge relays the state of a control tick at
        once (``ControlPeriodRelay``): the policy then observes exactly the tick's state and frames, however
        the bridge's timer, the cell and this tick interleave. After ``TICK_INPUT_WAIT_S`` the tick goes on
        with the newest (logged)."""

        def arrived() -> bool:
            arm = self._arm
            return self._stopping or (
                arm is not None and stamp_ns(arm.header.stamp) >= tick_ns and self._objects_ns >= tick_ns
                and (self.cameras is None or self.cameras.hold_frames_of(tick_ns)))

        with self._inputs_arrived:
            if self._inputs_arrived.wait_for(arrived, TICK_INPUT_WAIT_S):
                return
        self.get_logger().warning(
            f"the inputs of the tick at sim time {tick_ns / 1e9:.3f} s did not come within {TICK_INPUT_WAIT_S:.0f} s "
            "(is the arm bridge relaying, the cell rendering?); the tick reads the newest", throttle_duration_sec=10.0)

    def _publish_records(self, records: list) -> None:
        meta = self._episode_meta
        if meta.get("mode") == "eval":  # an evaluation never feeds a learner
            return
        for record in records:
            self.transition_pub.publish(
                transition_msg(
                    record,
                    stamp=seconds_to_stamp(record.obs.stamp),
                    robot_id=self.robot_id,
                    embodiment=self.robot.embodiment,
                    task=self.task.name,
                    episode_id=meta["episode_id"],
                    reward_source=REWARD_SOURCES[self.task.reward.source],
                )
            )

    def _finish(self, records: list) -> None:
        self._publish_records(records)
        self._episode_done.set()

    # --- episodes
    def _accept_goal(self, goal: RunEpisode.Goal) -> GoalResponse:
        if goal.task and goal.task != self.task.name:
            self.get_logger().error(f"rejecting episode for task {goal.task!r}: this actor runs {self.task.name!r}")
            return GoalResponse.REJECT
        if goal.mode not in ("", "train", "eval", "demo"):
            self.get_logger().error(f"rejecting episode with unknown mode {goal.mode!r}")
            return GoalResponse.REJECT
        with self._goal_lock:  # one episode at a time, from its acceptance (resets and waits included) to its result
            if self._busy:
                return GoalResponse.REJECT
            self._busy = True
        return GoalResponse.ACCEPT

    def _call(self, future, timeout: float):
        deadline = time.monotonic() + timeout
        while not future.done():
            if time.monotonic() > deadline or not rclpy.ok():
                return None
            time.sleep(0.005)
        return future.result()

    def _reset(self, seed: int) -> str:
        """Reset the arm (bridge action); '' or an error.

        The bridge refuses a reset until it has driver state, so this waits for the arm state and
        retries a refused or failed reset a few times before giving up; in a cell with a scene reset
        the scene is reset before each retry (an object the last episode left may block the arm).
        """
        if not self.reset_client.wait_for_server(timeout_sec=10.0):
            return "arm bridge reset action 'arm/reset' is not available"
        goal = ResetArm.Goal(
            use_task_reset_pose=True, randomize=True, seed=seed, open_gripper=self.task.action.gripper == "binary"
        )
        error = ""
        for attempt in range(RESET_ATTEMPTS):
            self._wait_for_arm(timeout=5.0)
            error = self._reset_arm(goal)
            if not error:
                break
            self.get_logger().warning(f"reset attempt {attempt + 1}/{RESET_ATTEMPTS}: {error}")
            if self.scene_client.service_is_ready():  # (an object the last episode left may block the arm)
                self._call(self.scene_client.call_async(Trigger.Request()), 10.0)
            time.sleep(1.0)
        return error

    def _reset_scene(self) -> str:
        """Reset the scene (sim or a reset helper, where there is one); '' or an error."""
        if self.scene_client.wait_for_service(timeout_sec=0.5 if self._episodes > 1 else 2.0):
            old_scene = self._scene_seen
            answer = self._call(self.scene_client.call_async(Trigger.Request()), 10.0)
            if answer is None or not answer.success:
                return f"scene reset failed: {answer.message if answer else 'timeout'}"
            # the first observation must show the new scene: object states of the old one still on their way
            # are dropped, and the episode waits (for its inputs) until one of the new scene has come
            with self._lock:
                self._stale_scene = old_scene if old_scene >= 0 else None
                if self._scene_seen == old_scene:
                    self._objects = (None, -1.0)
        return ""

    def _reset_arm(self, goal: ResetArm.Goal) -> str:
        handle = self._call(self.reset_client.send_goal_async(goal), 10.0)
        if handle is None or not handle.accepted:
            return "arm reset goal was not accepted (no driver state yet?)"
        response = self._call(handle.get_result_async(), self.task.reset.duration_s * 4 + 10.0)
        if response is None or not response.result.success:
            return f"arm reset failed: {response.result.message if response else 'timeout'}"
        return ""

    def _wait_for_arm(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (self._arm is None or self._arm.status == ArmState.STATUS_NO_DATA):
            time.sleep(0.05)

    async def _run_episode(self, goal_handle) -> RunEpisode.Result:
        """The action's execution: the episode runs on a thread of its own (it waits for resets, inputs,
        weights and the control loop), so the node's one executor thread stays free for the inputs."""
        finished: Future = Future(executor=self.executor)
        finished.add_done_callback(lambda _: None)  # (scheduling it wakes the executor when the thread ends)

        def episode() -> None:
            try:
                finished.set_result(self._execute(goal_handle))
            except Exception as exc:  # (raised again in the action server)
                finished.set_exception(exc)
            finally:
                with self._goal_lock:
                    self._busy = False

        threading.Thread(target=episode, name="episode", daemon=True).start()
        return await finished

    def _execute(self, goal_handle) -> RunEpisode.Result:
        goal = goal_handle.request
        self._episodes += 1
        result = RunEpisode.Result()
        error = self._reset(seed=self.seed * 100_003 + self._episodes)
        with self._clock_held():  # (from the scene reset to the episode's start: see hold_clock_for_start)
            error = error or self._reset_scene()
            if error:
                self.get_logger().error(error)
                goal_handle.abort()
                result.end_reason = END_SAFETY
                return result
            max_steps = goal.max_steps or self.task.episode_length
            if not self._hold_for_start:  # (held, the clock brings no inputs: the first tick waits for its own)
                self._wait_for_inputs(timeout=3.0)
            # a (re)started actor whose learner is up runs its first step on the newest (latched) weights
            if self.policy.version == 0 and self.count_publishers(WEIGHTS_TOPIC) > 0:
                self._wait_for_weights(1, timeout=5.0)
            self._wait_for_weights(goal.min_policy_version, timeout=WEIGHTS_WAIT_S)
            self._episode_meta = {
                "episode_id": f"{self.robot_id}-{uuid.uuid4().hex[:12]}",
                "mode": goal.mode or "train",
                "start": self._now(),
            }
            self._episode_done.clear()
            self._goal_handle = goal_handle
            self.policy.reset()
            if self.chunks is not None:
                self.chunks.clear()
            episode = Episode(RewardTracker(self.task), self.task.action.dims, max_steps)
            self._last_action = None
            self.episode = episode
        while not self._episode_done.wait(0.05):
            if goal_handle.is_cancel_requested or not rclpy.ok():
                self._finish(episode.abort(END_ABORTED))
                break
        self._goal_handle = None
        s = episode.summary
        self._publish_result(s)
        result.success, result.episode_return, result.length = s.success, s.episode_return, s.length
        result.intervened_steps, result.end_reason, result.truth = s.intervened_steps, s.end_reason, s.truth
        result.policy_versions = sorted(s.policy_versions)
        result.episode_id = self._episode_meta["episode_id"]
        if goal_handle.is_cancel_requested:
            goal_handle.canceled()
        else:
            goal_handle.succeed()
        return result

    def _wait_for_inputs(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self._observe() is None and time.monotonic() < deadline:
            time.sleep(0.02)

    def _wait_for_weights(self, version: int, timeout: float) -> None:
        """Hold the episode start until weights of at least ``version`` are in use (sync pipeline)."""
        deadline = time.monotonic() + timeout
        while self.policy.version < version and time.monotonic() < deadline:
            time.sleep(0.01)
        if self.policy.version < version:
            have = self.policy.version
            self.get_logger().warning(f"starting on weights v{have}: v{version} not loaded within {timeout:.0f} s")

    def _publish_result(self, s) -> None:
        msg = EpisodeResult()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.robot_id, msg.embodiment, msg.task = self.robot_id, self.robot.embodiment, self.task.name
        msg.episode_id, msg.mode = self._episode_meta["episode_id"], self._episode_meta["mode"]
        msg.success, msg.episode_return, msg.length = s.success, s.episode_return, s.length
        msg.intervened_steps, msg.end_reason, msg.truth = s.intervened_steps, s.end_reason, s.truth
        msg.policy_versions = sorted(s.policy_versions)
        msg.duration_s = self._now() - self._episode_meta["start"]
        self.result_pub.publish(msg)
        self.get_logger().info(
            f"episode {msg.episode_id}: success={s.success} return={s.episode_return:.2f} length={s.length} "
            f"intervened={s.intervened_steps} end_reason={s.end_reason}"
        )

    def _publish_diagnostics(self) -> None:
        periods = np.array(self._periods) if self._periods else np.zeros(1)
        arm = self._arm
        values = {
            "loop_rate_hz": 1.0 / max(float(np.mean(periods)), 1e-9) if self._periods else 0.0,
            "loop_period_p50_ms": float(np.percentile(periods, 50)) * 1e3,
            "loop_period_p99_ms": float(np.percentile(periods, 99)) * 1e3,
            "camera_age_ms": self.cameras.max_age_ms(self._now()) if self.cameras is not None else 0.0,
            "state_age_ms": (self._now() - stamp_seconds(arm.header.stamp)) * 1e3 if arm else -1.0,
            "weight_version": self.policy.version,
            "weight_age_s": self.policy.age_s(),
            "episode": self._episodes,
            "intervened_steps": self.episode.summary.intervened_steps if self.episode else 0,
            "chunk_inference_ms": float(np.median(self.chunks.inference_s)) * 1e3 if self.chunks and
            self.chunks.inference_s else 0.0,
            "chunk_held_ticks": self.chunks.player.held_ticks if self.chunks else 0,
        }
        level = WARN if arm is None else 0
        summary = self.episode.summary if self.episode else None
        lines = [
            f"{self.robot_id} {self.task.name} episode {self._episodes}",
            f"step {summary.length if summary else 0}  return {summary.episode_return if summary else 0.0:.2f}",
            f"weights v{self.policy.version}",
        ]
        intervened = bool(self._intervention is not None and self._intervention.active)
        stamp = self.get_clock().now().to_msg()
        self.status_markers_pub.publish(status_markers(self.task, self.robot.base_frame, lines, intervened, stamp))
        self.diag_pub.publish(
            diagnostic_array(self.get_clock().now().to_msg(), f"{self.robot_id}/actor", self.robot_id, values, level)
        )

    def drain(self) -> None:
        """Stop the control loop, then wait (bounded) until the learner has acknowledged the last transitions
        and results: a robot side stopped right after an episode would otherwise lose its final steps on a
        network where they are still in flight (called by ``run`` at Ctrl-C, before the node goes)."""
        self._stop_ticking()
        self.loop.close()
        for publisher in (self.transition_pub, self.result_pub):
            if not publisher.wait_for_all_acked(Duration(seconds=DRAIN_TIMEOUT_S)):
                self.get_logger().warning(f"{publisher.topic_name}: not every message was acknowledged in "
                                          f"{DRAIN_TIMEOUT_S:.0f} s")

    def _stop_ticking(self) -> None:
        """Let a tick waiting for its inputs go at once, and no tick act from now on (the inputs' executor
        has stopped: they would not come)."""
        with self._inputs_arrived:
            self._stopping = True
            self._inputs_arrived.notify_all()
        with self._start_hold:
            self._start_hold.notify_all()

    def shutdown(self) -> None:
        """Stop the control loop and the chunk worker (called by ``run`` on the way out)."""
        self._stop_ticking()
        self.loop.close()
        if self.chunks is not None:
            self.chunks.close()


def main(args: list[str] | None = None) -> None:
    """Run the actor node: inputs on one executor thread; the control loop, weights and episodes each on a
    thread of their own (rclpy's multi-threaded executor would cost most of a core on /clock alone)."""
    torch.set_num_threads(1)
    run(Actor, "actor", args)


if __name__ == "__main__":
    main()
