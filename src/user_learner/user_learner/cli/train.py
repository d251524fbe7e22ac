"""``user-rl train``: learn a task online on the sim cell or a real cell, async or sync.

Starts the task graph (robot side + learner, the same nodes as ``launch/<task>.launch.py``; its
flags are the graph's options) and runs until the actors have taken ``--steps`` environment
steps (or, with ``--episodes N``, until N training episodes have ended). ``--side robot`` /
``--side learner`` start one half each, on two machines (same ``ROS_DOMAIN_ID``): the robot side
counts environment steps and waits for weights, the learner side counts the transitions it received
and names the robots it sees. An algorithm that samples demos
(RLPD, SAC Flow's default) on the sim cell without ``--demos`` first records ``--demo-episodes``
scripted-expert demos on each kind of robot of ``--robots`` (kept for the next run). Ends with one
line per robot (``robot=robot_0 embodiment=... task=... success_rate=``) and a summary line:
``success_rate=`` over the last 20 episodes, ``weight_versions=`` (new weight versions the actors
loaded) and, where the learner is seen, ``transitions_received=``. ``--record DIR`` also writes
what the robots sent to a recording (as ``user-rl collect``), for the next run's demos or a success
classifier.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from user_learner.bags.transition_bag import Episode, check_recording
from user_learner.checkpoint import resolve_checkpoint
from user_learner.cli.arg_types import count, seconds
from user_learner.cli.collect import open_recording_writer, record_on
from user_learner.cli.runner import add_discovery_argument, run_graph
from user_learner.graph import (
    add_option_arguments,
    build_graph,
    option_values,
    options,
    robot_names,
    robot_tasks,
    run_tasks,
)
from user_robot.config_loader import UsageError
from user_robot.robot_config import load_robot
from user_robot.task_config import load_task

NOT_TRAIN_OPTIONS = ("mode", "episodes", "use_rviz")
"""Graph options that ``train`` does not offer (it always trains, until ``--steps``)."""



SYNC_FINAL_WAIT_S = 300.0
"""Longest ``--episodes N --pipeline sync`` waits for the learner's weights trained on the last episode."""


class EpisodesDone:
    """``--episodes N``: done once N episodes have ended; with ``trained`` (the synchronous pipeline, whose
    learner trains on each episode after it ends) only once the learner has published weights newer than
    every version the last episodes ran on (at most ``SYNC_FINAL_WAIT_S`` after they ended), so that the
    final checkpoint holds what it learnt from them."""

    def __init__(self, total: int, trained: bool) -> None:
        self.total, self.trained = total, trained
        self._since: float | None = None  # when the N-th episode ended

    def __call__(self, log) -> bool:
        if len(log.results) < self.total:
            return False
        if not self.trained:
            return True
        self._since = self._since or time.monotonic()
        ran_on = max((v for rs in log.by_robot().values() for v in rs[-1].policy_versions), default=0)
        if log.learner is not None and log.learner.version > ran_on:
            return True
        if time.monotonic() - self._since > SYNC_FINAL_WAIT_S:
            print(f"no learner weights trained on the last episode within {SYNC_FINAL_WAIT_S:.0f} s; stopping without",
                  file=sys.stderr)
            return True
        return False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``user-rl train`` flags: the graph's options, then the run's."""
    parser.add_argument("--task", default="", help="task config name, e.g. peg_insertion (with --tasks: the first "
                        "of them unless given)")
    add_option_arguments(parser, exclude=NOT_TRAIN_OPTIONS, defaults={"real_time_factor": 0.0})
    parser.add_argument("--steps", type=count(1), default=15000, help="environment steps (all robots) to train for, "
                        "counted by ended episodes (the run ends with the episode that reaches them); --side learner: "
                        "transitions to receive")
    parser.add_argument("--episodes", type=count(0), default=0, help="stop once this many training episodes have ended "
                        "in this run (all robots; 0: --steps decides); with --pipeline sync, and the learner has "
                        "trained on them")
    parser.add_argument("--demo-episodes", type=count(1), default=20,
                        help="sim only: expert demos to record if no --demos")
    parser.add_argument("--timeout", type=seconds, default=0.0, help="give up after this many seconds (0 = never)")
    parser.add_argument("--record", default="", metavar="DIR",
                        help="also record the run's transitions, episode results and interventions to a new "
                        "rosbag2 recording (MCAP), as `user-rl collect` does: the data for the next run's demos or "
                        "a success classifier (not with --side learner)")
    add_discovery_argument(parser)


def samples_demos(algo: str) -> bool:
    """Whether the recipe ``config/algorithms/<algo>.yaml`` draws from a demo buffer."""
    from user_learner.algo_config import load_algorithm_config

    params = load_algorithm_config(algo).params
    return bool(getattr(params, "demo_ratio", 0.0))


def ensure_demos(args: argparse.Namespace, robots: tuple[str, ...], tasks: tuple[str, ...], sim: bool
                 ) -> tuple[str, ...]:
    """Demo bags for the learner: the given ones, or (demo-sampling algorithms on sim) expert demos recorded
    for each (task, kind of robot) of ``tasks`` and ``robots`` (one each per robot)."""
    identity = run_tasks(options(tasks=args.tasks))
    if args.demos:
        for path in args.demos:
            print(f"demos: {check_recording(path, demo_size_check(path, tasks, identity))}")
        return tuple(args.demos)
    if not samples_demos(args.algo):
        return ()
    if not sim:
        raise UsageError(f"{args.algo} on a real robot needs --demos (record them with `user-rl collect` or ros2 bag)")
    bags = []
    for task, robot in dict.fromkeys(zip(tasks, robots, strict=True)):  # (each pair once, in order)
        # a pixel policy needs the cameras in its demos: they are recorded with the run's observation, and a
        # multi-task policy the task's identity among the run's tasks
        out = demo_cache_path(Path(args.log_dir), task, robot, args.obs, args.demo_episodes, 10_000 + args.seed,
                              identity)
        if out.exists():
            print(f"demos: {check_recording(out, demo_size_check(str(out), tasks, identity))} (recorded before)")
        else:
            record_cached_demos(task, robot, args, out, identity)
        bags.append(str(out))
    return tuple(bags)


def demo_cache_path(log_dir: Path, task: str, robot: str, obs: str, episodes: int, seed: int,
                    identity: Sequence[str]) -> Path:
    """Where ``train`` keeps the expert demos it records: named by what they are, and by a digest of everything
    that shapes them (the task and robot configs as loaded, the observation, the count, the seed, the run's
    tasks), so that a changed config or seed records new ones instead of reusing the old."""
    import hashlib

    shaped_by = repr((load_task(task), load_robot(robot), obs, episodes, seed, tuple(identity)))
    digest = hashlib.sha256(shaped_by.encode()).hexdigest()[:10]
    of = f"_of_{'+'.join(identity)}" if identity else ""
    return log_dir / "demos" / f"{task}_{robot}_{obs}_{episodes}{of}_{digest}.mcap"


def record_cached_demos(task: str, robot: str, args: argparse.Namespace, out: Path, identity: Sequence[str]) -> None:
    """Record ``args.demo_episodes`` scripted-expert demos to ``out``: beside it first, moved there only once
    complete, so that an interrupted or failed recording is never taken for the demos by a later run."""
    import shutil

    from user_learner.cli.collect import record_demos

    partial = out.parent / ".partial" / out.name  # (same name: the files inside are named after it)
    shutil.rmtree(partial, ignore_errors=True)  # (an earlier run's, interrupted)
    print(f"recording {args.demo_episodes} scripted-expert demos ({task}, {args.obs}, {robot}) to {out}")
    _, code = record_demos(task, robot, args.demo_episodes, partial, seed=10_000 + args.seed, obs=args.obs,
                           log_dir=Path(args.log_dir), tasks=",".join(identity))
    if code != 0:
        raise UsageError(f"recording the demos stopped with exit code {code} (node logs under "
                         f"{Path(args.log_dir) / 'collect'}); nothing was kept")
    partial.rename(out)


def demo_size_check(path: str, tasks: Sequence[str], identity: Sequence[str]) -> Callable[[Episode], None]:
    """A check of a recording's episodes: ``UsageError`` naming the recording when an episode's state or action
    size is not that of the run's task it was recorded for (the run's first task, for an episode of another)."""
    from user_policies.observation import policy_sizes, with_task_identity

    sizes = {task: policy_sizes(with_task_identity(load_task(task), identity)) for task in dict.fromkeys(tasks)}

    def check(episode: Episode) -> None:
        task = episode.task if episode.task in sizes else tasks[0]
        step = next((s for s in episode.steps if len(s.action)), None)
        if step is not None and (len(step.state), len(step.action)) != sizes[task]:
            raise UsageError(f"{path}: episode {episode.episode_id} (task {episode.task or '?'}) has state "
                             f"{len(step.state)} / action {len(step.action)}, task {task} takes state "
                             f"{sizes[task][0]} / action {sizes[task][1]}: demos of another task or config?")

    return check


def run(args: argparse.Namespace) -> int:
    """Train and print the summary: one line per robot, then the total."""
    if not args.task:
        if not args.tasks:
            raise UsageError("train needs --task (or --tasks)")
        args.task = args.tasks.split(",")[0].strip()
    names = robot_names(options(robots=args.robots, robot=args.robot))
    sim = all(load_robot(name).backend == "sim" for name in names)
    rtf = args.real_time_factor or (2.0 if sim and len(names) == 1 else 1.0)
    overrides = {**option_values(args, exclude=NOT_TRAIN_OPTIONS), "real_time_factor": rtf if sim else 1.0}
    build_graph(args.task, **{**overrides, "demos": ()})  # every name and config file, before anything starts
    if args.init:
        try:
            resolve_checkpoint(args.init)
        except FileNotFoundError as exc:
            raise UsageError(f"--init: {exc}") from exc
    learner_only = args.side == "learner"  # counts the transitions it received; the others, environment steps
    if args.record and learner_only:
        raise UsageError("--record records on the robot side (where the episodes are): not with --side learner")
    if args.episodes and learner_only:
        raise UsageError("--episodes counts the episodes of the robot side: not with --side learner")
    if learner_only:
        total, unit = args.steps, "transitions"

        def done(log) -> bool:
            return log.learner is not None and log.learner.transitions_received >= total
    elif args.episodes:
        total, unit = args.episodes, "episodes"
        done = EpisodesDone(total, trained=args.pipeline == "sync" and args.side == "all")
    else:
        total, unit = args.steps, "steps"

        def done(log) -> bool:
            return log.steps >= total
    writer = open_recording_writer(args.record) if args.record else None
    try:
        tasks = robot_tasks(args.task, options(robots=args.robots, robot=args.robot, tasks=args.tasks))
        demos = ensure_demos(args, names, tasks, sim) if args.side in ("all", "learner") else ()
        specs = build_graph(args.task, **{**overrides, "demos": demos})
        log, code = run_graph(
            specs,
            Path(args.log_dir),
            robots=len(names),
            done=done,
            total=total,
            unit=unit,
            timeout_s=args.timeout,
            setup_monitor=None if writer is None else (lambda node: record_on(node, writer, len(names))),
            side=args.side,
        )
    finally:
        if writer is not None:
            writer.close()
    policy = f" policy={args.policy}" if args.policy else ""
    learner = "" if log.learner is None else (
        f" transitions_received={log.learner.transitions_received} updates={log.learner.updates}"
        f" learner_version={log.learner.version}"
    )
    for line in log.robot_lines():
        print(f"train {line}")
    task = args.tasks if run_tasks(options(tasks=args.tasks)) else args.task
    print(f"train task={task} algo={args.algo}{policy} obs={args.obs} pipeline={args.pipeline} side={args.side} "
          f"{log.summary()}{learner}")
    return code
