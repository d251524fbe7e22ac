"""The state vector: keys in task order, target-relative pose, configured position scale."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from user_policies.observation import ArmSample, StateEncoder, state_dim
from user_robot.pose_math import quat_from_rpy
from user_robot.task_config import load_task


def _sample(xyz, rpy=(np.pi, 0.0, 0.0), force=(0.0, 0.0, 0.0)) -> ArmSample:
    return ArmSample(
        xyz=np.asarray(xyz, dtype=np.float64),
        quat=quat_from_rpy(rpy),
        linear_velocity=np.zeros(3),
        angular_velocity=np.zeros(3),
        force=np.asarray(force, dtype=np.float64),
        torque=np.zeros(3),
        gripper_width=0.04,
        stamp=0.0,
    )


def test_peg_insertion_sees_a_millimetre_as_a_tenth() -> None:
    task = load_task("peg_insertion")
    encoder = StateEncoder(task, gripper_max_width=0.08)
    target = np.asarray(task.target.xyz)
    at_target = encoder.encode(_sample(target, task.target.rpy))
    off = encoder.encode(_sample(target + np.array([0.001, -0.002, 0.0]), task.target.rpy))
    assert at_target.shape == (state_dim(task),) and at_target.dtype == np.float32
    np.testing.assert_allclose(at_target[:6], 0.0, atol=1e-6)  # relative to the target, rotation included
    np.testing.assert_allclose(off[:3], [0.1, -0.2, 0.0], atol=1e-5)


@pytest.mark.parametrize("scale", [10.0, 250.0])
def test_position_scale_is_the_configured_one(scale: float) -> None:
    task = load_task("pick_and_place")
    task = dataclasses.replace(task, observation=dataclasses.replace(task.observation, position_scale=scale))
    encoder = StateEncoder(task, gripper_max_width=0.08)
    state = encoder.encode(_sample(np.asarray(task.target.xyz) + np.array([0.0, 0.0, 0.02]), task.target.rpy))
    assert state[2] == pytest.approx(0.02 * scale, rel=1e-5)


def test_keys_follow_the_task_order_and_scales() -> None:
    task = load_task("peg_insertion")
    task = dataclasses.replace(task, observation=dataclasses.replace(task.observation, state=("wrench", "tcp_pose")))
    state = StateEncoder(task, gripper_max_width=0.08).encode(_sample(task.target.xyz, force=(0.0, 0.0, -10.0)))
    assert state.shape == (12,)
    assert state[2] == pytest.approx(-0.5)  # force / 20 N, first because the task lists it first


def test_the_privileged_object_state_joins_the_state_in_task_order_and_only_on_a_sim_cell() -> None:
    from user_policies.observation import check_state_keys
    from user_robot.robot_config import load_robot

    base = load_task("pick_and_place")
    task = dataclasses.replace(base, observation=dataclasses.replace(base.observation,
                                                                     state=("object_state", "gripper")))
    assert state_dim(task) == 6 + 1  # one duck: position, yaw (sin, cos), in the bin
    encoder = StateEncoder(task, gripper_max_width=0.08)
    objects = np.arange(6, dtype=np.float32)
    np.testing.assert_array_equal(encoder.encode(_sample(task.target.xyz), objects), [0, 1, 2, 3, 4, 5, 0.0])
    with pytest.raises(ValueError, match="no object state came"):
        encoder.encode(_sample(task.target.xyz))
    check_state_keys(task, load_robot("sim"))
    with pytest.raises(ValueError, match="'object_state' is the simulator's ground truth and robot 'franka' is a real"):
        check_state_keys(task, load_robot("franka"))
    check_state_keys(base, load_robot("franka"))  # without the key a real cell is fine


def test_a_multi_task_runs_object_state_is_padded_to_its_longest_task() -> None:
    from user_policies.observation import check_shared_interface, with_task_identity

    run = ("pick_and_place", "peg_insertion")  # a duck (6 values) and a peg's tip and yaw (5)
    tasks = []
    for name in run:
        base = load_task(name)
        observation = dataclasses.replace(base.observation, state=("gripper", "object_state"))
        action = dataclasses.replace(base.action, dims=7)  # (peg insertion's 6 padded to one interface)
        tasks.append(with_task_identity(dataclasses.replace(base, observation=observation, action=action), run))
    check_shared_interface(tasks)
    assert [state_dim(t) for t in tasks] == [1 + 6 + 2] * 2
    peg = StateEncoder(tasks[1], gripper_max_width=0.08).encode(_sample(tasks[1].target.xyz),
                                                                np.arange(1, 6, dtype=np.float32))
    np.testing.assert_array_equal(peg[1:7], [1, 2, 3, 4, 5, 0])  # the peg's five, then a zero
    with pytest.raises(ValueError, match="object state of 7 values, the state has room for 6"):
        StateEncoder(tasks[0], gripper_max_width=0.08).encode(_sample(tasks[0].target.xyz), np.zeros(7))


def test_last_action_is_the_previous_ticks_action_and_zero_at_the_first() -> None:
    base = load_task("pick_and_place")
    observation = dataclasses.replace(base.observation, state=("last_action", "gripper"))
    task = dataclasses.replace(base, observation=observation)
    assert state_dim(task) == task.action.dims + 1
    encoder = StateEncoder(task, gripper_max_width=0.08)
    previous = np.array([0.5, -0.25, 0.0, 0.0, 0.0, 0.1, 1.0])
    np.testing.assert_allclose(encoder.encode(_sample(task.target.xyz), None, previous)[:7], previous)
    np.testing.assert_array_equal(encoder.encode(_sample(task.target.xyz))[:7], 0.0)


def test_the_embodiment_key_is_a_one_hot_of_the_robots_kind_among_the_tasks() -> None:
    from user_policies.observation import check_state_keys
    from user_robot.robot_config import load_robot

    base = load_task("peg_insertion")
    observation = dataclasses.replace(base.observation, state=("gripper", "embodiment"),
                                      embodiments=("franka_panda", "arx5"))
    task = dataclasses.replace(base, observation=observation)
    assert state_dim(task) == 1 + 2
    panda = StateEncoder(task, 0.08, "franka_panda").encode(_sample(task.target.xyz))
    arx = StateEncoder(task, 0.08, "arx5").encode(_sample(task.target.xyz))
    np.testing.assert_array_equal(panda[1:], [1.0, 0.0])
    np.testing.assert_array_equal(arx[1:], [0.0, 1.0])
    assert panda[0] == arx[0]
    check_state_keys(task, load_robot("sim_arx"))
    with pytest.raises(ValueError, match=r"embodiments \['franka_panda', 'arx5'\] has no 'franka_fr3'"):
        check_state_keys(task, load_robot("franka"))
    with pytest.raises(ValueError, match="has no 'ur5e'"):
        StateEncoder(task, 0.08, "ur5e")
    for state, kinds in ((("gripper", "embodiment"), ()), (("gripper",), ("arx5",)), (("embodiment",), ("a", "a"))):
        with pytest.raises(ValueError, match="embodiment"):
            dataclasses.replace(base.observation, state=state, embodiments=kinds)


def test_what_a_robot_lacks_is_zero_padded_and_masked_in_present() -> None:
    from user_policies.observation import present_mask
    from user_robot.camera_core import check_cameras
    from user_robot.robot_config import load_robot

    base = load_task("pick_and_place")
    observation = dataclasses.replace(base.observation, state=("gripper", "wrench", "present"),
                                      cameras=("wrist", "front"))
    task = dataclasses.replace(base, observation=observation)
    assert state_dim(task) == 1 + 6 + 4
    full = load_robot("sim_arx")
    bare = dataclasses.replace(full, gripper="none", driver=dataclasses.replace(full.driver, external_wrench=""),
                               cameras={"wrist": full.cameras["wrist"]})
    np.testing.assert_array_equal(present_mask(task, full), [1, 1, 1, 1])
    np.testing.assert_array_equal(present_mask(task, bare), [0, 0, 1, 0])
    arm = _sample(task.target.xyz, force=(0.0, 0.0, -10.0))  # (values a driverless field would never carry)
    with_all = StateEncoder(task, 0.088, present=present_mask(task, full)).encode(arm)
    without = StateEncoder(task, 0.088, present=present_mask(task, bare)).encode(arm)
    assert with_all[0] != 0.0 and with_all[3] == pytest.approx(-0.5)  # gripper and force as measured
    np.testing.assert_array_equal(without[:7], np.zeros(7))  # the gripper and the wrench it lacks: zeros
    np.testing.assert_array_equal(without[7:], [0, 0, 1, 0])
    check_cameras(task, bare)  # the task observes the mask: a black frame may stand in for 'front'
    unmasked = dataclasses.replace(task, observation=dataclasses.replace(observation, state=("gripper", "wrench")))
    with pytest.raises(ValueError, match=r"observes camera 'front', which robot sim_arx does not define.*'present'"):
        check_cameras(unmasked, bare)


def test_a_multi_task_run_tells_its_tasks_apart_by_a_one_hot_and_needs_one_interface() -> None:
    from user_policies.observation import check_shared_interface, with_task_identity

    peg, charger = load_task("peg_insertion"), load_task("charger_plugging")
    run = ("peg_insertion", "charger_plugging")
    assert with_task_identity(peg, ("peg_insertion",)) is peg  # one task: nothing to tell apart
    tasks = [with_task_identity(t, run) for t in (peg, charger)]
    assert all(t.observation.state[-1] == "task" for t in tasks)
    assert state_dim(tasks[0]) == state_dim(peg) + 2
    check_shared_interface(tasks)
    codes = [StateEncoder(t, 0.08).encode(_sample(t.target.xyz))[-2:] for t in tasks]
    np.testing.assert_array_equal(codes, [[1.0, 0.0], [0.0, 1.0]])
    # the rest of the state is each task's own (position relative to its own target)
    np.testing.assert_array_equal(StateEncoder(tasks[1], 0.08).encode(_sample(charger.target.xyz))[:-2],
                                  StateEncoder(charger, 0.08).encode(_sample(charger.target.xyz)))
    with pytest.raises(ValueError, match="task pick_and_place is not one of the run's tasks"):
        with_task_identity(load_task("pick_and_place"), run)
    both = ("peg_insertion", "pick_and_place")
    with pytest.raises(ValueError, match=r"peg_insertion and pick_and_place cannot share one policy: observation.state"
                                         r".*config/tasks/pick_and_place.yaml"):
        check_shared_interface([with_task_identity(load_task(t), both) for t in both])
