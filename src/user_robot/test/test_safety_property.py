"""Property test of the safety filter: >= 100k random and adversarial actions and start poses.

Invariants checked after every single command: the commanded pose is finite, within the
translation and rotation step limits of the previous one, and inside the workspace box whenever
the previous one was (a start outside the box is walked in at the step limits). Hypothesis draws
each scenario (workspace, start pose inside or outside the box, frame, dims, scales, limits, how
the measured pose misbehaves) and a few explicit actions from its own float strategies; a seeded
numpy stream, whose mix of saturated, huge and NaN/inf components hypothesis also draws, adds the
bulk (generating every float through hypothesis would take minutes). The measured pose an action
is applied to is the commanded one, a lagging/noisy one, an arbitrary far-away one, or non-finite.
Workspaces include one whose yaw range crosses ±π.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from user_robot.pose_math import quat_from_rotvec, quat_from_rpy
from user_robot.robot_config import SafetyConfig
from user_robot.safety import TOLERANCE, Pose, SafetyFilter, rotation_angle
from user_robot.task_config import ActionConfig, PoseConfig, WorkspaceConfig

EXAMPLES = 1200
BULK_ACTIONS = 80  # numpy actions per example, after up to 12 hypothesis-drawn ones: ~104k in total
TOTAL = {"actions": 0}

CELLS = [
    # peg insertion: tight roll/pitch, gripper pointing down (roll = π, where Euler angles wrap)
    (
        PoseConfig((0.55, 0.0, 0.06)),
        WorkspaceConfig((-0.06, -0.06, -0.003), (0.06, 0.06, 0.12), (-0.05,) * 2 + (-0.35,), (0.05,) * 2 + (0.35,)),
    ),
    # yaw range crossing ±π in absolute terms (target yaw 3.0, ±0.5)
    (
        PoseConfig((0.4, 0.2, 0.3), (math.pi, 0.0, 3.0)),
        WorkspaceConfig((-0.1,) * 3, (0.1,) * 3, (-0.2, -0.2, -0.5), (0.2, 0.2, 0.5)),
    ),
    # asymmetric box, generous rotations, pitch close to the Euler singularity
    (
        PoseConfig((0.5, -0.1, 0.2), (2.5, 0.3, -2.0)),
        WorkspaceConfig((-0.02, 0.0, -0.05), (0.0, 0.1, 0.01), (-1.0, -1.4, -3.0), (0.5, 1.4, 0.2)),
    ),
    # flat box (zero extent in z), full yaw circle
    (
        PoseConfig((0.3, 0.3, 0.1)),
        WorkspaceConfig((-0.05, -0.05, 0.0), (0.05, 0.05, 0.0), (-0.01, -0.01, -math.pi), (0.01, 0.01, math.pi)),
    ),
]

finite = st.floats(-1.0, 1.0, allow_nan=False)
adversarial = st.sampled_from([-1.0, 1.0, 0.0, 1e9, -1e9, 3.0, -7.5, math.nan, math.inf, -math.inf])
component = st.one_of(finite, finite, adversarial)
explicit_actions = st.lists(st.lists(component, min_size=7, max_size=7), max_size=12)
mix = st.fixed_dictionaries(
    {"saturate": st.floats(0.0, 0.5), "huge": st.floats(0.0, 0.1), "nonfinite": st.floats(0.0, 0.1)}
)
measured_kind = st.lists(st.sampled_from(["commanded", "noisy", "far", "nonfinite"]), min_size=1, max_size=8)
vec3 = st.tuples(*[st.floats(-1.0, 1.0, allow_nan=False)] * 3)


def bulk_actions(rng: np.random.Generator, mix: dict[str, float]) -> np.ndarray:
    """Uniform actions with components replaced by ±1, ±1e9 or NaN/±inf at the drawn rates."""
    a = rng.uniform(-1.0, 1.0, (BULK_ACTIONS, 7))
    u = rng.uniform(size=a.shape)
    a[u < mix["saturate"]] = rng.choice([-1.0, 1.0], size=a.shape)[u < mix["saturate"]]
    huge = (u >= mix["saturate"]) & (u < mix["saturate"] + mix["huge"])
    a[huge] = rng.choice([-1e9, 1e9], size=a.shape)[huge]
    bad = rng.uniform(size=a.shape) < mix["nonfinite"]
    a[bad] = rng.choice([math.nan, math.inf, -math.inf], size=a.shape)[bad]
    return a


def _check_step(f: SafetyFilter, prev: Pose, new: Pose, inside_before: bool) -> bool:
    assert new.is_finite()
    assert np.linalg.norm(new.xyz - prev.xyz) <= f.max_translation + TOLERANCE
    assert rotation_angle(new.quat, prev.quat) <= f.max_rotation + TOLERANCE
    inside = f.workspace.contains(new)
    assert inside or not inside_before, "left the workspace box"
    return inside


@settings(
    max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)
@given(
    cell=st.sampled_from(range(len(CELLS))),
    start_offset=vec3,
    start_rot=vec3,
    start_inside=st.booleans(),
    frame=st.sampled_from(["base", "ee"]),
    dims=st.sampled_from([6, 7]),
    scales=st.tuples(st.floats(0.001, 0.2), st.floats(0.001, 1.0)),
    limits=st.tuples(st.floats(0.001, 0.05), st.floats(0.005, 0.3)),
    explicit=explicit_actions,
    mix=mix,
    seed=st.integers(0, 2**32 - 1),
    kinds=measured_kind,
    noise=vec3,
)
def test_commanded_pose_never_leaves_box_or_exceeds_steps(
    cell, start_offset, start_rot, start_inside, frame, dims, scales, limits, explicit, mix, seed, kinds, noise
) -> None:
    target, box = CELLS[cell]
    f = SafetyFilter(target, box, SafetyConfig(max_translation_step=limits[0], max_rotation_step=limits[1]))
    cfg = ActionConfig(dims=dims, frame=frame, translation_scale=scales[0], rotation_scale=scales[1])
    start = Pose.of(
        np.asarray(target.xyz) + 0.3 * np.asarray(start_offset),
        quat_from_rotvec(math.pi * np.asarray(start_rot)) if not start_inside else quat_from_rpy(target.rpy),
    )
    if start_inside:
        start = f.workspace.clip(start)
    prev = f.hold(start)
    inside = f.workspace.contains(prev)
    assert inside or not start_inside
    acts = np.concatenate([np.array(explicit).reshape(-1, 7), bulk_actions(np.random.default_rng(seed), mix)])
    for i, a in enumerate(acts):
        kind = kinds[i % len(kinds)]
        if kind == "commanded":
            measured = prev
        elif kind == "noisy":
            measured = Pose.of(prev.xyz + 0.01 * np.asarray(noise), [*(0.05 * np.asarray(noise)), 1.0])
        elif kind == "far":
            measured = Pose.of(prev.xyz + np.asarray(noise) * (i % 5), quat_from_rotvec(3.0 * np.roll(noise, i)))
        else:
            measured = Pose(np.array([math.nan, 0.0, 0.0]), np.array([0.0, 0.0, 0.0, 1.0]))
        new, gripper = f.action(np.asarray(a[:dims]), measured, cfg)
        assert gripper in (None, 0, 1)
        inside = _check_step(f, prev, new, inside)
        prev = new
    TOTAL["actions"] += len(acts)


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(cell=st.sampled_from(range(len(CELLS))), goals=st.lists(st.tuples(vec3, vec3), min_size=20, max_size=40))
def test_arbitrary_requested_poses_are_filtered(cell, goals) -> None:
    """Poses requested directly (reset waypoints, a goal pose) obey the same invariants."""
    target, box = CELLS[cell]
    f = SafetyFilter(target, box, SafetyConfig(max_translation_step=0.02, max_rotation_step=0.1))
    prev = f.hold(f.workspace.clip(Pose.of(target.xyz, quat_from_rpy(target.rpy))))
    for offset, rot in goals:
        requested = Pose.of(
            np.asarray(target.xyz) + 0.5 * np.asarray(offset), quat_from_rotvec(math.pi * np.asarray(rot))
        )
        new = f.filter(requested)
        assert _check_step(f, prev, new, True)
        prev = new
    TOTAL["actions"] += len(goals)


def test_total_actions_at_least_100k() -> None:
    """Runs after the property tests in file order; guards the >= 100k requirement."""
    assert TOTAL["actions"] >= 100_000, TOTAL


def test_outside_start_is_walked_into_the_box() -> None:
    target, box = CELLS[0]
    f = SafetyFilter(target, box, SafetyConfig(max_translation_step=0.01, max_rotation_step=0.05))
    f.hold(Pose.of(np.asarray(target.xyz) + np.array([0.3, 0.0, 0.3]), quat_from_rpy([math.pi, 0.3, 0.8])))
    cfg = ActionConfig(dims=6, gripper="none")
    distance = math.dist(f.last.xyz, f.workspace.clip_xyz(f.last.xyz))
    for _ in range(60):
        prev = f.last
        f.action(np.zeros(6), prev, cfg)
        new_distance = math.dist(f.last.xyz, f.workspace.clip_xyz(f.last.xyz))
        assert new_distance <= distance + TOLERANCE
        distance = new_distance
    assert f.workspace.contains(f.last)
