"""Publisher and late-joining subscriber of policy weights, run as separate processes by tests.

    python weights_endpoints.py publish <megabytes>   -> prints "PUBLISHED <sha256>", stays up
    python weights_endpoints.py receive                -> prints "RECEIVED <sha256> <version>"
"""

from __future__ import annotations

import sys
import time

import rclpy
import torch
from rclpy.node import Node

from user_interfaces.msg import PolicyWeights
from user_policies.weights_codec import decode_weights, encode_weights, packet_from_msg, packet_to_msg
from user_robot.nodes.qos import WEIGHTS

TOPIC = "/user/policy_weights"


def publish(megabytes: float) -> None:
    node = Node("weights_publisher")
    pub = node.create_publisher(PolicyWeights, TOPIC, WEIGHTS)
    numel = int(megabytes * 1e6 / 4)
    state = {"layer.weight": torch.randn(numel // 2), "layer.bias": torch.randn(numel - numel // 2)}
    packet = encode_weights(state, policy_id="test/mlp", version=7, embodiments=["franka_panda"])
    pub.publish(packet_to_msg(packet, PolicyWeights()))
    print(f"PUBLISHED {packet.sha256} {packet.byte_size}", flush=True)
    while rclpy.ok():
        rclpy.spin_once(node, timeout_sec=0.1)


def receive() -> None:
    node = Node("weights_subscriber")
    got: list[PolicyWeights] = []
    node.create_subscription(PolicyWeights, TOPIC, got.append, WEIGHTS)
    deadline = time.monotonic() + 60
    while not got and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    if not got:
        print("TIMEOUT", flush=True)
        return
    packet = packet_from_msg(got[0])
    decode_weights(packet)  # verifies size and sha256
    print(f"RECEIVED {packet.sha256} {packet.version} {packet.byte_size}", flush=True)


if __name__ == "__main__":
    rclpy.init()
    try:
        publish(float(sys.argv[2])) if sys.argv[1] == "publish" else receive()
    except KeyboardInterrupt:
        pass
    finally:
        rclpy.try_shutdown()
