"""label_keys: label episodes from the keyboard (``s`` success, ``f`` failure, ``q`` quit).

Runs in the robot namespace and calls the teleop node's ``label`` service
(user_interfaces/srv/LabelEpisode), which sends the label once with the next intervention
message. For cells whose SpaceMouse buttons are all taken by the gripper::

    ros2 run user_robot label_keys --ros-args -r __ns:=/robot_0

In a terminal, single key presses count; with stdin redirected, one key per line.
"""

from __future__ import annotations

import sys
import termios
import tty
from collections.abc import Iterator

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

from user_interfaces.srv import LabelEpisode
from user_robot.nodes.runtime import init

KEYS = {"s": LabelEpisode.Request.LABEL_SUCCESS, "f": LabelEpisode.Request.LABEL_FAILURE}
NAMES = {LabelEpisode.Request.LABEL_SUCCESS: "success", LabelEpisode.Request.LABEL_FAILURE: "failure"}


class LabelKeys(Node):
    """See the module docstring."""

    def __init__(self) -> None:
        super().__init__("label_keys")
        self.client = self.create_client(LabelEpisode, "label")
        print(f"label_keys: s = success, f = failure, q = quit -> {self.resolve_service_name('label')}", flush=True)

    def send(self, label: int) -> None:
        """Call the label service and print its answer."""
        name = NAMES[label]
        if not self.client.wait_for_service(timeout_sec=5.0):
            print(f"label {name}: no {self.resolve_service_name('label')} service (is teleop running?)", flush=True)
            return
        future = self.client.call_async(LabelEpisode.Request(label=label))
        rclpy.spin_until_future_complete(self, future, timeout_sec=5.0)
        answer = future.result()
        print(f"label {name}: {'no answer' if answer is None else answer.message}", flush=True)


def _keys() -> Iterator[str]:
    """Key presses from a terminal (no Enter needed), else the first character of each line."""
    if not sys.stdin.isatty():
        for line in sys.stdin:
            yield line.strip()[:1].lower()
        return
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        while key := sys.stdin.read(1):
            yield key.lower()
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def main(args: list[str] | None = None) -> None:
    """Run the keyboard label helper until ``q`` or end of input."""
    init("label_keys", args)
    node = LabelKeys()
    try:
        for key in _keys():
            if key == "q":
                break
            if key in KEYS:
                node.send(KEYS[key])
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
