"""``user-rl pretrain``: clone a policy from demo recordings (behaviour cloning, no robot needed).

Trains the task's policy (or ``--policy <kind>``) on the demos' actions with the imitation
algorithm's loss (negative log-likelihood for Gaussian policies, flow matching for flow and chunked
ones), holding out whole episodes for a validation loss, and writes a learner checkpoint under
``--log-dir``: ``user-rl eval --checkpoint <log-dir>`` measures it and ``user-rl train --algo
hg_dagger --init <log-dir>`` fine-tunes it online. Ends with one summary line.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from user_learner.cli.arg_types import count, held_out
from user_robot.config_loader import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``user-rl pretrain`` flags."""
    parser.add_argument("--task", default="", help="task config name, e.g. pick_and_place (with --tasks: the first "
                        "of them unless given)")
    parser.add_argument("--tasks", default="", help="one policy for several tasks, comma-separated: the demos of each, "
                        "recorded with the same --tasks (the state's 'task' one-hot)")
    parser.add_argument("--demos", required=True, nargs="+", help="demo recordings (rosbag2)")
    parser.add_argument("--algo", default="hg_dagger", help="imitation recipe (config/algorithms/<algo>.yaml)")
    parser.add_argument("--policy", default="", help="policy kind replacing the recipe's (e.g. flow)")
    parser.add_argument("--obs", default="state", choices=("state", "pixels"), help="what the policy observes")
    parser.add_argument("--robot", default="sim", help="robot config whose embodiment the weights serve")
    parser.add_argument("--updates", type=count(1), default=2000, help="gradient steps")
    parser.add_argument("--val-fraction", type=held_out, default=0.2, help="share of demo episodes held out")
    parser.add_argument("--log-dir", default="logs/pretrain", help="checkpoint and TensorBoard directory")
    parser.add_argument("--seed", type=int, default=0, help="random seed (network init, batches, the split)")


def run(args: argparse.Namespace) -> int:
    """Clone and print the summary line."""
    from user_learner.bags.transition_bag import read_episodes
    from user_learner.learner_core import LearnerCore, check_policy_runs
    from user_learner.pretrain import Pretrainer, split_episodes
    from user_learner.progress import progress
    from user_policies.observation import check_shared_interface, with_task_identity
    from user_robot.robot_config import load_robot
    from user_robot.task_config import load_task

    names = tuple(t.strip() for t in args.tasks.split(",") if t.strip()) or (args.task,)
    if not names[0]:
        raise UsageError("pretrain needs --task (or --tasks)")
    try:
        task = with_task_identity(load_task(args.task or names[0]), names)
        check_shared_interface([with_task_identity(load_task(name), names) for name in names])
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    robot = load_robot(args.robot)
    check_policy_runs(args.algo, args.obs, args.policy, [task])
    for path in args.demos:
        if not Path(path).exists():
            raise UsageError(f"{path}: no such recording")
    images = args.obs == "pixels"
    episodes = [e for path in args.demos for e in read_episodes(path, images=images, progress=True)]
    foreign = sorted({e.task for e in episodes if e.task and e.task not in names})
    if foreign:
        raise UsageError(f"the demos include other tasks ({', '.join(foreign)}) than {', '.join(names)}")
    train, val = split_episodes(episodes, args.val_fraction, args.seed)
    core = LearnerCore(task, args.algo, args.obs, [robot.embodiment], args.log_dir, seed=args.seed, policy=args.policy)
    try:
        cloner = Pretrainer(core, train, val)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    with progress("cloning", args.updates, "updates") as report:

        def advance(losses: dict) -> None:
            report.update(advance=1, status=" ".join(f"{k} {v:.3f}" for k, v in losses.items()))

        result = cloner.run(args.updates, advance=advance)
    core.close()
    before, after = result.val_before, result.val_after
    val_text = "".join(f" val_{k}={before[k]:.4f}->{after[k]:.4f}" for k in after) or " val=- (no held-out episode)"
    print(
        f"pretrain task={','.join(names)} algo={args.algo} policy={core.spec.kind} obs={args.obs} "
        f"episodes={result.train_episodes}+{result.val_episodes} transitions={result.demo_transitions} "
        f"updates={result.updates} train_loss={result.train_loss:.4f}{val_text} checkpoint={result.checkpoint} "
        f"policy_file={result.policy_file}"
    )
    return 0
