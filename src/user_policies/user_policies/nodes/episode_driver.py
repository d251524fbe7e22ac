"""Runs episodes back to back through the actor's ``run_episode`` action (the loop of launch files).

In the synchronous pipeline (``sync:=true``) it waits after every episode until the learner has
trained on it and published newer weights, and asks the actor to start the next episode only once
it runs them (goal ``min_policy_version``): the collect → train → sync → collect baseline that the
asynchronous pipeline is measured against.

It survives a restarted actor: during an episode its result is asked for again every
``actor_silence_s``; the actor running it answers when the episode ends, a restarted actor answers
at once that it does not know the goal, and the episode is sent to it. The actor beats on
``actor/tick`` at its control rate: while the beat is silent (a dead actor, or one a loaded machine
stalls) the driver waits for an actor before asking again. An action response can be
lost while DDS discovery settles (a goal's answer, or its result, requested before the actor's
action services had matched this client): an unanswered goal is sent again after ``GOAL_ANSWER_S``,
and an episode whose result response never comes counts as ended once the actor has published its
``episode_result``. An episode the actor could not start (its arm reset failed: the goal is aborted)
does not count and is sent again; ``UNSTARTED_LIMIT`` of them in a row stop the driver with an error.
"""

from __future__ import annotations

import contextlib
import threading
import time

import rclpy
from action_msgs.msg import GoalStatus
from rclpy.action import ActionClient
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from std_msgs.msg import Header

from user_interfaces.action import RunEpisode
from user_interfaces.msg import EpisodeResult, LearnerStatus
from user_robot.contracts import ACTOR_TICK_TOPIC, LEARNER_STATUS_TOPIC
from user_robot.nodes.process_exit import leave
from user_robot.nodes.qos import CONTROL, STATUS
from user_robot.nodes.runtime import RCLError, declare, init
from user_robot.nodes.stacks import dump_stacks_on_request

GOAL_ANSWER_S = 10.0
"""Longest wait for the actor to accept or reject a goal before it is sent again."""

UNSTARTED_LIMIT = 5
"""Episodes in a row the actor may fail to start (an arm reset that fails) before the driver gives up."""

RESULT_GRACE_S = 3.0
"""How long the action result may trail the actor's ``episode_result`` message before it counts as lost."""


class EpisodeDriver(Node):
    """Sends ``RunEpisode`` goals in a loop; see the module docstring."""

    def __init__(self) -> None:
        super().__init__("episode_driver")
        described = {
            "episodes": (0, "episodes to run (0 = until shut down)"),
            "mode": ("train", "episode mode: train | eval | demo"),
            "max_steps": (0, "steps per episode (0 = the task's episode length)"),
            "sync": (False, "wait for newer learner weights after every episode (synchronous pipeline)"),
            "sync_timeout_s": (600.0, "longest wait for the learner in sync mode"),
            "min_policy_version": (0, "every episode starts only once the actor runs weights of at least this "
                                      "version (an evaluation's: 1)"),
            "actor_silence_s": (5.0, "wall seconds without an actor tick after which the driver waits for an actor, "
                                     "and the period at which a running episode's result is asked for again "
                                     "(longer than the lockstep sim's timeout, so a paused sim is not a dead actor)"),
        }
        p = declare(self, described)
        self.episodes, self.mode, self.max_steps = p["episodes"], p["mode"], p["max_steps"]
        self.sync, self.sync_timeout = p["sync"], p["sync_timeout_s"]
        self.min_version = p["min_policy_version"]
        self.actor_silence_s = p["actor_silence_s"]
        self._last_beat = time.monotonic()
        self.create_subscription(Header, ACTOR_TICK_TOPIC, self._on_beat, CONTROL)
        self._published_results = 0  # episode_result messages seen (the actor publishes one per episode)
        self._result_published_at = 0.0
        self.create_subscription(EpisodeResult, "episode_result", self._on_result, STATUS)
        self.client = ActionClient(self, RunEpisode, "run_episode")
        self._learner_version = 0
        self._learner_changed = threading.Condition()
        if self.sync:
            self.create_subscription(LearnerStatus, LEARNER_STATUS_TOPIC, self._on_status, STATUS)
        self.done = threading.Event()
        self.failed = False  # never reached an actor

    def _on_beat(self, _msg: Header) -> None:
        self._last_beat = time.monotonic()

    def _on_result(self, _msg: EpisodeResult) -> None:
        self._published_results += 1
        self._result_published_at = time.monotonic()

    def _result_pending(self, published_before: int) -> bool:
        """Whether to go on waiting for the action result (False once it is overdue after the published one)."""
        if self._published_results > published_before:
            return time.monotonic() - self._result_published_at < RESULT_GRACE_S
        return self._actor_alive()

    def _actor_alive(self) -> bool:
        return time.monotonic() - self._last_beat < self.actor_silence_s

    def _on_status(self, msg: LearnerStatus) -> None:
        with self._learner_changed:
            self._learner_version = max(self._learner_version, msg.version)
            self._learner_changed.notify_all()

    def run(self) -> None:
        """Drive episodes (call from a thread other than the executor's)."""
        if not self.client.wait_for_server(timeout_sec=60.0):
            self.get_logger().error("actor action 'run_episode' not available after 60 s")
            self.failed = True
            self.done.set()
            return
        count = unstarted = 0
        while rclpy.ok() and (self.episodes == 0 or count < self.episodes):
            version_before = self._learner_version
            goal = RunEpisode.Goal(mode=self.mode, max_steps=self.max_steps, min_policy_version=self.min_version)
            if self.sync:  # the episode runs entirely on the weights trained on every episode before it
                goal.min_policy_version = max(version_before, self.min_version)
            sent = self._send(goal)
            if sent is None:
                break
            goal_handle, published_before = sent
            if not goal_handle.accepted:
                self.get_logger().warning("episode goal rejected (the actor is busy?); retrying in 1 s")
                threading.Event().wait(1.0)
                continue
            status = self._episode_ended(goal, goal_handle, published_before)
            if status is None:
                break
            if status == GoalStatus.STATUS_ABORTED:  # the actor could not start it (its reset failed)
                unstarted += 1
                if unstarted >= UNSTARTED_LIMIT:
                    self.get_logger().error(f"the actor could not start {unstarted} episodes in a row (see its log)")
                    self.failed = True
                    break
                self.get_logger().warning("the actor could not start the episode (see its log); sending it again")
                continue
            count, unstarted = count + 1, 0
            if self.sync and rclpy.ok():
                self._wait_for_learner(version_before)
        self.done.set()

    def _send(self, goal: RunEpisode.Goal):
        """Send ``goal`` until the actor answers: ``(goal_handle, results published before it)``, None on
        shutdown. (A goal's answer can be lost while discovery settles: then it is sent again.)"""
        while rclpy.ok():
            sent, published_before = time.monotonic(), self._published_results
            goal_handle = _wait(self.client.send_goal_async(goal), lambda s=sent: time.monotonic() - s < GOAL_ANSWER_S)
            if goal_handle is not None:
                return goal_handle, published_before
            if rclpy.ok():
                self.get_logger().warning(f"no answer to the episode goal in {GOAL_ANSWER_S:.0f} s; sending it again")
        return None

    def _episode_ended(self, goal: RunEpisode.Goal, goal_handle, published_before: int) -> int | None:
        """Wait for the episode's end: the goal's final status (``STATUS_ABORTED``: it never started); None on
        shutdown.

        The result is asked for again every ``actor_silence_s``: the actor running the episode answers
        every request when it ends, a restarted actor answers at once that it does not know the goal
        (then the episode goes to it), so a restart is noticed even when it is quicker than the silence
        limit. A silent actor is waited for (a loaded machine can stall it for seconds)."""
        result, asked = goal_handle.get_result_async(), time.monotonic()
        while True:
            response = _wait(result, lambda n=published_before, t=asked: self._result_pending(n)
                             and time.monotonic() - t < self.actor_silence_s)
            if response is not None and response.status != GoalStatus.STATUS_UNKNOWN:
                return response.status
            if not rclpy.ok():
                return None
            if response is not None:
                self.get_logger().info("the episode was lost with its actor: sending it to the actor now running")
                while (sent := self._send(goal)) is not None and not sent[0].accepted:
                    threading.Event().wait(1.0)
                if sent is None:
                    return None
                goal_handle, published_before = sent
            elif self._published_results > published_before and not self._result_pending(published_before):
                self.get_logger().warning("the episode ended (episode_result) but its action result never came")
                return GoalStatus.STATUS_SUCCEEDED
            elif not self._actor_alive():
                self.get_logger().warning(f"no actor tick for {self.actor_silence_s:.1f} s; waiting for an actor")
                self._wait_for_actor()
            result, asked = goal_handle.get_result_async(), time.monotonic()

    def _wait_for_actor(self) -> None:
        while rclpy.ok() and not self._actor_alive():
            threading.Event().wait(0.1)
        self.client.wait_for_server(timeout_sec=30.0)

    def _wait_for_learner(self, version_before: int) -> None:
        with self._learner_changed:
            if not self._learner_changed.wait_for(
                lambda: self._learner_version > version_before or not rclpy.ok(), timeout=self.sync_timeout
            ):
                self.get_logger().warning(f"no newer learner weights after {self.sync_timeout:.0f} s; continuing")


def _wait(future, alive=lambda: True):
    """Block (this thread only) until ``future`` is done; its result, or None on shutdown or once ``alive()`` fails."""
    finished = threading.Event()
    future.add_done_callback(lambda _f: finished.set())
    while rclpy.ok() and alive() and not finished.wait(0.2):
        pass
    return future.result() if future.done() else None


def main(args: list[str] | None = None) -> None:
    """Run the episode driver until its episodes are done or it is shut down."""
    dump_stacks_on_request()
    init("episode_driver", args)
    node = EpisodeDriver()
    executor = SingleThreadedExecutor()  # (callbacks never block: the episodes run on this thread)
    executor.add_node(node)

    def spin() -> None:
        with contextlib.suppress(ExternalShutdownException, RCLError):  # (Ctrl-C; a context shut down under it)
            executor.spin()

    spinner = threading.Thread(target=spin, name="spin")
    spinner.start()
    try:
        node.run()
    except (KeyboardInterrupt, RCLError):  # Ctrl-C shuts the context down under a waiting call
        pass
    finally:
        executor.shutdown()
        spinner.join(timeout=5.0)
        node.destroy_node()
        rclpy.try_shutdown()
    if node.failed:
        raise SystemExit(1)
    leave()


if __name__ == "__main__":
    main()
