"""Entry point of ``user-rl``: dispatches to the subcommand modules listed in ``COMMANDS``."""

from __future__ import annotations

import argparse
import importlib
import sys

from user_robot.config_loader import UsageError
from user_robot.ros_domain import domain_id_problem

# name -> (module, one-line help). Modules are imported only when their command runs, so
# ``user-rl --help`` is instant and a broken optional dependency only affects its own command.
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("user_learner.cli.info", "show the environment: ROS 2, interfaces, tasks, robots, algorithms"),
    "sim": ("user_learner.cli.sim", "run sim-cell episodes with the scripted expert or a random policy"),
    "collect": ("user_learner.cli.collect", "record scripted-expert (SpaceMouse) demos to a rosbag2 file"),
    "pretrain": ("user_learner.cli.pretrain", "clone a policy from demo recordings (behaviour cloning)"),
    "train": ("user_learner.cli.train", "train a policy online: robot side + learner, async or sync"),
    "eval": ("user_learner.cli.eval", "evaluate a checkpoint: deterministic episodes, no learning, success + 95%% CI"),
    "encoder": ("user_learner.cli.encoder", "pretrain the pixel recipes' frozen ResNet-10 on your recordings"),
    "reward": ("user_learner.cli.reward", "success classifiers: label frames, train, evaluate (the learned reward)"),
    "bag": ("user_learner.cli.bag", "inspect recordings (info) and import `ros2 bag record` demos (import)"),
    "discovery-server": ("user_learner.cli.discovery", "a Fast DDS discovery server, for networks without multicast"),
}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Help that shows each flag's default, unless it is empty or its help already says what the default is."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        help_text = action.help or ""
        if action.default in (None, "", False, (), []) or "default" in help_text:
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser; subcommand parsers are filled lazily in :func:`main`."""
    parser = argparse.ArgumentParser(
        prog="user-rl",
        description="USER: online policy learning on real robots, natively in ROS 2.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)  # (argparse %-formats help: a % is written %%)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``user-rl``; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] not in COMMANDS:
        parser.parse_args(argv or ["--help"])
        return 2
    name = argv[0]
    problem = domain_id_problem()
    if problem:
        print(f"user-rl {name}: error: {problem}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    sub = argparse.ArgumentParser(prog=f"user-rl {name}", description=COMMANDS[name][1],
                                  formatter_class=HelpFormatter)
    try:
        module.add_arguments(sub)  # (its choices may read the config directory)
        args = sub.parse_args(argv[1:])
        if getattr(args, "discovery_server", ""):
            from user_learner.cli.runner import use_discovery_server

            use_discovery_server(args.discovery_server)
        return int(module.run(args) or 0)
    except UsageError as exc:  # a user's mistake: one line, as argparse does, no traceback
        print(f"user-rl {name}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
