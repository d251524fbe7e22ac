"""``ros2 launch user_bringup charger.launch.py [robot:=sim|franka|arx] [algo:=sac|rlpd] [side:=...]``

The charger_plugging task graph (config/tasks/charger_plugging.yaml); arguments and nodes: user_graph.launch.py.
"""

from pathlib import Path

from launch import LaunchDescription
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource

TASK = "charger_plugging"


def generate_launch_description() -> LaunchDescription:
    """The shared graph launch with task:=charger_plugging."""
    graph = PythonLaunchDescriptionSource(str(Path(__file__).with_name("user_graph.launch.py")))
    return LaunchDescription([IncludeLaunchDescription(graph, launch_arguments={"task": TASK}.items())])
