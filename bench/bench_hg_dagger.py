"""HG-DAgger on the sim cell: clone a policy from a few demos, fine-tune it online with the simulated
human, and measure both with ``user-rl eval`` — the seed's before/after table.

    python bench/bench_hg_dagger.py [--task pick_and_place | --tasks pick_and_place,peg_insertion]
                                    [--policy vla] [--obs pixels] [--demos 3] [--steps 6000 | --episodes 200]
                                    [--eval-episodes 60] [--privileged] [--set hg_dagger.KEY=V]
                                    [--set-task KEY=V] [--lead-ticks N] [--pipeline async|sync] [--log-dir D]

Runs the user-facing commands one after the other: ``user-rl collect`` (scripted-expert demos),
``user-rl pretrain`` (behaviour cloning on all of them), ``user-rl eval`` of the clone, ``user-rl
train --algo hg_dagger --init <clone> --expert human`` for ``--steps`` environment steps, and
``user-rl eval`` of the result (same seed, deterministic). ``--privileged`` adds the sim-only
``object_state`` key (object poses from the simulator's ground truth) to the task's state, for a
CPU-scale run where the policy cannot learn from images; the table says so (its observation column
lists the state keys). ``--set`` changes a key of ``hg_dagger.yaml`` (e.g. ``policy.hidden_dims=[512,512]``)
and ``--set-task`` one of the task's YAML, both in the run's config copy. ``--pipeline sync`` trains
``utd`` x each episode's length updates after it, before the next (the update ratio then does not
depend on the machine's load).
Training runs in strict lockstep (``--lead-ticks 0``: each observation and command at its tick, as
the evaluation runs; ``1`` lets physics lead the actor by a tick, the graph's default). Prints the
table (task, observation, parameters, before, after, interventions by window of episodes, wall times).

``--tasks a,b`` measures one multi-task policy (the issue's VLA bar: ``--tasks
pick_and_place,peg_insertion --policy vla --obs pixels --set-task 'observation.state=[...,instruction]'``):
demos of each task, one clone of them all, each task evaluated on its own, and training with one
sim robot per task (``--robots <n>xsim --tasks a,b``, robot i on task i), a row per task.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from pathlib import Path

from config_overrides import parse_sets, task_changes, user_rl


def parameters(policy_file: Path) -> int:
    """Parameters (tensor elements) in a ``policy.safetensors``."""
    from safetensors.numpy import load_file

    return sum(array.size for array in load_file(str(policy_file)).values())


def intervention_windows(actor_log: Path, window: int) -> list[str]:
    """'episodes a-b: success s/n, intervened i/l steps (p%)' per window of the training episodes."""
    rows = re.findall(r"success=(\w+) return=\S+ length=(\d+) intervened=(\d+)", actor_log.read_text())
    out = []
    for start in range(0, len(rows), window):
        chunk = rows[start : start + window]
        steps, human = sum(int(r[1]) for r in chunk), sum(int(r[2]) for r in chunk)
        wins = sum(r[0] == "True" for r in chunk)
        share = 100 * human / max(steps, 1)
        out.append(f"{start + 1}-{start + len(chunk)}: {wins}/{len(chunk)} ok, {share:.0f}% human")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="pick_and_place")
    parser.add_argument("--tasks", default="", help="one policy for several tasks, comma-separated (a robot each)")
    parser.add_argument("--policy", default="", help="policy kind replacing the recipe's (e.g. vla)")
    parser.add_argument("--obs", default="state", choices=("state", "pixels"))
    parser.add_argument("--demos", type=int, default=3, help="scripted-expert demos of each task")
    parser.add_argument("--pretrain-updates", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=6000, help="HG-DAgger environment steps")
    parser.add_argument("--episodes", type=int, default=0, help="HG-DAgger episodes of all robots instead (0: steps)")
    parser.add_argument("--eval-episodes", type=int, default=60)
    parser.add_argument("--eval-seed", type=int, default=1)
    parser.add_argument("--window", type=int, default=20, help="training episodes per intervention row")
    parser.add_argument("--privileged", action="store_true", help="sim-only object_state key (object poses)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=V", help="hg_dagger.yaml key")
    parser.add_argument("--set-task", action="append", default=[], metavar="KEY=V", help="every task's YAML key")
    parser.add_argument("--lead-ticks", type=int, default=0, help="train's --lockstep-lead-ticks (0: strict)")
    parser.add_argument("--pipeline", choices=("async", "sync"), default="async", help="train's --pipeline")
    parser.add_argument("--log-dir", default="", help="keep logs here (default: a temporary directory)")
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    from user_robot.config_loader import read_yaml, write_config_copy

    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] or [args.task]
    multi = ("--tasks", ",".join(tasks)) if len(tasks) > 1 else ()
    with tempfile.TemporaryDirectory(prefix="bench_hg_dagger_") as tmp:
        root = Path(args.log_dir or tmp)
        env = {**os.environ, "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
        env.setdefault("ROS_DOMAIN_ID", str(os.getpid() % 100 + 1))
        changes: dict[str, dict] = {"algorithms/hg_dagger": parse_sets(args.set)}
        for task in tasks:
            changes[f"tasks/{task}"] = task_changes(task, args.set_task, args.privileged)
        config = write_config_copy(root / "config", changes)
        env["USER_CONFIG_DIR"] = str(config)
        clone, online = root / "clone", root / "hg_dagger"
        demos = [root / f"demos_{task}.mcap" for task in tasks]
        for task, bag in zip(tasks, demos, strict=True):
            print(user_rl("collect", "--task", task, *multi, "--episodes", str(args.demos), "--seed", "500",
                          "--obs", args.obs, "--out", str(bag), "--log-dir", str(root / f"logs_{task}"), env=env))
        policy = ("--policy", args.policy) if args.policy else ()
        start = time.monotonic()
        print(user_rl("pretrain", "--task", tasks[0], *multi, *policy, "--obs", args.obs, "--demos",
                      *map(str, demos), "--updates", str(args.pretrain_updates), "--val-fraction", "0",
                      "--log-dir", str(clone), env=env))
        clone_s = time.monotonic() - start

        def evaluate(checkpoint: Path, name: str) -> dict[str, str]:
            rates = {}
            for task in tasks:
                line = user_rl("eval", "--task", task, "--episodes", str(args.eval_episodes), "--seed",
                               str(args.eval_seed), "--checkpoint", str(checkpoint),
                               "--log-dir", str(root / f"eval_{name}_{task}"), env=env)
                print(line)
                rates[task] = re.search(r"success=(\S+ \(\S+\))", line).group(1)
            return rates

        before = evaluate(clone, "clone")
        start = time.monotonic()
        print(user_rl("train", "--task", tasks[0], *multi, "--robots", f"{len(tasks)}xsim", "--algo", "hg_dagger",
                      *policy, "--obs", args.obs, "--init", str(clone), "--demos", *map(str, demos), "--expert",
                      "human", "--steps", str(args.steps), "--episodes", str(args.episodes), "--log-dir", str(online),
                      "--lockstep-lead-ticks", str(args.lead_ticks), "--pipeline", args.pipeline, env=env))
        train_s = time.monotonic() - start
        after = evaluate(online, "online")

        budget = f"{args.episodes} episodes in all" if args.episodes else f"{args.steps} online steps"
        table = Table(title=f"HG-DAgger on the sim cell ({args.demos} demos a task, {budget}; clone "
                            f"{clone_s / 60:.1f} min, training {train_s / 60:.1f} min)")
        for column in ("task", "observation", "policy (parameters)", "clone (before)", "after HG-DAgger",
                       "training: success, human share"):
            table.add_column(column)
        kind = read_yaml(config / "algorithms" / "hg_dagger.yaml")["policy"]["kind"]
        size = f"{args.policy or kind} ({parameters(clone / 'policy.safetensors'):,})"
        for i, task in enumerate(tasks):
            state = read_yaml(config / "tasks" / f"{task}.yaml")["observation"]["state"]
            observation = ", ".join(state) + (" (object_state: sim-only privileged)" if "object_state" in state else "")
            if args.obs == "pixels":
                observation += " + cameras"
            windows = intervention_windows(online / "ros" / f"robot_{i}.actor.log", args.window)
            table.add_row(task, observation, size, before[task], after[task], "\n".join(windows))
        Console(width=160).print(table)


if __name__ == "__main__":
    main()
