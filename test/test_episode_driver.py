"""The episode driver counts only episodes the actor ran: an aborted goal (the actor's reset failed) is sent again."""

from __future__ import annotations

import driver_standins as standins
from rclpy.action import ActionServer
from std_msgs.msg import Header

from user_interfaces.action import RunEpisode
from user_interfaces.msg import EpisodeResult
from user_robot.contracts import ACTOR_TICK_TOPIC
from user_robot.nodes.qos import CONTROL, STATUS

NS = "/driver_test"


class ActorStandin:
    """The actor's ``run_episode`` action: aborts the goals numbered in ``aborted`` (from 1), runs the others
    (an ``episode_result`` and a succeeded goal); beats on ``actor/tick`` as the actor does."""

    def __init__(self, harness: standins.Harness, aborted: set[int]) -> None:
        self.node = harness.node("actor", NS)
        self.aborted, self.goals = aborted, 0
        self.results = self.node.create_publisher(EpisodeResult, "episode_result", STATUS)
        beat = self.node.create_publisher(Header, ACTOR_TICK_TOPIC, CONTROL)
        self.node.create_timer(0.1, lambda: beat.publish(Header()))
        ActionServer(self.node, RunEpisode, "run_episode", execute_callback=self._execute)

    def _execute(self, goal_handle) -> RunEpisode.Result:
        self.goals += 1
        if self.goals in self.aborted:
            goal_handle.abort()
            return RunEpisode.Result()
        self.results.publish(EpisodeResult(episode_id=f"e{self.goals}", success=True))
        goal_handle.succeed()
        return RunEpisode.Result(success=True, episode_id=f"e{self.goals}")


def start_driver(spawn, episodes: int):
    return spawn(["-m", "user_policies.nodes.episode_driver", "--ros-args", "-r", f"__ns:={NS}",
                  "-p", f"episodes:={episodes}", "-p", "mode:=eval"], {"RCUTILS_LOGGING_BUFFERED_STREAM": "0"})


def test_an_episode_the_actor_could_not_start_is_sent_again_and_not_counted(spawn) -> None:
    h = standins.Harness()
    try:
        actor = ActorStandin(h, aborted={2, 3})
        driver = start_driver(spawn, episodes=3)
        assert driver.popen.wait(timeout=60) == 0, "\n".join(driver.output())
        assert actor.goals == 5  # 3 episodes run, 2 goals aborted in between
        assert sum("could not start the episode" in line for line in driver.output()) == 2
    finally:
        h.close()


def test_a_driver_whose_episodes_never_start_gives_up_with_an_error(spawn) -> None:
    h = standins.Harness()
    try:
        actor = ActorStandin(h, aborted=set(range(1, 100)))
        driver = start_driver(spawn, episodes=3)
        assert driver.popen.wait(timeout=60) == 1
        assert actor.goals == 5
        assert any("could not start 5 episodes in a row" in line for line in driver.output())
    finally:
        h.close()
