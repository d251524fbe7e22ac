"""A node run by ``user_robot.nodes.runtime.run``, as its own process, whose ``drain()`` hook publishes a
last message on a reliable topic and waits until it is acknowledged (what the actor does with its last
transitions when the robot side stops). Until then it publishes "alive" every 0.1 s.

    python draining_node_standin.py <topic>  -> prints "standin ready"; at Ctrl-C or SIGTERM
                                                "drained ok=<context alive> acked=<bool>", "shut down",
                                                and from an ``atexit`` handler "atexit ran" (not flushed)
"""

from __future__ import annotations

import atexit
import sys

import rclpy
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from user_robot.nodes.runtime import run


class Draining(Node):
    """Says "alive" until it is told to stop, then "last words"."""

    def __init__(self) -> None:
        super().__init__("draining_standin")
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.pub = self.create_publisher(String, sys.argv[1], reliable)
        self.create_timer(0.1, lambda: self.pub.publish(String(data="alive")))
        print("standin ready", flush=True)

    def drain(self) -> None:
        ok = rclpy.ok()
        self.pub.publish(String(data="last words"))
        acked = self.pub.wait_for_all_acked(Duration(seconds=5.0))
        print(f"drained ok={ok} acked={acked}", flush=True)

    def shutdown(self) -> None:
        print("shut down", flush=True)


if __name__ == "__main__":
    atexit.register(print, "atexit ran")  # (run() ends the process without the teardown: this still runs)
    run(Draining, "draining_standin")
