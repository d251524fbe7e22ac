"""sim_cell node over real rclpy and Fast DDS: driver topics, commands, cameras, reset_scene."""

from __future__ import annotations

import time

import numpy as np
import pytest
import rclpy
from geometry_msgs.msg import PoseStamped, Twist
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, JointState, Joy
from std_msgs.msg import Bool
from std_srvs.srv import SetBool, Trigger

from user_robot.nodes.qos import PROFILES
from user_robot.robot_config import load_robot

NS = "/sim_node_test"


@pytest.fixture
def probe():
    rclpy.init()
    node = Node("sim_cell_probe", namespace=NS)
    yield node
    node.destroy_node()
    rclpy.try_shutdown()


def _spin_until(node: Node, done, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
        if done():
            return True
    return False


def test_sim_cell_speaks_the_driver_topics(spawn, probe):
    robot = load_robot("sim")
    drv = robot.driver
    proc = spawn(["-m", "user_robot.nodes.sim_cell", "--ros-args", "-r", f"__ns:={NS}", "-p", "task:=peg_insertion",
                  "-p", "expert:=always"])
    proc.wait_for("sim_cell ready", timeout=60)

    got: dict[str, list] = {"pose": [], "image": [], "info": [], "gripper": [], "success": [], "twist": [], "joy": []}
    probe.create_subscription(Twist, robot.teleop.twist_topic, got["twist"].append, PROFILES["teleop"])
    probe.create_subscription(Joy, robot.teleop.joy_topic, got["joy"].append, PROFILES["teleop"])
    probe.create_subscription(PoseStamped, drv.current_pose, got["pose"].append, PROFILES["sensor"])
    probe.create_subscription(JointState, drv.gripper_joint_states, got["gripper"].append, PROFILES["sensor"])
    probe.create_subscription(Bool, "sim/success", got["success"].append, PROFILES["sensor"])
    wrist = robot.cameras["wrist"]
    probe.create_subscription(Image, wrist.topic, got["image"].append, PROFILES["images"])
    probe.create_subscription(CameraInfo, wrist.topic.replace("image_raw", "camera_info"), got["info"].append,
                              PROFILES["images"])
    assert _spin_until(probe, lambda: all(got.values()), 20.0), {k: len(v) for k, v in got.items()}

    image = got["image"][-1]
    assert (image.height, image.width) == tuple(wrist.source_size) and image.encoding == "rgb8"
    pixels = np.frombuffer(bytes(image.data), dtype=np.uint8).reshape(image.height, image.width, 3)
    assert pixels.std() > 5.0  # a rendered scene, not a blank frame
    assert got["info"][-1].k[0] > 0
    assert sum(got["gripper"][-1].position) < 0.035  # the peg is held: fingers closed on 30 mm
    twist = got["twist"][-1]  # the expert pushes the virtual SpaceMouse down toward the hole
    assert twist.linear.z < 0.0 and len(got["joy"][-1].axes) == 6

    enable = probe.create_client(SetBool, "expert/enable")
    assert enable.wait_for_service(timeout_sec=10.0)
    future = enable.call_async(SetBool.Request(data=False))
    assert _spin_until(probe, future.done, 10.0) and future.result().success
    assert _spin_until(probe, lambda: got["twist"][-1].linear.z == 0.0, 5.0)  # let go: the device reads zero

    start = got["pose"][-1].pose
    command = PoseStamped()
    command.header.frame_id = robot.base_frame
    command.pose = start
    goal = np.array([start.position.x + 0.03, start.position.y, start.position.z - 0.02])
    command.pose.position.x, command.pose.position.y, command.pose.position.z = (float(v) for v in goal)
    eq_pub = probe.create_publisher(PoseStamped, drv.equilibrium_pose, PROFILES[drv.command_qos])

    def arrived() -> bool:
        eq_pub.publish(command)
        p = got["pose"][-1].pose.position
        return float(np.linalg.norm(np.array([p.x, p.y, p.z]) - goal)) < 0.002

    assert _spin_until(probe, arrived, 10.0)

    client = probe.create_client(Trigger, "reset_scene")
    assert client.wait_for_service(timeout_sec=10.0)
    future = client.call_async(Trigger.Request())
    assert _spin_until(probe, future.done, 10.0)
    assert future.result().success and "episode 1" in future.result().message
    got["gripper"].clear()
    assert _spin_until(probe, lambda: bool(got["gripper"]), 5.0)
    assert sum(got["gripper"][-1].position) < 0.035  # a fresh peg in the closed gripper


def test_camera_encodings_and_info_topic() -> None:
    from user_robot.nodes.sim_cell import encode, info_topic
    from user_robot.robot_config import CameraConfig

    rgb = np.zeros((4, 6, 3), dtype=np.uint8)
    rgb[..., 0] = 200
    assert encode(rgb, "bgr8")[0, 0].tolist() == [0, 0, 200]
    mono = encode(rgb, "mono8")
    assert mono.shape == (4, 6) and mono.dtype == np.uint8 and mono[0, 0] == int(200 * 0.299)
    assert info_topic(CameraConfig(topic="camera/wrist/color/image_raw")) == "camera/wrist/color/camera_info"
    assert info_topic(CameraConfig(topic="x/image_raw", info_topic="y/info")) == "y/info"


def test_object_states_name_their_scene_and_sim_time() -> None:
    from user_robot.contracts import object_state_label, object_state_of

    labels = [(0, 0), (7, 4_200_000_000), (1234, 86_200_000_000_000)]
    assert [object_state_of(object_state_label(*n)) for n in labels] == labels
    unlabelled = ("", "scene_x_ns_1", "scene_3", "poses_3_ns_5")  # (never dropped)
    assert {object_state_of(label) for label in unlabelled} == {(-1, -1)}
