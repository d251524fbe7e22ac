"""rosbag2 recordings and driver-bag imports, on real bag files (MCAP and sqlite3).

- Our recordings: written by :class:`TransitionBagWriter`, read back by ``rosbags`` (episodes) and
  by the ``mcap`` ROS 2 decoder; the weights topic is refused.
- Driver bags: a scripted teleoperated episode pair written with ``rosbags`` exactly as ``ros2 bag
  record`` stores the driver topics (Image rgb8, PoseStamped best effort, WrenchStamped, Twist,
  Joy, with realistic stamps and latencies), imported back into episodes whose actions, images and
  states match what was scripted.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer

from user_learner.bags.driver_import import (
    BagImportError,
    import_driver_bag,
    import_to_recording,
    load_import_config,
)
from user_learner.bags.images import array_to_image, header
from user_learner.bags.transition_bag import (
    TRANSITIONS_TOPIC,
    WEIGHTS_TOPIC,
    Episode,
    Step,
    TransitionBagWriter,
    episode_result_message,
    read_episodes,
    transition_message,
)
from user_learner.bags.typestore import typestore
from user_learner.graph import resolve_topic
from user_robot.action_mapping import apply_action
from user_robot.pose_math import quat_from_rpy
from user_robot.robot_config import load_robot
from user_robot.task_config import load_task

STORAGES = ["mcap", "sqlite3"]
MS = 1_000_000
T0 = 1_700_000_000 * 1_000_000_000  # a realistic wall-clock epoch stamp


def _episode(robot_id: str, episode_id: str, n: int, rng: np.random.Generator, success: bool) -> Episode:
    steps = []
    for i in range(n + 1):
        last = i == n
        steps.append(
            Step(
                stamp_ns=T0 + i * 100 * MS,
                step=i,
                state=rng.standard_normal(12).astype(np.float32),
                images={"wrist": rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)},
                action=np.zeros(0, np.float32) if last else rng.uniform(-1, 1, 6).astype(np.float32),
                reward=1.0 if (success and i == n - 1) else 0.0,
                terminated=last and success,
                truncated=last and not success,
                end_reason=(1 if success else 3) if last else 0,
                intervened=i in (1, 2, 4),
                policy_version=7,
            )
        )
    return Episode(robot_id, "franka_panda", "peg_insertion", episode_id, steps)


def _mcap_messages(bag: Path) -> list:
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    (path,) = bag.glob("*.mcap")
    with path.open("rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        return [(channel.topic, msg) for _, channel, _, msg in reader.iter_decoded_messages()]


@pytest.mark.parametrize("storage", STORAGES)
def test_recording_round_trip(tmp_path: Path, storage: str) -> None:
    rng = np.random.default_rng(0)
    a = _episode("robot_0", "robot_0-a", 8, rng, success=True)
    b = _episode("robot_1", "robot_1-b", 5, rng, success=False)
    bag = tmp_path / "rec"
    with TransitionBagWriter(bag, storage) as writer:
        # Two robots interleaved, as the learner receives them.
        for sa, sb in zip(a.steps, b.steps + [None] * 3, strict=True):
            writer.write(TRANSITIONS_TOPIC, transition_message(a, sa))
            if sb is not None:
                writer.write(TRANSITIONS_TOPIC, transition_message(b, sb))
        writer.write("/robot_0/episode_result", episode_result_message(a, "train"))
        writer.write("/robot_1/episode_result", episode_result_message(b, "train"))
        with pytest.raises(ValueError, match="policy weights"):
            writer.write_raw(WEIGHTS_TOPIC, "user_interfaces/msg/PolicyWeights", b"", T0)

    got = {e.episode_id: e for e in read_episodes(bag)}
    assert list(got) == ["robot_1-b", "robot_0-a"]  # in the order they end
    for want in (a, b):
        ep = got[want.episode_id]
        assert (ep.robot_id, ep.task, ep.mode) == (want.robot_id, "peg_insertion", "train")
        assert ep.embodiment == "franka_panda"
        assert ep.length == len(want.steps) - 1 and ep.done
        assert ep.intervened_steps == 3 and ep.interventions == 2
        for s_got, s_want in zip(ep.steps, want.steps, strict=True):
            np.testing.assert_array_equal(s_got.state, s_want.state)
            np.testing.assert_array_equal(s_got.action, s_want.action)
            np.testing.assert_array_equal(s_got.images["wrist"], s_want.images["wrist"])
            assert s_got.images["wrist"].dtype == np.uint8 and s_got.images["wrist"].shape == (16, 16, 3)
            assert (s_got.stamp_ns, s_got.reward) == (s_want.stamp_ns, s_want.reward)
            assert s_got.intervened == s_want.intervened
    assert got["robot_0-a"].success and not got["robot_1-b"].success

    if storage == "mcap":
        messages = _mcap_messages(bag)
        assert {t for t, _ in messages} == {TRANSITIONS_TOPIC, "/robot_0/episode_result", "/robot_1/episode_result"}
        firsts = [m for t, m in messages if t == TRANSITIONS_TOPIC and m.step == 0]
        assert {m.episode_id for m in firsts} == {"robot_0-a", "robot_1-b"}
        assert bytes(firsts[0].images[0].data) == a.steps[0].images["wrist"].tobytes()
        assert list(firsts[0].state) == pytest.approx(a.steps[0].state.tolist())
    assert WEIGHTS_TOPIC not in (bag / "metadata.yaml").read_text()


def test_rclpy_serialized_transitions_are_recorded(tmp_path: Path) -> None:
    """The learner records raw CDR from rclpy: same bytes, readable as episodes."""
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import Image

    from user_interfaces.msg import Transition

    bag = tmp_path / "raw"
    with TransitionBagWriter(bag) as writer:
        for i in range(3):
            msg = Transition(robot_id="robot_0", episode_id="e", step=i, camera_names=["wrist"])
            msg.header.stamp.sec = 10 + i
            msg.images = [Image(height=2, width=2, encoding="rgb8", step=6, data=bytes(range(12)))]
            msg.state = [float(i)] * 4
            msg.action = [] if i == 2 else [0.5] * 6
            msg.truncated = i == 2
            data = serialize_message(msg)
            writer.write_raw(TRANSITIONS_TOPIC, "user_interfaces/msg/Transition", data, (10 + i) * 10**9)
    (ep,) = read_episodes(bag, progress=True)
    assert ep.length == 2 and not ep.success
    assert ep.steps[1].state.tolist() == [1.0] * 4
    assert ep.steps[0].images["wrist"].reshape(-1).tolist() == list(range(12))


# --------------------------------------------------------------------------------------------
# Driver bags: a scripted teleoperated demo as `ros2 bag record` stores it.

TICKS = (12, 10)  # control ticks of the two demos
GAP_S = 2.0  # recording paused between the demos
# write_driver_bag's commander stamps a commanded pose when it publishes it
STAMPED = dataclasses.replace(load_import_config("franka_spacemouse"), command_base="stamped")


@dataclasses.dataclass
class Scripted:
    """What the script did: per demo, the camera stamps of the ticks, the actions and the frame values."""

    tick_stamps: list[list[int]]
    actions: list[np.ndarray]
    wrist_values: list[list[int]]
    poses: list[list[np.ndarray]]


def write_driver_bag(
    path: Path, storage: str, *, skip: tuple[str, ...] = (), wrench_gap: tuple[int, int] | None = None
) -> Scripted:
    """A Franka cell teleoperated at 10 Hz: cameras 20 Hz, poses/wrench 100 Hz, SpaceMouse 50 Hz.

    The arm follows the commanded equilibrium pose with a 20 ms lag; each tick the teleop computes
    the command from the measured pose 5 ms after the camera frame, and publishes it at its next
    100 Hz publication, stamped then (so imports take ``command_base: stamped``, :data:`STAMPED`).
    ``skip`` leaves topics out; ``wrench_gap`` (ms from the start of the second demo) silences the
    wrench topic.
    """
    task, robot = load_task("peg_insertion"), load_robot("franka")
    ts = typestore()
    types = ts.types
    rng = np.random.default_rng(1)
    topics = {
        "pose": (resolve_topic(robot.driver.current_pose, ""), "geometry_msgs/msg/PoseStamped"),
        "cmd": (resolve_topic(robot.driver.equilibrium_pose, ""), "geometry_msgs/msg/PoseStamped"),
        "wrench": (resolve_topic(robot.driver.external_wrench, ""), "geometry_msgs/msg/WrenchStamped"),
        "wrist": (robot.cameras["wrist"].topic, "sensor_msgs/msg/Image"),
        "front": (robot.cameras["front"].topic, "sensor_msgs/msg/Image"),
        "twist": (robot.teleop.twist_topic, "geometry_msgs/msg/Twist"),
        "joy": (robot.teleop.joy_topic, "sensor_msgs/msg/Joy"),
    }
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    out: list[tuple[int, str, object]] = []

    def pose_msg(stamp: int, xyz: np.ndarray, quat: np.ndarray) -> object:
        p = types["geometry_msgs/msg/Point"](x=xyz[0], y=xyz[1], z=xyz[2])
        q = types["geometry_msgs/msg/Quaternion"](x=quat[0], y=quat[1], z=quat[2], w=quat[3])
        pose = types["geometry_msgs/msg/Pose"](p, q)
        return types["geometry_msgs/msg/PoseStamped"](header=header(stamp, "fr3_link0"), pose=pose)

    scripted = Scripted([], [], [], [])
    start = T0
    frame = 0
    for demo, ticks in enumerate(TICKS):
        xyz = np.asarray(task.target.xyz) + np.array([0.01 * demo, -0.01, 0.08])
        quat = quat_from_rpy(task.target.rpy)
        cmd_xyz, cmd_quat = xyz.copy(), quat.copy()
        actions = np.round(rng.uniform(-0.9, 0.9, (ticks, 6)), 2)
        actions[np.abs(actions) < 0.1] = 0.0  # SpaceMouse deadband: small inputs read as zero
        tick_stamps, values, poses = [], [], []
        end = start + ticks * 100 * MS
        joy_state = 0
        for ms in range(0, ticks * 100 + 10):
            t = start + ms * MS
            k = ms // 100
            if ms % 50 == 2:  # camera frames, 20 Hz, stamped 2 ms after the tick boundary
                for cam in ("wrist", "front"):
                    value = frame % 200 + (0 if cam == "wrist" else 50)
                    img = np.full((480, 640, 3), value, np.uint8)
                    out.append((t + 8 * MS, cam, array_to_image(img, t, f"{cam}_optical_frame")))
                if ms % 100 == 2:  # the ticks, and the final observation after the last action
                    tick_stamps.append(t)
                    values.append(frame % 200)
                    poses.append(xyz.copy())
                frame += 1
            if ms % 100 == 7 and k < ticks:  # teleop: new command from the measured pose
                target = apply_action(actions[k], xyz, quat, task.action)
                cmd_xyz, cmd_quat = target.xyz, target.quat
            # the impedance controller: first-order lag toward the command (20 ms)
            alpha = 1.0 / 20.0
            xyz = xyz + alpha * (cmd_xyz - xyz)
            goal_quat = cmd_quat if np.dot(cmd_quat, quat) >= 0 else -cmd_quat  # same hemisphere
            quat = quat + alpha * (goal_quat - quat)
            quat /= np.linalg.norm(quat)
            if ms % 10 == 1:  # 100 Hz state
                out.append((t + MS, "pose", pose_msg(t, xyz, quat)))
                out.append((t + 2 * MS, "cmd", pose_msg(t, cmd_xyz, cmd_quat)))
                in_gap = wrench_gap is not None and demo == 1 and wrench_gap[0] <= ms < wrench_gap[1]
                if not in_gap:
                    f = types["geometry_msgs/msg/Vector3"](x=1.0, y=-2.0, z=3.0 + k)
                    m = types["geometry_msgs/msg/Vector3"](x=0.1, y=0.2, z=0.3)
                    wrench = types["geometry_msgs/msg/Wrench"](f, m)
                    w = types["geometry_msgs/msg/WrenchStamped"](header=header(t), wrench=wrench)
                    out.append((t + MS, "wrench", w))
            if ms % 20 == 0 and k < ticks:  # SpaceMouse, 50 Hz: the action being commanded
                a = actions[k]
                lin = types["geometry_msgs/msg/Vector3"](x=a[0], y=a[1], z=a[2])
                ang = types["geometry_msgs/msg/Vector3"](x=a[3], y=a[4], z=a[5])
                out.append((t, "twist", types["geometry_msgs/msg/Twist"](linear=lin, angular=ang)))
            # Joy: button 0 pressed for 50 ms at the start and at the end of each demo
            pressed = int(ms < 50 or ticks * 100 - 60 <= ms < ticks * 100 - 10)
            if pressed != joy_state or ms == 0:
                joy_state = pressed
                joy = types["sensor_msgs/msg/Joy"](header=header(t), axes=np.zeros(6, np.float32),
                                               buttons=np.array([pressed, 0], np.int32))
                out.append((t, "joy", joy))
        scripted.tick_stamps.append(tick_stamps)
        scripted.actions.append(actions)
        scripted.wrist_values.append(values)
        scripted.poses.append(poses)
        start = end + int(GAP_S * 1e9)

    writer = Writer(path, version=9, storage_plugin=plugin)
    with writer:
        conns = {
            key: writer.add_connection(topic, msgtype, typestore=ts)
            for key, (topic, msgtype) in topics.items()
            if key not in skip
        }
        for log_time, key, msg in sorted(out, key=lambda x: x[0]):
            if key in conns:
                writer.write(conns[key], log_time, ts.serialize_cdr(msg, msg.__msgtype__))
    return scripted


@pytest.fixture(scope="module", params=STORAGES)
def driver_bag(request, tmp_path_factory) -> tuple[Path, Scripted]:
    path = tmp_path_factory.mktemp(request.param) / "demo"
    return path, write_driver_bag(path, request.param)


def _check_demo(episodes: list[Episode], scripted: Scripted, tol: float) -> None:
    task = load_task("peg_insertion")
    assert len(episodes) == len(TICKS)
    for ep, stamps, actions, values, poses in zip(
        episodes, scripted.tick_stamps, scripted.actions, scripted.wrist_values, scripted.poses, strict=True
    ):
        assert ep.mode == "demo" and ep.task == "peg_insertion" and ep.embodiment == "franka_fr3"
        assert [s.stamp_ns for s in ep.steps] == stamps
        assert ep.length == len(stamps) - 1 and ep.success and ep.steps[-1].terminated
        got = np.stack([s.action for s in ep.steps[:-1]])
        np.testing.assert_allclose(got, actions[: len(stamps) - 1], atol=tol)
        for step, value, xyz in zip(ep.steps, values, poses, strict=True):
            assert step.images["wrist"].shape == (*task.observation.image_size, 3)
            assert np.all(step.images["wrist"] == value) and np.all(step.images["front"] == value + 50)
            # state = [tcp xyz relative to the target × position_scale, rotvec, velocity ×10, angular, force/20, ...]
            scale = task.observation.position_scale
            np.testing.assert_allclose(step.state[:3], (xyz - task.target.xyz) * scale, atol=1e-3)
            assert step.state.shape == (18,)
            np.testing.assert_allclose(step.state[12:15], [1 / 20, -2 / 20, (3 + step.step) / 20], atol=1e-6)
        assert ep.steps[-2].reward == 1.0 and sum(s.reward for s in ep.steps) == 1.0


def test_driver_bag_imports_commanded_pose_actions(driver_bag) -> None:
    path, scripted = driver_bag
    task, robot = load_task("peg_insertion"), load_robot("franka")
    result = import_driver_bag(path, task, robot, STAMPED)
    assert result.stale_steps == {} and result.short_episodes == 0
    _check_demo(result.episodes, scripted, tol=0.005)
    assert all(s.intervened for e in result.episodes for s in e.steps[:-1])


def test_driver_bag_imports_spacemouse_actions_split_by_button(driver_bag) -> None:
    path, scripted = driver_bag
    task, robot = load_task("peg_insertion"), load_robot("franka")
    cfg = dataclasses.replace(
        load_import_config("franka_spacemouse"),
        action_source="spacemouse",
        split=dataclasses.replace(load_import_config("franka_spacemouse").split, rule="joy_button", button=0),
    )
    result = import_driver_bag(path, task, robot, cfg)
    # The button windows start at the first tick and end 60 ms before the last one: that tick is cut.
    cut = Scripted([s[:-1] for s in scripted.tick_stamps], scripted.actions,
                   [v[:-1] for v in scripted.wrist_values], [p[:-1] for p in scripted.poses])
    _check_demo(result.episodes, cut, tol=1e-6)


def test_imported_recording_reads_back_with_rosbags_and_mcap(driver_bag, tmp_path: Path) -> None:
    path, scripted = driver_bag
    task, robot = load_task("peg_insertion"), load_robot("franka")
    out = tmp_path / "demos"
    result = import_to_recording(path, out, task, robot, STAMPED)
    _check_demo(list(read_episodes(out)), scripted, tol=0.005)
    messages = _mcap_messages(out)
    assert sum(t == TRANSITIONS_TOPIC for t, _ in messages) == sum(len(e.steps) for e in result.episodes)
    assert {t for t, _ in messages} == {TRANSITIONS_TOPIC, "/robot_0/episode_result"}


def test_stale_stream_cuts_the_episode(tmp_path: Path) -> None:
    path = tmp_path / "stale"
    write_driver_bag(path, "mcap", wrench_gap=(300, 500))
    task, robot = load_task("peg_insertion"), load_robot("franka")
    result = import_driver_bag(path, task, robot, load_import_config("franka_spacemouse"))
    # The wrench is silent 300..500 ms into demo 2: at the 402 ms tick its newest sample is 111 ms old.
    assert result.stale_steps == {"wrench": 1}
    assert result.short_episodes == 1  # demo 2 before the stale tick: 3 actions < min_steps
    assert [e.length for e in result.episodes] == [TICKS[0], TICKS[1] - 5]
    assert (result.episodes[1].steps[0].stamp_ns - result.episodes[1].steps[-1].stamp_ns) // MS == -500


@pytest.mark.parametrize("storage", STORAGES)
def test_missing_topic_is_named(tmp_path: Path, storage: str) -> None:
    path = tmp_path / "nowrench"
    write_driver_bag(path, storage, skip=("wrench", "cmd"))
    task, robot = load_task("peg_insertion"), load_robot("franka")
    with pytest.raises(BagImportError) as err:
        import_driver_bag(path, task, robot, load_import_config("franka_spacemouse"))
    text = str(err.value)
    assert "/franka_robot_state_broadcaster/external_wrench_in_base_frame (external wrench" in text
    assert "/cartesian_impedance_example_controller/equilibrium_pose (commanded pose" in text
    assert "/camera/wrist/color/image_raw" not in text.split("the bag has")[0]



def test_cli_bag_import_and_info(driver_bag, tmp_path: Path, capsys) -> None:
    from user_learner.cli.main import main

    path, _ = driver_bag
    out = tmp_path / "demos"
    assert main(["bag", "import", str(path), "--task", "peg_insertion", "--robot", "franka", "--out", str(out)]) == 0
    assert "imported 2 episodes (22 steps, lengths 10..12)" in " ".join(capsys.readouterr().out.split())
    assert main(["bag", "info", str(out)]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "episodes=2 complete=2 steps=22 success_rate=1.00 intervened_steps=22" in text
    assert main(["bag", "info", str(path)]) == 0
    assert "no transitions" in capsys.readouterr().out
    wrong_ns = ["--namespace", "robot_0", "--out", str(tmp_path / "x")]
    assert main(["bag", "import", str(path), "--task", "peg_insertion", "--robot", "franka", *wrong_ns]) == 2
    text = " ".join(capsys.readouterr().err.split())
    assert text.startswith("user-rl bag: error:")
    assert "missing topic(s) /robot_0/franka_robot_state_broadcaster/current_pose" in text


def test_a_robot_without_force_sensing_or_front_camera_imports_zeros_and_black_frames(tmp_path: Path) -> None:
    path = tmp_path / "bare"
    write_driver_bag(path, "mcap", skip=("wrench", "front"))
    base, franka = load_task("peg_insertion"), load_robot("franka")
    bare = dataclasses.replace(franka, driver=dataclasses.replace(franka.driver, external_wrench=""),
                               cameras={"wrist": franka.cameras["wrist"]})
    with pytest.raises(BagImportError, match=r"observes camera 'front'.*'present'"):
        import_driver_bag(path, base, bare, load_import_config("franka_spacemouse"))
    observation = dataclasses.replace(base.observation, state=(*base.observation.state, "present"))
    task = dataclasses.replace(base, observation=observation)
    result = import_driver_bag(path, task, bare, load_import_config("franka_spacemouse"))
    assert len(result.episodes) == len(TICKS)
    steps = [s for e in result.episodes for s in e.steps]
    assert sum(s.images["wrist"].any() for s in steps) >= len(steps) - 1  # (the script's frame values: 0..199)
    for step in steps:
        assert not step.images["front"].any() and step.images["front"].shape == (*task.observation.image_size, 3)
        assert not step.state[12:18].any()  # the wrench it cannot sense: zeros
        np.testing.assert_array_equal(step.state[-4:], [1, 0, 1, 0])  # gripper, wrench, wrist, front
