"""``user-rl sim``: run the sim cell's episodes with the scripted expert or a random policy.

The whole robot side runs, as on a real cell: sim cell (speaking the drivers' topics), arm
bridge, teleop, actor and episode driver. With ``--expert`` the sim's scripted expert moves its
virtual SpaceMouse and the actor executes the intervention; without it the actor has no weights
and explores uniformly at random. Ends with one summary line including ``success_rate=``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from user_learner.cli.arg_types import count, positive, seconds
from user_learner.cli.runner import EpisodeLog, add_discovery_argument, run_graph
from user_learner.graph import build_graph
from user_robot.config_loader import UsageError, config_names
from user_robot.robot_config import load_robot


def check_sim_robot(name: str) -> None:
    """``UsageError`` unless robot config ``name`` is a sim cell (``backend: sim``), naming the sim ones."""
    if load_robot(name).backend != "sim":
        sims = [n for n in config_names("robots") if load_robot(n).backend == "sim"]
        raise UsageError(f"robot '{name}' is real hardware; this command runs the sim cell (sim robots: "
                         f"{', '.join(sims)})")


def add_common_sim_arguments(parser: argparse.ArgumentParser, episodes: int) -> None:
    """Flags shared by ``sim`` and ``collect``."""
    parser.add_argument("--task", required=True, help="task config name, e.g. peg_insertion")
    parser.add_argument("--robot", default="sim", help="sim robot config (config/robots/<robot>.yaml with backend "
                        "sim): sim (a Franka Panda), sim_arx (an ARX-style arm)")
    parser.add_argument("--episodes", type=count(1), default=episodes, help="episodes to run")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sim's resets")
    parser.add_argument("--obs", default="state", choices=("state", "pixels"), help="render cameras (pixels) or not")
    parser.add_argument("--real-time-factor", type=positive, default=2.0, help="sim speed relative to real time")
    parser.add_argument("--log-dir", default="logs/sim", help="where node logs go")
    parser.add_argument("--timeout", type=seconds, default=0.0, help="give up after this many seconds (0 = never)")
    add_discovery_argument(parser)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``user-rl sim`` flags."""
    add_common_sim_arguments(parser, episodes=10)
    parser.add_argument("--expert", action="store_true", help="let the scripted expert drive (else: random policy)")


def run_episodes(
    task: str,
    robot: str,
    episodes: int,
    *,
    expert: str,
    seed: int = 0,
    obs: str = "state",
    real_time_factor: float = 2.0,
    log_dir: Path = Path("logs/sim"),
    timeout: float = 0.0,
    setup_monitor: Callable[[Any], None] | None = None,
    lockstep: bool = True,
    done: Callable[[EpisodeLog], bool] | None = None,
    tasks: str = "",
) -> tuple[EpisodeLog, int]:
    """Run ``episodes`` episodes of the robot-side graph on sim robot config ``robot``.

    ``expert`` is the graph's option: ``always`` (demo episodes), ``off`` (the untrained policy:
    uniformly random actions), ``partial`` (the expert takes over part of the time) or ``human``.

    It stops once ``episodes`` results have arrived, or when ``done(log)`` says so if given. ``tasks``: a
    multi-task policy's tasks (the graph option), ``task`` among them.
    """
    check_sim_robot(robot)
    specs = build_graph(
        task,
        robot=robot,
        side="robot",
        obs=obs,
        expert=expert,
        mode="demo" if expert == "always" else "train",
        episodes=episodes,
        seed=seed,
        real_time_factor=real_time_factor,
        lockstep=lockstep,
        tasks=tasks,
    )
    return run_graph(
        specs,
        log_dir,
        robots=1,
        done=done or (lambda log: len(log.results) >= episodes),
        total=episodes,
        unit="episodes",
        timeout_s=timeout,
        setup_monitor=setup_monitor,
    )


def run(args: argparse.Namespace) -> int:
    """Run the episodes and print the summary line."""
    log, code = run_episodes(
        args.task,
        args.robot,
        args.episodes,
        expert="always" if args.expert else "off",
        seed=args.seed,
        obs=args.obs,
        real_time_factor=args.real_time_factor,
        log_dir=Path(args.log_dir),
        timeout=args.timeout,
    )
    print(f"sim task={args.task} robot={args.robot} expert={args.expert} {log.summary()}")
    return code
