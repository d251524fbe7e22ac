"""rosbag2 files without ROS: our learning recordings and imports of plain driver-topic bags."""
