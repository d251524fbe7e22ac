"""``user-rl bag``: inspect recordings and import demos recorded with plain ``ros2 bag record``.

    user-rl bag info logs/run1/transitions            # episodes, lengths, success, interventions
    user-rl bag import demos_raw --task peg_insertion --robot franka --out demos/peg
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from user_learner.bags.transition_bag import TRANSITION, Episode, read_episodes
from user_robot.config_loader import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``info`` and ``import`` subcommands."""
    sub = parser.add_subparsers(dest="bag_command", required=True, metavar="{info,import}")
    info = sub.add_parser("info", formatter_class=parser.formatter_class,
                          help="episodes, lengths, success and interventions of a recording")
    info.add_argument("bag", type=Path, help="rosbag2 directory (MCAP or sqlite3)")
    imp = sub.add_parser("import", formatter_class=parser.formatter_class,
                         help="turn a driver-topic bag into demo episodes")
    imp.add_argument("bag", type=Path, help="bag of driver topics recorded with `ros2 bag record`")
    imp.add_argument("--task", required=True, help="config/tasks/<task>.yaml")
    imp.add_argument("--robot", required=True, help="config/robots/<robot>.yaml (driver topic names, cameras)")
    imp.add_argument("--out", type=Path, required=True, help="recording to write (must not exist)")
    imp.add_argument("--config", default="franka_spacemouse", help="config/bag_import/<config>.yaml")
    imp.add_argument("--namespace", help="robot namespace the driver topics were recorded under (overrides config)")
    imp.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")


def run(args: argparse.Namespace) -> int:
    """Dispatch to ``info`` or ``import``; a bad bag or option is one clear line (``user-rl``'s exit code 2)."""
    from rich.console import Console

    # piped: as wide as the table needs (a terminal's, or $COLUMNS, else: rich wraps at 80 columns)
    console = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 1000)
    try:
        if args.bag_command == "info":
            return info(args.bag, console)
        return import_bag(args, console)
    except (ValueError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from exc


def info(bag: Path, console) -> int:
    """Print one row per episode and a total; a bag without transitions lists its topics instead.

    A recording whose writer died is read up to its last complete record, and the output says so.
    """
    from rich.table import Table

    from user_learner.bags.recording import open_recording

    recording = open_recording(bag)
    if recording.damage:
        console.print(f"[yellow]truncated:[/yellow] {bag} was not closed ({recording.damage}); "
                      "reading what was written before the cut", highlight=False)
    topics = recording.topics()
    if not any(t.msgtype == TRANSITION for t in topics):
        table = Table("topic", "type", "messages", title=f"{bag} (no transitions: import it with `user-rl bag import`)")
        for t in topics:
            table.add_row(t.name, t.msgtype, str(t.count))
        console.print(table)
        return 0
    episodes = list(read_episodes(bag, images=False, complete_only=False, progress=True))
    table = Table(title=str(bag))
    table.add_column("episode", overflow="fold")
    for column in ("robot", "mode", "steps", "return", "success", "human steps", "interventions", "end"):
        table.add_column(column, overflow="fold")
    for ep in episodes:
        table.add_row(ep.episode_id, ep.robot_id, ep.mode or "-", str(ep.length), f"{ep.episode_return:.2f}",
                      "yes" if ep.success else "no", str(ep.intervened_steps), str(ep.interventions),
                      _end(ep))
    console.print(table)
    done = [e for e in episodes if e.done]
    steps = sum(e.length for e in episodes)
    rate = sum(e.success for e in done) / len(done) if done else 0.0
    recovered = f" recovered={len(done)} complete episodes from a truncated recording" if recording.damage else ""
    console.print(f"episodes={len(episodes)} complete={len(done)} steps={steps} success_rate={rate:.2f} "
                  f"intervened_steps={sum(e.intervened_steps for e in episodes)}{recovered}", highlight=False)
    return 0


END_REASONS = ("none", "success", "failure", "time_limit", "stale_input", "safety", "aborted")


def _end(ep: Episode) -> str:
    if not ep.done:
        return "cut off"
    reason = ep.steps[-1].end_reason
    return END_REASONS[reason] if reason < len(END_REASONS) else str(reason)


def import_bag(args: argparse.Namespace, console) -> int:
    """Import ``args.bag`` into a recording at ``args.out`` and summarize what was kept and dropped."""
    import dataclasses

    from user_learner.bags.driver_import import import_to_recording, load_import_config
    from user_robot.robot_config import load_robot
    from user_robot.task_config import load_task

    cfg = load_import_config(args.config)
    if args.namespace is not None:
        cfg = dataclasses.replace(cfg, namespace=args.namespace)
    result = import_to_recording(
        args.bag, args.out, load_task(args.task), load_robot(args.robot), cfg, args.storage, progress=True
    )
    lengths = [e.length for e in result.episodes]
    console.print(
        f"imported {len(lengths)} episodes ({sum(lengths)} steps, lengths {min(lengths)}..{max(lengths)}) "
        f"from {result.timeline_steps} timeline steps into {args.out}; stale steps: {result.stale_steps or 'none'}; "
        f"too short: {result.short_episodes}",
        highlight=False,
    )
    return 0
