"""A stand-in actor for lockstep tests, run as its own process: on sim time, it answers each 10 Hz
control tick on ``/robot_0/actor/tick`` only after ``<delay>`` wall seconds (a slow, loaded actor), or
with ``hang`` answers at once until it gets SIGUSR1 and then never returns from its next tick (a hung
actor, alive to DDS; the test signals it once the sim has heard it). It publishes with the actor's QoS.

    python slow_actor_standin.py <delay_s>|hang    -> prints "standin ready"
"""

from __future__ import annotations

import signal
import sys
import time

import rclpy
from rclpy.node import Node
from rclpy.parameter import Parameter
from std_msgs.msg import Header

from user_robot.contracts import ACTOR_TICK_TOPIC, TICK_IDLE
from user_robot.nodes.qos import HEARTBEAT


def main() -> None:
    hang = sys.argv[1] == "hang"
    delay = 0.0 if hang else float(sys.argv[1])
    hung = [False]
    signal.signal(signal.SIGUSR1, lambda *_: hung.__setitem__(0, hang))
    rclpy.init()
    node = Node("actor", namespace="robot_0", parameter_overrides=[Parameter("use_sim_time", value=True)])
    pub = node.create_publisher(Header, ACTOR_TICK_TOPIC, HEARTBEAT)

    def tick() -> None:
        stamp = node.get_clock().now().to_msg()
        time.sleep(delay)
        pub.publish(Header(stamp=stamp, frame_id=TICK_IDLE))
        while hung[0]:
            time.sleep(1.0)

    node.create_timer(0.1, tick)
    print("standin ready", flush=True)
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
