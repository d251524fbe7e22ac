"""``user-rl info``: what this environment has (ROS 2, our interfaces, the configs, the registered plug-ins)."""

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
    for kind in ("tasks", "robots"):
        print(f"{kind}: {' '.join(config_names(kind)) or '-'}")
    from user_learner.algorithms.base import algorithm_names
    from user_learner.graph import algorithm_choices
    from user_policies.policies.base import policy_kinds

    recipes = set(algorithm_choices())
    print("algorithms: " + " ".join(n if n in recipes else f"{n}(no recipe)" for n in algorithm_names()))
    print(f"algorithm recipes: {' '.join(config_names('algorithms')) or '-'}")
    print(f"policy kinds: {' '.join(policy_kinds())}")
    return 0
