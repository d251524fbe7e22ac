"""``ros2 launch user_bringup peg_insertion.launch.py [robot:=sim|franka|arx] [algo:=sac|rlpd] [side:=...]``

The peg_insertion task graph (config/tasks/peg_insertion.yaml); arguments and nodes: user_graph.launch.py.
"""

from pathlib import Path

from launch import LaunchDescription
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource

TASK = "peg_insertion"


def generate_launch_description() -> LaunchDescription:
    """The shared graph launch with task:=peg_insertion."""
    graph = PythonLaunchDescriptionSource(str(Path(__file__).with_name("user_graph.launch.py")))
    return LaunchDescription([IncludeLaunchDescription(graph, launch_arguments={"task": TASK}.items())])
