"""The sim cell's physics and plumbing: kinematics, impedance control, contact force bound, determinism."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest

from user_robot.pose_math import quat_angle, quat_from_rpy
from user_robot.robot_config import load_robot
from user_robot.sim.cell import SimCell
from user_robot.sim.expert import CLOSE, OPEN, ExpertSchedule, VirtualSpaceMouse
from user_robot.sim.headless import expert_policy, run_episode
from user_robot.task_config import load_task
from user_robot.teleop_core import TeleopCore

DOWN = quat_from_rpy(np.array([np.pi, 0.0, 0.0]))


@pytest.fixture(scope="module")
def peg() -> SimCell:
    return SimCell(load_task("peg_insertion"), load_robot("sim"))


def test_panda_home_matches_franka_forward_kinematics(peg: SimCell) -> None:
    cell = SimCell(load_task("pick_and_place"), load_robot("sim"))
    xyz, quat = cell.tcp_pose()
    # Franka's published home pose (q = [0, -π/4, 0, -3π/4, 0, π/2, π/4]): TCP at (0.307, 0, 0.487), pointing down
    np.testing.assert_allclose(xyz, [0.307, 0.0, 0.487], atol=2e-3)
    assert quat_angle(quat, DOWN) < 2e-3


@pytest.mark.parametrize("robot", ["sim", "sim_arx"])
def test_commanded_pose_is_tracked_in_free_space(robot: str) -> None:
    cell = SimCell(load_task("pick_and_place"), load_robot(robot))
    cell.teleport_arm(np.array([0.45, 0.0, 0.25]), DOWN)
    goal_xyz = np.array([0.5, 0.08, 0.2])
    goal_quat = quat_from_rpy(np.array([np.pi, 0.0, 0.3]))
    cell.set_equilibrium(goal_xyz, goal_quat)
    cell.step(3.0)
    xyz, quat = cell.tcp_pose()
    assert np.linalg.norm(xyz - goal_xyz) < 1e-3
    assert quat_angle(quat, goal_quat) < 0.01
    assert np.linalg.norm(cell.tcp_velocity()) < 1e-2


def test_pushing_into_the_table_keeps_contact_force_bounded() -> None:
    task = load_task("peg_insertion")
    cell = SimCell(task, load_robot("sim"))
    cell.teleport_arm(np.array([0.4, 0.15, 0.042]), DOWN)
    cell.reset_scene(0, 0)  # the peg in the hand, its tip 4 cm below the TCP: 2 mm above the table
    cell.set_equilibrium(np.array([0.4, 0.15, -0.1]), DOWN)  # push 14 cm into the table
    bound = task.impedance.translational_stiffness * task.impedance.error_clip_xyz[2]
    peak = 0.0
    for _ in range(30):
        cell.step(0.05)
        peak = max(peak, float(np.linalg.norm(cell.wrench()[:3])))
    force = cell.wrench()[:3]
    assert 0.8 * bound < force[2] < 1.15 * bound  # the table pushes back up with about stiffness × clip
    # the arm's momentum at touch-down adds a transient on top (the real arm has it too)
    assert peak < 2.0 * bound, f"peak contact force {peak:.1f} N, bound {bound:.1f} N"


def test_resets_are_deterministic_per_seed() -> None:
    def rollout(seed: int, episode: int) -> np.ndarray:
        cell = SimCell(load_task("table_cleanup"), load_robot("sim"))
        cell.reset(seed, episode)
        xyz, quat = cell.tcp_pose()
        cell.set_equilibrium(xyz + np.array([0.02, 0.0, -0.03]), quat)
        cell.step(0.5)
        return cell.data.qpos.copy()

    first = rollout(3, 1)
    np.testing.assert_array_equal(first, rollout(3, 1))
    assert not np.allclose(first, rollout(3, 2))
    assert not np.allclose(first, rollout(4, 1))


def test_reset_scene_puts_the_peg_in_the_closed_gripper_at_the_current_pose(peg: SimCell) -> None:
    peg.teleport_arm(np.array([0.5, -0.05, 0.2]), DOWN)
    peg.reset_scene(0, 5)
    peg.step(0.5)
    tip = peg.privileged()["tip"]
    assert peg.held == "part" and peg.gripper_width() < 0.031
    np.testing.assert_allclose(tip, peg.tcp_pose()[0] + [0.0, 0.0, -0.04], atol=3e-3)


def test_virtual_spacemouse_round_trips_through_the_teleop_mapping() -> None:
    cfg = dataclasses.replace(load_robot("sim").teleop, axis_map=(1, 0, 2, 4, 3, 5),
                              axis_scale=(1.0, -1.0, 2.0, 1.0, 1.0, 0.5), input_full_scale=350.0)
    mouse, teleop = VirtualSpaceMouse(cfg), TeleopCore(cfg, 7)
    action = np.array([0.3, -0.7, 0.5, 0.2, -0.4, 0.9])
    teleop.twist(mouse.twist(action), 0.0)
    teleop.joy(mouse.buttons(CLOSE))
    state = teleop.tick(0.0)
    np.testing.assert_allclose(state.action[:6], action, atol=1e-6)
    assert state.active and state.action[6] == 1.0
    teleop.joy(mouse.buttons(CLOSE))  # released: no new press
    teleop.joy(mouse.buttons(OPEN))
    assert teleop.tick(0.1).action[6] == -1.0


def test_expert_schedule_partial_takeover() -> None:
    schedule = ExpertSchedule("partial", takeover_probability=1.0, on_steps=3, off_steps=2)
    schedule.start_episode(0, 0)
    pattern = [schedule.active(k) for k in range(10)]
    assert pattern[:5] == pattern[5:] and sum(pattern[:5]) == 3  # 3 on, 2 off, periodic
    never = ExpertSchedule("partial", takeover_probability=0.0)
    never.start_episode(0, 0)
    assert not any(never.active(k) for k in range(20))
    always = ExpertSchedule("always")
    assert all(always.active(k) for k in range(20))
    with pytest.raises(ValueError):
        ExpertSchedule("sometimes")


def test_cameras_render_rgb_at_the_requested_size(peg: SimCell) -> None:
    for camera in ("wrist", "front"):
        image = peg.render(camera, 96, 128)
        assert image.shape == (96, 128, 3) and image.dtype == np.uint8 and image.std() > 5.0


def test_a_broken_gl_backend_fails_with_a_clear_error() -> None:
    code = (
        "from user_robot.sim.cell import SimCell\n"
        "from user_robot.robot_config import load_robot\nfrom user_robot.task_config import load_task\n"
        "from user_robot.sim.gl import RenderingUnavailableError\n"
        "cell = SimCell(load_task('peg_insertion'), load_robot('sim'))\n"
        "try:\n    cell.render('front', 64, 64)\nexcept RenderingUnavailableError as exc:\n    print('ERROR', exc)\n"
    )
    env = {**os.environ, "MUJOCO_GL": "egl", "PYOPENGL_PLATFORM": "egl", "EGL_PLATFORM": "surfaceless",
           "CUDA_VISIBLE_DEVICES": "", "__EGL_VENDOR_LIBRARY_FILENAMES": "/nonexistent.json"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    text = out.stdout + out.stderr
    if "ERROR" not in text:
        pytest.skip(f"EGL works on this machine, nothing to check: {text[-200:]}")
    assert "MUJOCO_GL=egl" in text and "osmesa" in text.lower()


def test_gl_backend_is_chosen_automatically() -> None:
    from user_robot.sim import gl

    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM")}
    code = "import os, user_robot.sim; print(os.environ.get('MUJOCO_GL'))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    expected = "egl" if gl._has_gpu() and gl._has_lib("EGL") else "osmesa"
    assert out.stdout.strip() == expected


@pytest.mark.parametrize("name", ["pick_and_place", "table_cleanup", "peg_insertion", "cap_tightening"])
def test_the_object_state_tracks_the_objects_as_the_expert_moves_them(name: str) -> None:
    task, robot = load_task(name), load_robot("sim")
    cell = SimCell(task, robot)
    cell.reset(0, 0)
    first = cell.object_state()
    assert first.shape == (cell.task.object_state_size(),) and np.isfinite(first).all()
    result = run_episode(cell, expert_policy(task, robot)[1], 0, 0)
    assert result.success and not np.allclose(cell.object_state(), first, atol=1e-3)  # the expert moved them


def test_object_offsets_give_each_object_relative_to_the_tcp() -> None:
    base = load_task("table_cleanup")
    task = dataclasses.replace(base, sim={**base.sim, "object_offsets": True})
    plain, offset = SimCell(base, load_robot("sim")), SimCell(task, load_robot("sim"))
    plain.reset(0, 0)
    offset.reset(0, 0)
    with_offsets, without = offset.object_state(), plain.object_state()
    n = len(offset.task.objects)
    assert with_offsets.shape == (offset.task.object_state_size(),) == (9 * n + 1,)
    tcp = offset.tcp_pose()[0]
    scale = task.observation.position_scale
    for i, name in enumerate(offset.task.objects):
        part = with_offsets[9 * i: 9 * i + 9]
        np.testing.assert_allclose(part[:6], without[6 * i: 6 * i + 6], atol=1e-6)  # the same scene, same seed
        np.testing.assert_allclose(part[6:], (offset.body_pose(name)[0] - tcp) * scale, atol=1e-5)
    assert with_offsets[-1] == without[-1]  # the lid angle stays last
