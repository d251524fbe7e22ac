"""``user-rl reward``: success classifiers, the learned reward of real cells.

- ``label``: walk a recording's episodes in a terminal and mark each one's success frames (the
  recording's own verdict is proposed; Enter takes it); written to the bag's ``success_labels.json``.
- ``train``: train a classifier on the cameras from labelled recordings, hold out whole episodes,
  choose the threshold for a target precision, write the model directory.
- ``eval``: a model's confusion matrix on other recordings.

Use a model online with ``reward.source: classifier`` and ``reward.classifier: <dir>`` in the task.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

from user_learner.cli.arg_types import count, held_out, positive, probability
from user_robot.config_loader import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``user-rl reward`` subcommands and flags."""
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    label = sub.add_parser("label", formatter_class=parser.formatter_class,
                           help="mark the success frames of a recording's episodes (keyboard)")
    label.add_argument("--bag", required=True, help="recording (rosbag2 directory or MCAP file)")
    label.add_argument("--frames-dir", default="", help="also write each step's camera images as PNG here, to look at")
    label.add_argument("--relabel", action="store_true", help="ask again for episodes that already have labels")
    train = sub.add_parser("train", formatter_class=parser.formatter_class,
                           help="train a success classifier from labelled recordings")
    train.add_argument("--task", required=True, help="task config name (its cameras are the default)")
    train.add_argument("--bags", required=True, nargs="+", help="recordings with camera images")
    train.add_argument("--out", required=True, help="model directory to write")
    train.add_argument("--cameras", default="", help="comma-separated cameras (default: the task's)")
    train.add_argument("--encoder", default="conv", choices=("conv", "resnet10"), help="per-camera image encoder")
    train.add_argument("--freeze-encoder", action="store_true", help="resnet10: train only the head")
    train.add_argument("--epochs", type=count(1), default=20, help="passes over the training frames")
    train.add_argument("--batch", type=count(1), default=64, help="frames per gradient step")
    train.add_argument("--lr", type=positive, default=3e-4, help="learning rate")
    train.add_argument("--val-fraction", type=held_out, default=0.25, help="share of episodes held out")
    train.add_argument("--target-precision", type=probability, default=0.97,
                       help="the threshold reaches this precision")
    train.add_argument("--seed", type=int, default=0, help="seed of the split, init and augmentation")
    ev = sub.add_parser("eval", formatter_class=parser.formatter_class,
                        help="a classifier's precision, recall and confusion matrix on recordings")
    ev.add_argument("--model", required=True, help="model directory (user-rl reward train --out)")
    ev.add_argument("--bags", required=True, nargs="+", help="recordings with camera images")
    ev.add_argument("--threshold", type=probability, default=None, help="instead of the model's")


def run(args: argparse.Namespace) -> int:
    """Dispatch to the subcommand."""
    return {"label": _label, "train": _train, "eval": _eval}[args.action](args)


def read_recordings(bags: list[str], images: bool = True):
    """The complete episodes of recordings ``bags`` and their success labels; a missing one is a usage error."""
    from user_learner.bags.transition_bag import read_episodes
    from user_learner.reward_training import read_labels

    episodes, labels = [], {}
    for bag in bags:
        if not Path(bag).exists():
            raise UsageError(f"{bag}: no such recording")
        episodes += list(read_episodes(bag, images=images, progress=True))
        try:
            labels.update(read_labels(bag))
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
    return episodes, labels


def _frames(episodes, cameras, labels):
    from user_learner.reward_training import labelled_frames

    try:
        return labelled_frames(episodes, cameras, labels)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def _train(args: argparse.Namespace) -> int:
    from user_learner.pretrain import split_episodes
    from user_learner.progress import progress
    from user_learner.reward_training import train_classifier
    from user_policies.success_classifier import ClassifierSpec, save_classifier
    from user_robot.task_config import load_task

    task = load_task(args.task)
    cameras = tuple(c for c in args.cameras.split(",") if c) or task.observation.cameras
    episodes, labels = read_recordings(args.bags)
    foreign = sorted({e.task for e in episodes if e.task and e.task != task.name})
    if foreign:
        raise UsageError(f"the recordings include other tasks ({', '.join(foreign)}) than {task.name}")
    train_eps, val_eps = split_episodes(episodes, args.val_fraction, args.seed)
    train = _frames(train_eps, cameras, labels)
    val = _frames(val_eps, cameras, labels) if val_eps else None
    size = tuple(int(v) for v in train.images[cameras[0]].shape[1:3])
    spec = ClassifierSpec(task.name, cameras, size, encoder=args.encoder, freeze_encoder=args.freeze_encoder)
    print(f"frames: train {len(train)} ({train.positives} success) from {len(train_eps)} episodes, held out "
          f"{len(val) if val else 0} ({val.positives if val else 0} success) from {len(val_eps)} episodes")
    with progress("training", args.epochs, "epochs") as report:
        try:
            result = train_classifier(spec, train, val, epochs=args.epochs, batch=args.batch, lr=args.lr,
                                      target_precision=args.target_precision, seed=args.seed,
                                      advance=report.advance)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
    held = result.held_out
    metrics = {"train_episodes": len(train_eps), "held_out_episodes": len(val_eps), "train_frames": len(train),
               "target_precision": args.target_precision}
    if held is not None:
        metrics.update(**held.measured(), tp=held.tp, fp=held.fp, tn=held.tn, fn=held.fn)
    result.model.spec.metrics.update(metrics)
    out = save_classifier(result.model, args.out)
    figures = held.line() if held is not None else "precision=- recall=- (no held-out episode)"
    print(f"reward train task={task.name} cameras={','.join(cameras)} image={size[0]}x{size[1]} "
          f"encoder={args.encoder} {figures} threshold={result.threshold:.4f} model={out}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from user_learner.reward_training import Confusion, predict
    from user_policies.success_classifier import load_classifier

    try:
        model = load_classifier(args.model)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    episodes, labels = read_recordings(args.bags)
    foreign = sorted({e.task for e in episodes if e.task and e.task != model.spec.task})
    if foreign:
        raise UsageError(f"the model is for {model.spec.task}; the recordings hold {', '.join(foreign)}")
    frames = _frames(episodes, model.spec.cameras, labels)
    threshold = model.spec.threshold if args.threshold is None else args.threshold
    confusion = Confusion.of(predict(model, frames), frames.labels, threshold)
    print(f"reward eval task={model.spec.task} episodes={len(episodes)} frames={len(frames)} "
          f"threshold={threshold:.4f} {confusion.line()}")
    return 0


def parse_steps(text: str, length: int) -> set[int]:
    """``"40-52,60"`` → {40, ..., 52, 60}; a :class:`ValueError` says what is wrong."""
    steps: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        low, _, high = part.partition("-")
        try:
            first, last = int(low), int(high or low)
        except ValueError:
            raise ValueError(f"{part!r}: expected a step or a range of steps (e.g. 40-52)") from None
        if first > last:
            raise ValueError(f"{part}: a range goes from its first step to its last (e.g. {last}-{first})")
        if not 0 <= first <= last <= length:
            raise ValueError(f"{part}: steps run from 0 to {length}")
        steps.update(range(first, last + 1))
    return steps


def ranges(steps: set[int]) -> str:
    """{40, ..., 52, 60} → ``"40-52,60"`` (``"none"`` when empty)."""
    out, run = [], []
    for s in sorted(steps):
        if run and s != run[-1] + 1:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
            run = []
        run.append(s)
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out) or "none"


def _answers() -> Iterator[str]:
    for line in sys.stdin:
        yield line.rstrip("\n")


def _label(args: argparse.Namespace) -> int:
    from user_learner.bags.images import write_png
    from user_learner.reward_training import read_labels, success_steps, write_labels

    episodes, _ = read_recordings([args.bag], images=bool(args.frames_dir))
    try:
        labels = read_labels(args.bag)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    answers = _answers()
    print("For each episode: Enter takes the proposed success steps, or type steps (e.g. 40-52,60), "
          "n for none, s to skip, q to save and quit.")
    labelled = 0
    for i, episode in enumerate(episodes):
        if episode.episode_id in labels and not args.relabel:
            continue
        if args.frames_dir:
            folder = Path(args.frames_dir) / episode.episode_id
            for step in episode.steps:
                for cam, image in step.images.items():
                    write_png(folder / f"{step.step:04d}_{cam}.png", image)
        proposed = success_steps(episode, labels)
        length = episode.steps[-1].step
        print(f"[{i + 1}/{len(episodes)}] episode {episode.episode_id}: steps 0-{length}, "
              f"success={episode.success}, return={episode.episode_return:.2f}, proposed success steps: "
              f"{ranges(proposed)}" + (f" (frames in {folder})" if args.frames_dir else ""))
        while True:
            print("success steps> ", end="", flush=True)
            answer = next(answers, "q").strip().lower()
            if answer in ("q", "s"):
                break
            try:
                steps = proposed if answer == "" else set() if answer == "n" else parse_steps(answer, length)
            except ValueError as exc:
                print(f"  {exc}")
                continue
            labels[episode.episode_id] = steps
            write_labels(args.bag, labels)  # after every episode: quitting or a crash keeps what was given
            labelled += 1
            break
        if answer == "q":
            break
    print(f"reward label bag={args.bag} labelled={labelled} total_labelled={len(labels)} episodes={len(episodes)}")
    return 0
