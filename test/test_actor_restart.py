"""A killed actor: the arm bridge holds the arm, and the restarted actor runs episodes again at once."""

from __future__ import annotations

import time

import pytest
from graph_watch import Watcher, failure_report, start_graph


@pytest.mark.slow
def test_kill_9_of_the_actor_mid_episode_then_episodes_resume(tmp_path) -> None:
    from user_interfaces.msg import ArmState
    from user_robot.nodes.qos import CONTROL

    watcher = Watcher(keep=True)
    bridge: list[int] = []
    watcher.node.create_subscription(ArmState, "/robot_0/arm/state", lambda m: bridge.append(m.status), CONTROL)
    procs = start_graph(tmp_path, side="robot")
    actor = procs.find("actor", "robot_0")
    try:
        try:
            watcher.wait("a first episode", lambda: len(watcher.results) >= 1, 180)
            finished = {r.episode_id for r in watcher.results}
            watcher.wait("the next episode under way",
                         lambda: any(m.step >= 20 and m.episode_id not in finished for m in list(watcher.steps)), 60)
            seen = len(bridge)
            actor.popen.kill()  # kill -9, mid-episode
            actor.popen.wait()
            # The lockstep cell learns of the dead actor when its DDS liveliness lease runs out (1 s) and runs on
            # without it: no command for the watchdog's time, so the bridge holds the arm. (Restarted at once, the
            # new actor could take the episode up before the clock has run that long, and no watchdog is due.) On a
            # starved machine the bridge may first miss the driver state as the clock runs on (an outage, then
            # "holding until the first command"): a hold all the same.
            watcher.wait("the bridge to hold the arm",
                         lambda: ArmState.STATUS_HOLDING in bridge[seen:], 30)
            actor.start()  # started again (as launch's respawn does)
            watcher.wait("the restarted actor", lambda: actor.log_path.read_text().count("actor ready") >= 2, 120)
            ready = time.monotonic()
            before = {m.episode_id for m in list(watcher.steps)}
            watcher.wait("an episode of the restarted actor",
                         lambda: any(m.step == 0 and m.episode_id not in before for m in list(watcher.steps)), 60)
            resumed = time.monotonic()
        except AssertionError:
            raise AssertionError(failure_report(procs)) from None
    finally:
        procs.stop()
        watcher.close()
    # the driver asks for the episode's result every 5 s (actor_silence_s): the restarted actor does not know the
    # goal, so the episode goes to it; then a reset, then step 0. Within one re-ask plus the reset (5 s of slack
    # for a loaded machine), not after the episode's time limit nor never (the goal lost).
    assert resumed - ready <= 10.0, f"episodes resumed {resumed - ready:.1f} s after the restarted actor was ready"
