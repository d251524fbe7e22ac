"""``ros2 launch user_bringup cap_tightening.launch.py [robot:=sim|franka|arx] [algo:=sac|rlpd] [side:=...]``

The cap_tightening task graph (config/tasks/cap_tightening.yaml); arguments and nodes: user_graph.launch.py.
"""

from pathlib import Path

from launch import LaunchDescription
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource

TASK = "cap_tightening"


def generate_launch_description() -> LaunchDescription:
    """The shared graph launch with task:=cap_tightening."""
    graph = PythonLaunchDescriptionSource(str(Path(__file__).with_name("user_graph.launch.py")))
    return LaunchDescription([IncludeLaunchDescription(graph, launch_arguments={"task": TASK}.items())])
