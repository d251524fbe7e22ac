"""``user-rl info``: what this environment has (ROS 2, our interfaces, the configs, the registered plug-ins)."""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import re

from user_robot.config_loader import config_dir, config_names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options."""


def ros_distro() -> str:
    """The ROS 2 distribution: ``$ROS_DISTRO`` of a sourced installation, else that of the rclpy wheel."""
    if os.environ.get("ROS_DISTRO"):
        return os.environ["ROS_DISTRO"]
    names = (dist.metadata["Name"] or "" for dist in importlib.metadata.distributions())
    return next((m.group(1) for m in map(re.compile(r"ros-(\w+)-rclpy$").match, names) if m), "unknown")


def interfaces(package: str = "user_interfaces") -> list[str]:
    """The messages, services and actions ``package`` installed (as the ament index lists them)."""
    from ament_index_python import get_resource

    listing, _ = get_resource("rosidl_interfaces", package)
    return [f"{package}/{name.rsplit('.', 1)[0]}" for name in listing.split()
            if name.endswith((".msg", ".srv", ".action"))]


def run(args: argparse.Namespace) -> int:
    """Print one line per fact."""
    import rclpy

    import user_interfaces.msg  # noqa: F401  (fails loudly if the overlay is not sourced)

    print(f"ros_distro={ros_distro()} rmw={os.environ.get('RMW_IMPLEMENTATION', 'default')} rclpy={rclpy.__file__}")
    print(f"interfaces: {' '.join(interfaces())}")
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
