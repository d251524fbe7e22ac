"""Thin ROS 2 nodes wiring the user_learner core to topics."""
