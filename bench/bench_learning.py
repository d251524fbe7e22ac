"""Learning on the sim cell: RLPD or SAC Flow with scripted demos, the full asynchronous graph, state observations.

    python bench/bench_learning.py [--task peg_insertion] [--algo rlpd] [--steps 15000] [--demos 20]
                                   [--obs state|pixels] [--set rlpd.num_critics=2 ...]

Records ``--demos`` scripted-expert demos through the real topics, trains online with the whole
graph (sim cell in lockstep, arm bridge, teleop, actor, episode driver, learner as separate
processes), and prints the learning curve: success over each window of episodes, against a
random-policy baseline measured in the same run, then the env steps at which a sliding 20-episode
window first reaches 80% and the learner's updates per second; then ``user-rl eval`` of the
untrained and of the final policy over ``--eval-episodes`` episodes (deterministic, same seed). The
bars: RLPD >= 80% success over the last 20 episodes within 15k environment steps, SAC Flow within
20k, on a 2-core CPU.

``--obs pixels`` runs the pixel recipe (``<algo>_cnn.yaml``; ``--set`` then changes that file): the
cameras are rendered, and demos, training and evals see them.

``--reward-classifier DIR`` runs the same benchmark with the task's reward from a success
classifier on the cameras (``user-rl reward train``; the policy still observes state): demos and
training episodes are rewarded and ended by the classifier, and every success figure is the sim
cell's ground truth (the classifier's own verdicts are printed beside it).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from config_overrides import config_overrides, parse_sets

from user_learner.cli.collect import record_demos
from user_learner.cli.eval import evaluate
from user_learner.cli.runner import run_graph
from user_learner.cli.sim import run_episodes
from user_learner.cli.train import samples_demos
from user_learner.evaluation import eval_line
from user_learner.graph import algorithm_choices, build_graph
from user_learner.learner_core import recipe_name
from user_robot.contracts import TRUTH_SOLVED


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="peg_insertion")
    parser.add_argument("--algo", default="rlpd", choices=algorithm_choices())
    parser.add_argument("--robot", default="sim")
    parser.add_argument("--obs", default="state", choices=("state", "pixels"))
    parser.add_argument("--steps", type=int, default=15000)
    parser.add_argument("--demos", type=int, default=20)
    parser.add_argument("--real-time-factor", type=float, default=2.0)
    parser.add_argument("--window", type=int, default=20, help="episodes per row of the learning curve")
    parser.add_argument("--eval-episodes", type=int, default=60,
                        help="user-rl eval episodes of the untrained and the final policy (0 = skip)")
    parser.add_argument("--eval-seed", type=int, default=1000)
    parser.add_argument("--log-dir", default="", help="keep logs here (default: a temporary directory)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of config/algorithms/<algo>.yaml, e.g. rlpd.num_critics=2")
    parser.add_argument("--task-set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of config/tasks/<task>.yaml, e.g. reward.pose_gate=0.01")
    parser.add_argument("--reward-classifier", default="", metavar="DIR",
                        help="reward from this success classifier instead of the sim's ground truth")
    args = parser.parse_args()
    sets = parse_sets(args.set)
    task_sets = parse_sets(args.task_set)
    if args.reward_classifier:
        model = str(Path(args.reward_classifier).resolve())
        task_sets.update({"reward.source": "classifier", "reward.classifier": model})
    recipe = recipe_name(args.algo, args.obs)
    changes = {f"algorithms/{recipe}": sets, f"tasks/{args.task}": task_sets}
    os.environ.setdefault("ROS_DOMAIN_ID", str(os.getpid() % 100 + 1))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"

    from rich.console import Console
    from rich.table import Table

    with tempfile.TemporaryDirectory(prefix="bench_learning_") as tmp, config_overrides(Path(tmp), changes):
        root = Path(args.log_dir or tmp)
        random_log, _ = run_episodes(args.task, args.robot, 20, expert="off", log_dir=root / "random")
        demos: tuple[str, ...] = ()
        if samples_demos(args.algo):
            bag = root / "demos"
            if not bag.exists():
                record_demos(args.task, args.robot, args.demos, bag, seed=10_000, obs=args.obs, log_dir=root)
            demos = (str(bag),)
        specs = build_graph(
            args.task,
            robot=args.robot,
            algo=args.algo,
            obs=args.obs,
            real_time_factor=args.real_time_factor,
            log_dir=str(root / "train"),
            demos=demos,
        )
        start = time.monotonic()
        log, code = run_graph(
            specs,
            root / "train",
            robots=1,
            done=lambda log: log.steps >= args.steps,
            total=args.steps,
            unit="steps",
        )
        wall = time.monotonic() - start
        if code != 0:
            raise SystemExit(f"training failed (exit {code})")
        evals = evaluate_before_after(args, root) if args.eval_episodes else {}

    def won(result) -> bool:  # with a learned reward, the sim's ground truth decides
        return result.truth == TRUTH_SOLVED if args.reward_classifier else result.success

    baseline = sum(won(r) for r in random_log.results[-20:]) / max(len(random_log.results[-20:]), 1)
    changed = "".join(f", {k}={v}" for k, v in {**sets, **parse_sets(args.task_set)}.items())
    reward = ", reward: success classifier" if args.reward_classifier else ""
    table = Table(
        title=f"{args.task}, {recipe}{changed}, {args.demos} demos, {args.obs} obs{reward}, "
        f"sim x{args.real_time_factor}"
    )
    columns = ["episodes", "env steps (end)", "success", "vs random"]
    if args.reward_classifier:
        columns[2:3] = ["success (ground truth)", "classifier said"]
    for col in columns:
        table.add_column(col)
    steps = 0
    results = log.results
    for i in range(0, len(results), args.window):
        chunk = results[i : i + args.window]
        steps += sum(r.length for r in chunk)
        rate = sum(won(r) for r in chunk) / len(chunk)
        said = [f"{sum(r.success for r in chunk) / len(chunk):.2f}"] if args.reward_classifier else []
        table.add_row(
            f"{i + 1}-{i + len(chunk)}",
            str(steps),
            f"{rate:.2f}",
            *said,
            f"{rate / baseline:.1f}x" if baseline else f"+{rate:.2f}",
        )
    Console(width=120).print(table)
    first = first_window_at([won(r) for r in results], [r.length for r in results], args.window, 0.8)
    updates = log.learner.updates if log.learner else 0
    print(
        f"random policy success={baseline:.2f}; {log.summary()}; wall={wall / 60:.1f} min; updates={updates} "
        f"({updates / wall:.2f}/s); first {args.window}-episode window at >= 0.8 ends at "
        + (f"episode {first[0]}, env step {first[1]}" if first else "none")
    )
    for label, (successes, n) in evals.items():
        print(f"{label}: {eval_line(successes, n)} (user-rl eval, seed {args.eval_seed})")


def evaluate_before_after(args: argparse.Namespace, root: Path) -> dict[str, tuple[int, int]]:
    """``user-rl eval`` of the untrained policy (its seed-0 initialisation) and of the final checkpoint."""
    from user_learner.learner_core import LearnerCore
    from user_robot.robot_config import load_robot
    from user_robot.task_config import load_task

    before = LearnerCore(load_task(args.task), args.algo, args.obs, [load_robot(args.robot).embodiment],
                         root / "untrained", tensorboard=False)
    before.save()
    out = {}
    for label, checkpoint in (("before (untrained)", root / "untrained"), ("after", root / "train")):
        successes, n, code = evaluate(args.task, checkpoint, args.eval_episodes, seed=args.eval_seed,
                                      robot=args.robot, obs=args.obs, log_dir=root / "eval" / label.split()[0])
        if code != 0:
            raise SystemExit(f"eval of {checkpoint} failed (exit {code})")
        out[label] = (successes, n)
    return out


def first_window_at(wins: list[bool], lengths: list[int], window: int, rate: float) -> tuple[int, int] | None:
    """(episode, env steps) at the end of the first sliding ``window`` of episodes with success >= ``rate``."""
    steps = 0
    for i, length in enumerate(lengths):
        steps += length
        recent = wins[max(0, i + 1 - window) : i + 1]
        if len(recent) == window and sum(recent) / window >= rate:
            return i + 1, steps
    return None


if __name__ == "__main__":
    main()
