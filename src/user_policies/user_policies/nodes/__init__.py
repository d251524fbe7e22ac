"""Thin ROS 2 nodes wiring the user_policies core to topics."""
