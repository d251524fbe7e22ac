"""The ROS domain a process joins: ``ROS_DOMAIN_ID`` must be one Fast DDS can map to ports."""

from __future__ import annotations

import os
from collections.abc import Mapping

MAX_DOMAIN_ID = 232
"""The largest domain ID whose ports fit (Fast DDS: 7400 + 250 x domain + offsets < 65536)."""


def domain_id_problem(env: Mapping[str, str] = os.environ) -> str:
    """Why ``ROS_DOMAIN_ID`` in ``env`` cannot work ('' when unset or fine). A bad one makes rclpy fail to
    start a node, and a process can die of it without a word."""
    text = env.get("ROS_DOMAIN_ID", "").strip()
    if not text:
        return ""
    if not text.isdigit() or int(text) > MAX_DOMAIN_ID:
        return (f"ROS_DOMAIN_ID must be an integer in [0, {MAX_DOMAIN_ID}] (Fast DDS maps it to UDP ports; 0-101 "
                f"is safe on Linux), got {text!r}")
    return ""
