"""Thin ROS 2 nodes wiring the user_robot core to topics."""
