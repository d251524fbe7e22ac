"""``ros2 launch user_bringup table_cleanup.launch.py [robot:=sim|franka|arx] [algo:=sac|rlpd] [side:=...]``

The table_cleanup task graph (config/tasks/table_cleanup.yaml); arguments and nodes: user_graph.launch.py.
"""

from pathlib import Path

from launch import LaunchDescription
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource

TASK = "table_cleanup"


def generate_launch_description() -> LaunchDescription:
    """The shared graph launch with task:=table_cleanup."""
    graph = PythonLaunchDescriptionSource(str(Path(__file__).with_name("user_graph.launch.py")))
    return LaunchDescription([IncludeLaunchDescription(graph, launch_arguments={"task": TASK}.items())])
