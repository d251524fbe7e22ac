"""Success classifiers on the sim cell: precision and recall on unseen episodes, with the confusion matrix.

    python bench/bench_reward_classifier.py [--tasks peg_insertion,pick_and_place] [--train-expert 15]
                                            [--train-partial 10] [--train-random 5] [--test-expert 30]
                                            [--test-random 10] [--hold 10] [--epochs 20] [--out D]

Per task, through the user-facing commands: ``user-rl collect --obs pixels`` records episodes with
camera images, of the scripted expert (success and the approach to it), of a uniformly random
policy (``--driver random``: the failures a learning policy wanders through) and of random actions
with the expert taking over part of the time (``--driver partial``: near misses, as a person records
failures close to success); the training set at seeds 0 / 300 / 100, the test set (expert and
random) at seeds 1000 / 1100 (other placements). Every frame is labelled by the sim
cell's ground truth as it was recorded (``reward.success_hold_steps: --hold`` keeps each expert
episode running on the success pose, as a person holding it while recording does).
``user-rl reward train`` trains on the training recordings (a quarter of the episodes held out to
pick the threshold for precision 0.97) and ``user-rl reward eval`` measures the model on the test
recordings, which it never saw. Prints the table.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from pathlib import Path

from config_overrides import user_rl

from user_robot.config_loader import CONFIG_DIR_ENV, write_config_copy


def figures(line: str) -> dict[str, str]:
    """``key=value`` pairs of a summary line."""
    return dict(re.findall(r"(\w+)=(\S+)", line))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="peg_insertion,pick_and_place")
    parser.add_argument("--train-expert", type=int, default=15)
    parser.add_argument("--train-partial", type=int, default=10)
    parser.add_argument("--train-random", type=int, default=5)
    parser.add_argument("--test-expert", type=int, default=30)
    parser.add_argument("--test-random", type=int, default=10)
    parser.add_argument("--hold", type=int, default=10, help="success frames recorded per episode")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--encoder", default="conv", choices=("conv", "resnet10"))
    parser.add_argument("--out", default="", help="keep recordings and models here (default: a temp dir)")
    args = parser.parse_args()
    tasks = [t for t in args.tasks.split(",") if t]
    root = Path(args.out or tempfile.mkdtemp(prefix="bench_reward_"))
    root.mkdir(parents=True, exist_ok=True)
    config = write_config_copy(root / "config", {f"tasks/{t}": {"reward.success_hold_steps": args.hold} for t in tasks})
    env = {**os.environ, CONFIG_DIR_ENV: str(config)}
    rows = []
    for task in tasks:
        start = time.monotonic()
        bags: dict[str, list[str]] = {"train": [], "test": []}
        plan = (("train", "expert", args.train_expert, 0), ("train", "partial", args.train_partial, 300),
                ("train", "random", args.train_random, 100), ("test", "expert", args.test_expert, 1000),
                ("test", "random", args.test_random, 1100))
        for split, driver, episodes, seed in plan:
            bag = root / f"{task}_{split}_{driver}"
            if episodes and not bag.exists():
                print(user_rl("collect", "--task", task, "--episodes", str(episodes), "--seed", str(seed), "--obs",
                              "pixels", "--real-time-factor", "4", "--out", str(bag), "--log-dir",
                              str(root / "logs"), "--driver", driver, env=env), flush=True)
            if episodes:
                bags[split].append(str(bag))
        model = root / f"{task}_model"
        trained = user_rl("reward", "train", "--task", task, "--bags", *bags["train"], "--out", str(model),
                          "--epochs", str(args.epochs), "--encoder", args.encoder, env=env)
        print(trained, flush=True)
        tested = user_rl("reward", "eval", "--model", str(model), "--bags", *bags["test"], env=env)
        print(tested, flush=True)
        rows.append((task, figures(trained), figures(tested), time.monotonic() - start))
    print(f"\nsuccess classifiers ({args.encoder} encoder, {args.epochs} epochs, cameras wrist+front 128x128; "
          f"trained on {args.train_expert} expert + {args.train_partial} partial + {args.train_random} random "
          f"labelled episodes, tested on "
          f"{args.test_expert} expert + {args.test_random} random unseen episodes)")
    head = ("task", "threshold", "held-out P/R", "test P", "test R", "TP", "FP", "TN", "FN", "wall")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for task, tr, te, wall in rows:
        held = f"{float(tr['precision']):.3f}/{float(tr['recall']):.3f}" if tr.get("precision", "-") != "-" else "-"
        print(f"| {task} | {float(tr['threshold']):.3f} | {held} | {float(te['precision']):.3f} | "
              f"{float(te['recall']):.3f} | {te['tp']} | {te['fp']} | {te['tn']} | {te['fn']} | {wall / 60:.1f} min |")


if __name__ == "__main__":
    main()
