"""``user-rl info``: what this environment has (ROS 2, our interfaces, the configs)."""

from __future__ import annotations

import argparse
import os

from user_robot.config_loader import config_dir, config_names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options."""


def run(args: argparse.Namespace) -> int:
    """Print one line per fact."""
    import rclpy

    import user_interfaces.msg  # noqa: F401  (fails loudly if the overlay is not sourced)

    print(f"rmw={os.environ.get('RMW_IMPLEMENTATION', 'default')} rclpy={rclpy.__file__}")
    print(f"config_dir={config_dir()}")
    for kind in ("tasks", "robots", "algorithms"):
        print(f"{kind}: {' '.join(config_names(kind)) or '-'}")
    return 0
