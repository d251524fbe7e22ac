"""``user-rl encoder``: pretrain the pixel recipes' frozen ResNet-10 on your own recordings.

    user-rl encoder --task peg_insertion --bags demos [more ...] --out encoder.safetensors

Trains the backbone to predict parts of each recorded observation's state from its camera images
(:mod:`user_learner.encoder_pretraining`; ``--targets``: by default what a camera can see, the TCP
pose, the gripper and, in sim with the privileged key, the objects' poses), holds out whole
episodes, and writes the backbone as the safetensors file that ``policy.pretrained_encoder`` in a
pixel recipe (``config/algorithms/*_cnn.yaml``) loads and freezes. The file must then be at the
same path on every machine that runs the policy (weights leave the frozen backbone out; each side
checks it by hash).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from user_learner.cli.arg_types import count, held_out, positive
from user_robot.config_loader import UsageError

VISIBLE_KEYS = ("tcp_pose", "gripper", "object_state")
"""State keys a camera can see (velocities and wrench it cannot, from one frame)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``user-rl encoder`` flags."""
    parser.add_argument("--task", required=True, help="task config name (its cameras are the default)")
    parser.add_argument("--bags", required=True, nargs="+", help="recordings with camera images")
    parser.add_argument("--out", required=True, help="safetensors file to write")
    parser.add_argument("--cameras", default="", help="comma-separated cameras (default: the task's)")
    parser.add_argument("--targets", default="", help="comma-separated state keys to predict (default: those of "
                        f"{','.join(VISIBLE_KEYS)} the task observes)")
    parser.add_argument("--epochs", type=count(1), default=20, help="passes over the training frames")
    parser.add_argument("--batch", type=count(1), default=32, help="frames per gradient step")
    parser.add_argument("--lr", type=positive, default=1e-3, help="learning rate")
    parser.add_argument("--val-fraction", type=held_out, default=0.2, help="share of episodes held out")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split, init and augmentation")


def run(args: argparse.Namespace) -> int:
    """Read the recordings, train, write the backbone; print the held-out R²."""
    from safetensors.torch import save_file

    from user_learner.cli.reward import read_recordings
    from user_learner.encoder_pretraining import pretrain_encoder, state_frames
    from user_learner.pretrain import split_episodes
    from user_learner.progress import progress
    from user_policies.observation import state_slice
    from user_robot.task_config import load_task

    task = load_task(args.task)
    cameras = tuple(c for c in args.cameras.split(",") if c) or task.observation.cameras
    if not cameras:
        raise UsageError(f"task {task.name} has no cameras (observation.cameras); name them with --cameras")
    if args.epochs < 1 or args.batch < 1:
        raise UsageError("--epochs and --batch must be at least 1")
    targets = [k for k in args.targets.split(",") if k] or [k for k in VISIBLE_KEYS if k in task.observation.state]
    slices = {k: state_slice(task, k) for k in targets}
    unknown = [k for k, part in slices.items() if part is None]
    if unknown or not targets:
        raise UsageError(f"--targets: task {task.name} observes {', '.join(task.observation.state)}; "
                         f"{'not ' + ', '.join(unknown) if unknown else 'none of ' + ', '.join(VISIBLE_KEYS)}")
    columns = np.concatenate([np.arange(p.start, p.stop) for p in slices.values() if p is not None])
    episodes, _labels = read_recordings(args.bags)
    foreign = sorted({e.task for e in episodes if e.task and e.task != task.name})
    if foreign:
        raise UsageError(f"the recordings include other tasks ({', '.join(foreign)}) than {task.name}")
    try:
        train_eps, val_eps = split_episodes(episodes, args.val_fraction, args.seed)
        train = state_frames(train_eps, cameras, columns)
        val = state_frames(val_eps, cameras, columns) if val_eps else None
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    print(f"frames: train {len(train)} from {len(train_eps)} episodes, held out {len(val) if val else 0} "
          f"from {len(val_eps)} episodes; targets {','.join(targets)} ({train.states.shape[1]} values)")
    with progress("pretraining the encoder", args.epochs, "epochs") as report:
        result = pretrain_encoder(train, val, cameras, epochs=args.epochs, batch=args.batch, lr=args.lr,
                                  seed=args.seed, advance=report.advance)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figures = {"task": task.name, "cameras": list(cameras), "targets": targets, "train_frames": len(train),
               "held_out_frames": len(val) if val else 0, "held_out_r2": result.held_out_r2, "epoch": result.epoch}
    save_file({k: v.contiguous() for k, v in result.backbone.items()}, str(out),
              metadata={"user_encoder": json.dumps(figures)})
    r2 = "-" if result.held_out_r2 is None else f"{result.held_out_r2:.3f}"
    print(f"encoder task={task.name} cameras={','.join(cameras)} held_out_r2={r2} epoch={result.epoch} "
          f"train_loss={result.train_loss:.4f} out={out}")
    print(f"use it: policy.pretrained_encoder: {out.resolve()} in a pixel recipe (config/algorithms/*_cnn.yaml)")
    return 0
