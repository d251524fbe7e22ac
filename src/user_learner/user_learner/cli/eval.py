"""``user-rl eval``: a checkpoint's success rate, measured through the real graph with no learning.

Runs the robot side (sim cell or real drivers, arm bridge, teleop, actor, episode driver) with no
learner, publishes the checkpoint's policy on the weights topic, and runs ``--episodes`` episodes in
``eval`` mode: deterministic actions, no exploration, no transitions published. The sim runs in
strict lockstep (physics waits for every command), so a seed gives the same resets and the same
timing whatever the machine's load. Prints ``eval success=k/N (p%) 95% CI [lo%, hi%]`` (Wilson).
With a learned reward (a success classifier) on the sim cell, success is the sim's ground truth.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from user_learner.checkpoint import resolve_checkpoint
from user_learner.cli.arg_types import count, positive, seconds
from user_learner.cli.runner import run_graph
from user_learner.evaluation import (
    check_policy_fits,
    checkpoint_obs,
    checkpoint_tasks,
    checkpoint_weights,
    eval_line,
)
from user_learner.graph import build_graph
from user_policies.observation import with_task_identity
from user_robot.config_loader import UsageError
from user_robot.contracts import TRUTH_SOLVED, TRUTH_UNKNOWN
from user_robot.robot_config import load_robot
from user_robot.task_config import load_task

EVAL_LOCKSTEP_TIMEOUT_S = 15.0
"""How long the eval sim waits for a silent actor before it goes on without it."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``user-rl eval`` flags."""
    parser.add_argument("--task", required=True, help="task config name, e.g. pick_and_place")
    parser.add_argument("--checkpoint", required=True, type=Path,
                        help="a learner log dir (its newest checkpoint), a checkpoints/ root or one checkpoint")
    parser.add_argument("--episodes", type=count(1), default=60, help="episodes to evaluate")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sim's resets")
    parser.add_argument("--robot", default="sim", help="robot config name (a sim or a real cell)")
    parser.add_argument("--obs", default="", choices=("", "state", "pixels"),
                        help="what the policy observes (default: what the checkpoint's policy was trained on)")
    parser.add_argument("--real-time-factor", type=positive, default=2.0, help="sim only: top speed of the sim")
    parser.add_argument("--log-dir", default="logs/eval", help="where node logs go")
    parser.add_argument("--timeout", type=seconds, default=0.0, help="give up after this many seconds (0 = never)")


def evaluate(
    task: str,
    checkpoint: Path,
    episodes: int,
    *,
    seed: int = 0,
    robot: str = "sim",
    obs: str = "",
    real_time_factor: float = 2.0,
    log_dir: Path = Path("logs/eval"),
    timeout: float = 0.0,
) -> tuple[int, int, int]:
    """Run ``episodes`` eval episodes of ``checkpoint``'s policy; returns (successes, episodes run, exit code)."""
    from user_interfaces.msg import PolicyWeights
    from user_policies.weights_codec import packet_to_msg, split_message
    from user_robot.contracts import WEIGHTS_TOPIC
    from user_robot.nodes.qos import WEIGHTS, WEIGHTS_PART_MB, WEIGHTS_PARTS

    robot_cfg = load_robot(robot)
    sim = robot_cfg.backend == "sim"
    tasks = checkpoint_tasks(checkpoint)  # a multi-task policy: the actor tells it which of them this is
    trained_on = checkpoint_obs(checkpoint)
    if obs and obs != trained_on:
        raise UsageError(f"{checkpoint}: its policy observes {trained_on}, not --obs {obs}")
    if tasks and task not in tasks:
        raise UsageError(f"{checkpoint}: a policy of the tasks {', '.join(tasks)}, not of {task}")
    check_policy_fits(checkpoint, with_task_identity(load_task(task), tasks))
    specs = build_graph(
        task, robot=robot, side="robot", obs=trained_on, mode="eval", episodes=episodes, seed=seed,
        real_time_factor=real_time_factor if sim else 1.0, lockstep_lead_ticks=0, tasks=",".join(tasks),
    )
    # strict lockstep: every command lands at its tick, so an evaluation does not depend on the load; and a
    # patient one: a busy actor (it loads the weights as it starts) is waited for, not run past; every episode
    # starts only on the checkpoint's weights (version 1), however long a loaded machine takes to load them; and
    # each starts from the same state of the whole simulation, a fixed number of physics steps after its scene
    # reset (restart_at_scene_reset, hold_clock_for_start): a seed replays exactly
    patient = {"sim_cell": {"lockstep_timeout_s": EVAL_LOCKSTEP_TIMEOUT_S, "restart_at_scene_reset": True},
               "actor": {"hold_clock_for_start": True},
               "episode_driver": {"actor_silence_s": EVAL_LOCKSTEP_TIMEOUT_S + 5.0, "min_policy_version": 1}}
    specs = [dataclasses.replace(s, parameters={**s.parameters, **patient.get(s.executable, {})}) for s in specs]
    message = packet_to_msg(checkpoint_weights(checkpoint, [robot_cfg.embodiment]), PolicyWeights())
    publishers = []

    def publish_weights(node) -> None:
        publishers.append(node.create_publisher(PolicyWeights, WEIGHTS_TOPIC, WEIGHTS))  # latched
        for part in split_message(message, int(WEIGHTS_PART_MB * 1e6), WEIGHTS_PARTS):
            publishers[0].publish(part)

    log, code = run_graph(
        specs,
        log_dir,
        robots=1,
        done=lambda log: len(log.results) >= episodes,
        total=episodes,
        unit="episodes",
        timeout_s=timeout,
        setup_monitor=publish_weights,
    )
    results = log.results[:episodes]
    without = [r.episode_id for r in results if list(r.policy_versions) != [message.version]]
    if without:
        print(f"{len(without)} episodes did not run the checkpoint's policy alone (e.g. {without[0]}); "
              "see the actor's log", flush=True)
        code = code or 1
    if log.learned_reward and all(r.truth != TRUTH_UNKNOWN for r in results):
        said = sum(r.success for r in results)
        print(f"learned reward: success counted by the sim cell's ground truth (the reward source said {said}/"
              f"{len(results)})", flush=True)
        return sum(r.truth == TRUTH_SOLVED for r in results), len(results), code
    return sum(r.success for r in results), len(results), code


def run(args: argparse.Namespace) -> int:
    """Evaluate and print the ``eval success=`` line, naming the checkpoint it evaluated."""
    try:
        checkpoint = resolve_checkpoint(args.checkpoint)  # (the newest one now: a training run may add more)
    except FileNotFoundError as exc:
        raise UsageError(f"--checkpoint: {exc}") from exc
    successes, n, code = evaluate(
        args.task, checkpoint, args.episodes, seed=args.seed, robot=args.robot, obs=args.obs,
        real_time_factor=args.real_time_factor, log_dir=Path(args.log_dir), timeout=args.timeout,
    )
    print(f"{eval_line(successes, n)} task={args.task} robot={args.robot} seed={args.seed} "
          f"checkpoint={checkpoint}")
    return code
