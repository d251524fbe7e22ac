"""Shared launch piece: a task's graph (``user_learner.graph``) as launch_ros nodes.

Included by ``launch/<task>.launch.py`` with ``task:=<task>``; it declares one launch argument per
:class:`user_learner.graph.GraphOptions` field (the same options as the ``user-rl`` CLI), then
builds the nodes from their values, so the launch files and the CLI share one graph description.
Every node reads the task, robot and algorithm YAMLs under ``config/`` itself.

    ros2 launch user_bringup peg_insertion.launch.py robot:=franka algo:=rlpd side:=robot use_rviz:=true
    ros2 launch user_bringup peg_insertion.launch.py --show-args
"""

from __future__ import annotations

import sys

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from user_learner.graph import GRAPH_OPTIONS, build_graph, option_choices, option_text, parse_options
from user_robot.config_loader import config_names


def graph_nodes(context: LaunchContext) -> list[Node]:
    """The graph's nodes for the launch arguments' values (raises with a clear message on bad values)."""
    values = {field.name: LaunchConfiguration(field.name).perform(context) for field in GRAPH_OPTIONS}
    task = LaunchConfiguration("task").perform(context)
    return [
        Node(
            package=spec.package,
            executable=spec.executable,
            name=spec.name,
            namespace=spec.namespace or None,
            parameters=[spec.parameters],
            remappings=list(spec.remappings.items()),
            arguments=list(spec.arguments),
            output="screen",
            emulate_tty=True,
            respawn=spec.respawn,
            respawn_delay=2.0,
            sigterm_timeout=str(spec.stop_s),  # (SIGINT first; SIGTERM after this, SIGKILL after sigkill_timeout)
            prefix=" ".join([sys.executable, *spec.torchrun(), "--no-python"]) if spec.torchrun() else None,
        )
        for spec in build_graph(task, **parse_options(values))
    ]


def generate_launch_description() -> LaunchDescription:
    """Declare the task and every graph option, then build the nodes when the values are known."""
    arguments = [
        DeclareLaunchArgument("task", description="task: a config/tasks/<task>.yaml", choices=config_names("tasks"))
    ]
    for field in GRAPH_OPTIONS:
        choices = list(option_choices(field)) or None
        arguments.append(
            DeclareLaunchArgument(
                field.name,
                default_value=option_text(field.default),
                description=field.metadata["help"],
                choices=choices,
            )
        )
    return LaunchDescription([*arguments, OpaqueFunction(function=graph_nodes)])
