"""``user-rl collect``: record SpaceMouse-driven demos (the scripted expert in sim) to rosbag2 MCAP.

The episodes travel the same path a human's would (virtual SpaceMouse → teleop → actor →
arm bridge), and the recording holds exactly what the actor sent: ``/user/transitions``, each
robot's episode results and interventions, written as they arrive (never the weights topic).
It stops once every requested episode's final step and result are written, and each episode is
put on disk as it ends, so a crash keeps every complete episode. ``--driver random`` records uniformly
random actions instead, ``--driver partial`` random actions with the expert taking over part of the
time (failures, near misses and successes: frames for a success classifier).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from user_learner.bags.transition_bag import (
    EPISODE_RESULT,
    INTERVENTION,
    TRANSITION,
    TRANSITIONS_TOPIC,
    TransitionBagWriter,
)
from user_learner.cli.sim import add_common_sim_arguments, run_episodes
from user_learner.graph import build_graph
from user_robot.config_loader import UsageError

DRIVERS = {"expert": "always", "random": "off", "partial": "partial"}
"""``collect --driver`` values and the sim cell's expert mode each runs."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``user-rl collect`` flags."""
    add_common_sim_arguments(parser, episodes=20)
    parser.add_argument("--out", required=True, help="output bag directory (rosbag2, MCAP)")
    parser.add_argument("--tasks", default="", help="demos for a multi-task policy: its tasks, --task among them "
                        "(the state then carries the task's one-hot)")
    parser.add_argument("--storage", default="mcap", choices=("mcap", "sqlite3"), help="rosbag2 storage format")
    parser.add_argument("--driver", default="expert", choices=tuple(DRIVERS),
                        help="who moves the arm: the scripted expert (demos), uniformly random actions, or random "
                             "actions with the expert taking over part of the time (near misses; frames for a "
                             "success classifier)")


def open_recording_writer(out: str | Path, storage: str = "mcap") -> TransitionBagWriter:
    """A new recording at ``out`` (refused if something is there already)."""
    out = Path(out)
    if out.exists():
        raise UsageError(f"{out} exists; a recording goes to a new directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    return TransitionBagWriter(out, storage=storage)


def record_on(node, writer: TransitionBagWriter, robots: int) -> None:
    """Subscribe ``node`` to what a recording holds, written as it arrives: ``/user/transitions`` and each
    robot's episode results and interventions (``robot_0`` .. ``robot_<robots-1>``)."""
    from rclpy.clock import Clock

    from user_interfaces.msg import EpisodeResult, Intervention, Transition
    from user_robot.nodes.qos import CONTROL, STATUS, TRANSITIONS

    clock = Clock()

    def record(topic: str, msgtype: str):
        return lambda data: writer.write_raw(topic, msgtype, data, clock.now().nanoseconds)

    transitions = record(TRANSITIONS_TOPIC, TRANSITION)
    node.create_subscription(Transition, TRANSITIONS_TOPIC, transitions, TRANSITIONS, raw=True)
    for robot in range(robots):
        topic = f"/robot_{robot}/episode_result"
        node.create_subscription(EpisodeResult, topic, record(topic, EPISODE_RESULT), STATUS, raw=True)
        topic = f"/robot_{robot}/intervention"
        node.create_subscription(Intervention, topic, record(topic, INTERVENTION), CONTROL, raw=True)


def record_demos(
    task: str,
    robot: str,
    episodes: int,
    out: Path,
    *,
    seed: int = 0,
    obs: str = "state",
    real_time_factor: float = 2.0,
    log_dir: Path = Path("logs"),
    storage: str = "mcap",
    timeout: float = 0.0,
    driver: str = "expert",
    tasks: str = "",
):
    """Run ``episodes`` episodes of ``driver`` (:data:`DRIVERS`) on sim robot config ``robot``; record them
    (``tasks``: a multi-task policy's tasks, ``task`` among them)."""
    build_graph(task, robot=robot, side="robot", tasks=tasks)  # every config file, before the recording is created
    writer = open_recording_writer(out, storage)
    try:
        log, code = run_episodes(
            task,
            robot,
            episodes,
            expert=DRIVERS[driver],
            seed=seed,
            obs=obs,
            real_time_factor=real_time_factor,
            log_dir=log_dir / "collect",
            timeout=timeout,
            tasks=tasks,
            setup_monitor=lambda node: record_on(node, writer, robots=1),
            # not at the last result: its episode's final step may still be on its way; and not before the
            # summary's own count of results has them all (its subscription may take the last one later)
            done=lambda log: len(writer.complete) >= episodes and len(log.results) >= episodes,
        )
    finally:
        writer.close()
    return log, code


def run(args: argparse.Namespace) -> int:
    """Record and print a summary line."""
    log, code = record_demos(
        args.task,
        args.robot,
        args.episodes,
        Path(args.out),
        seed=args.seed,
        obs=args.obs,
        real_time_factor=args.real_time_factor,
        log_dir=Path(args.log_dir),
        storage=args.storage,
        timeout=args.timeout,
        driver=args.driver,
        tasks=args.tasks,
    )
    print(f"collect task={args.task} robot={args.robot} out={args.out} {log.summary()}")
    return code
