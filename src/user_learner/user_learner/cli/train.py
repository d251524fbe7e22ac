"""``user-rl train``: learn a task online on the sim cell or a real cell, async or sync.

Starts the task graph (robot side + learner, the same nodes as ``launch/<task>.launch.py``) and
runs until the actors have taken ``--steps`` environment steps. RLPD on the sim cell without
``--demos`` first records ``--demo-episodes`` scripted-expert demos (kept for the next run).
Ends with one summary line: ``success_rate=`` over the last 20 episodes and
``weight_versions=`` (new weight versions the actors loaded).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from user_learner.cli.runner import run_graph
from user_learner.graph import build_graph
from user_robot.robot_config import load_robot


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``user-rl train`` flags."""
    parser.add_argument("--task", required=True, help="task config name, e.g. peg_insertion")
    parser.add_argument("--algo", default="rlpd", choices=("sac", "rlpd"), help="learning algorithm")
    parser.add_argument("--robot", default="sim", help="robot config name (sim, sim_arx, franka, ...)")
    parser.add_argument("--robots", type=int, default=1, help="number of robots feeding the learner")
    parser.add_argument("--obs", default="state", choices=("state", "pixels"), help="policy observation")
    parser.add_argument("--pipeline", default="async", choices=("async", "sync"), help="actor-learner pipeline")
    parser.add_argument("--steps", type=int, default=15000, help="environment steps (all robots) to train for")
    parser.add_argument("--demos", nargs="*", default=None, help="demo bags for RLPD's demo buffer")
    parser.add_argument("--demo-episodes", type=int, default=20, help="sim only: expert demos to record if no --demos")
    parser.add_argument("--resume", action="store_true", help="resume the learner from its newest checkpoint")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument(
        "--real-time-factor", type=float, default=0.0, help="sim speed (0 = 2 for one sim robot, else 1)"
    )
    parser.add_argument("--log-dir", default="logs", help="TensorBoard logs, checkpoints, demos and node logs")
    parser.add_argument("--timeout", type=float, default=0.0, help="give up after this many seconds (0 = never)")


def ensure_demos(args: argparse.Namespace, sim: bool) -> tuple[str, ...]:
    """Demo bags for the learner: the given ones, or (RLPD on sim) freshly recorded expert demos."""
    if args.demos:
        return tuple(args.demos)
    if args.algo != "rlpd":
        return ()
    if not sim:
        raise SystemExit("RLPD on a real robot needs --demos (record them with `user-rl collect` or ros2 bag)")
    from user_learner.cli.collect import record_demos

    out = Path(args.log_dir) / "demos" / f"{args.task}_{args.robot}_{args.demo_episodes}.mcap"
    if not out.exists():
        print(f"recording {args.demo_episodes} scripted-expert demos to {out}")
        record_demos(
            args.task, args.robot, args.demo_episodes, out, seed=10_000 + args.seed, log_dir=Path(args.log_dir)
        )
    return (str(out),)


def run(args: argparse.Namespace) -> int:
    """Train and print the summary line."""
    sim = load_robot(args.robot).backend == "sim"
    rtf = args.real_time_factor or (2.0 if sim and args.robots == 1 else 1.0)
    demos = ensure_demos(args, sim)
    specs = build_graph(
        args.task,
        robot=args.robot,
        algo=args.algo,
        robots=args.robots,
        pipeline=args.pipeline,
        obs=args.obs,
        log_dir=args.log_dir,
        resume=args.resume,
        seed=args.seed,
        real_time_factor=rtf if sim else 1.0,
        demos=demos,
    )
    log, code = run_graph(
        specs,
        Path(args.log_dir),
        robots=args.robots,
        done=lambda log: log.steps >= args.steps,
        total=args.steps,
        unit="steps",
        timeout_s=args.timeout,
    )
    print(f"train task={args.task} algo={args.algo} obs={args.obs} pipeline={args.pipeline} {log.summary()}")
    return code
