"""``ros2 launch user_bringup pick_and_place.launch.py [robot:=sim|franka|arx] [algo:=sac|rlpd] [side:=...]``

The pick_and_place task graph (config/tasks/pick_and_place.yaml); arguments and nodes: user_graph.launch.py.
"""

from pathlib import Path

from launch import LaunchDescription
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource

TASK = "pick_and_place"


def generate_launch_description() -> LaunchDescription:
    """The shared graph launch with task:=pick_and_place."""
    graph = PythonLaunchDescriptionSource(str(Path(__file__).with_name("user_graph.launch.py")))
    return LaunchDescription([IncludeLaunchDescription(graph, launch_arguments={"task": TASK}.items())])
