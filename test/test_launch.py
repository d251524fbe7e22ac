"""Launch files and the graph they share, validated without running ``ros2 launch``.

- ``build_graph``: namespaces, side splitting, sim-only nodes, ``use_sim_time``, clear rejections,
  and ``to_ros_args`` text that ROS parses back to the same typed parameters.
- Static: every launch file parses; each task file includes the shared graph with its own task;
  every launch argument is declared with a description and documented; every executable the
  graph starts is a node file with a ``main`` (or a known external); every config file exists.
- Expansion with the real ``launch``/``launch_ros`` where they are installed (skipped here only
  because they are not on PyPI).
"""

from __future__ import annotations

import ast
import importlib.util
import itertools
from pathlib import Path

import pytest
import yaml

from user_learner.graph import (
    EXTERNAL_EXECUTABLES,
    GRAPH_OPTIONS,
    RVIZ_TOPICS,
    GraphOptions,
    build_graph,
    option_choices,
    option_text,
    parse_options,
    to_ros_args,
)
from user_robot.config_loader import ConfigError, config_dir, config_names

GRAPH_FIELDS = {f.name: f for f in GRAPH_OPTIONS}
ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch"
LAUNCH_TASKS = {  # launch file (the issue's names) -> task config
    "peg_insertion": "peg_insertion",
    "charger": "charger_plugging",
    "pick_and_place": "pick_and_place",
    "cap_tightening": "cap_tightening",
    "table_cleanup": "table_cleanup",
}
ISSUE_ARGUMENTS = ("robot", "algo", "pipeline", "robots", "use_rviz", "log_dir", "resume", "side")
ROBOT_SIDE = ("sim_cell", "arm_bridge", "teleop", "actor", "episode_driver")


def _by_ns(specs) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for s in specs:
        out.setdefault(s.namespace, []).append(s.executable)
    return out


# --- build_graph -------------------------------------------------------------------------------


def test_three_sim_robots_one_learner_one_clock() -> None:
    specs = build_graph("peg_insertion", robots=3, seed=10)
    robot_side = [e for e in ROBOT_SIDE if e != "sim_cell"]
    assert _by_ns(specs) == {"": ["sim_cell", "learner"], "robot_0": robot_side, "robot_1": robot_side,
                             "robot_2": robot_side}
    (sim,) = [s for s in specs if s.executable == "sim_cell"]
    assert specs[0] is sim  # (first: it owns /clock)
    assert sim.parameters["cells"] == ["robot_0", "robot_1", "robot_2"] and sim.parameters["seed"] == 10
    assert sim.parameters["cell_robots"] == ["sim"] * 3
    assert sim.parameters["publish_clock"] is True and sim.parameters["lockstep"] is True
    for s in specs:
        if s.namespace:
            assert s.side == "robot"
            assert s.parameters.get("robot_id", s.namespace) == s.namespace
        assert s.parameters.get("use_sim_time") is True
    (learner,) = [s for s in specs if s.executable == "learner"]
    assert learner.side == "learner" and learner.parameters["robots"] == ["sim"] * 3
    assert learner.respawn and not any(spec.respawn for spec in specs if spec is not learner)
    assert {k: learner.parameters[k] for k in ("task", "algo", "pipeline", "resume")} == {
        "task": "peg_insertion", "algo": "rlpd", "pipeline": "async", "resume": False,
    }
    free = build_graph("peg_insertion", robots=3, seed=10, lockstep=False)  # real time: a cell each, no clock
    sims = [s for s in free if s.executable == "sim_cell"]
    assert [(s.namespace, s.parameters["seed"]) for s in sims] == [("robot_0", 10), ("robot_1", 11), ("robot_2", 12)]
    assert all(s.parameters["publish_clock"] is False and "cells" not in s.parameters for s in sims)
    assert all("use_sim_time" not in s.parameters for s in free)


def test_pipeline_and_seeds_reach_the_nodes() -> None:
    specs = build_graph("peg_insertion", robot="sim_arx", pipeline="sync", robots=2, seed=5, expert="partial")
    drivers = [s for s in specs if s.executable == "episode_driver"]
    assert [d.parameters["sync"] for d in drivers] == [True, True]
    assert [s.parameters["seed"] for s in specs if s.executable == "actor"] == [5, 6]
    assert {s.parameters["expert"] for s in specs if s.executable == "sim_cell"} == {"partial"}
    assert specs[-1].parameters["robots"] == ["sim_arx"] * 2 and specs[-1].parameters["pipeline"] == "sync"
    with pytest.raises(ValueError, match="expert must be one of off, always, partial"):
        build_graph("peg_insertion", expert="sometimes")


def test_robots_as_a_list_each_with_its_own_config() -> None:
    specs = build_graph("peg_insertion", robots="2xsim,sim_arx", seed=3)
    robots = {s.namespace: s.parameters["robot"] for s in specs if s.executable == "actor"}
    assert robots == {"robot_0": "sim", "robot_1": "sim", "robot_2": "sim_arx"}
    for spec in specs:
        if spec.namespace:
            assert spec.parameters.get("robot", robots[spec.namespace]) == robots[spec.namespace], spec
    (sim,) = [s for s in specs if s.executable == "sim_cell"]
    assert sim.parameters["cell_robots"] == ["sim", "sim", "sim_arx"] and sim.parameters["seed"] == 3
    assert specs[-1].parameters["robots"] == ["sim", "sim", "sim_arx"]
    assert [s.parameters["robot"] for s in build_graph("peg_insertion", robots="sim_arx,sim", lockstep=False) if
            s.executable == "sim_cell"] == ["sim_arx", "sim"]
    assert len(build_graph("peg_insertion", robots="2")) == len(build_graph("peg_insertion", robots=2))
    mixed = build_graph("peg_insertion", robots="sim,franka", algo="sac")  # a sim cell beside a real arm: real time
    assert _by_ns(mixed)["robot_0"][0] == "sim_cell" and "sim_cell" not in _by_ns(mixed)["robot_1"]
    assert all("use_sim_time" not in s.parameters for s in mixed)
    for bad in ("2x", "sim,,arx", "0xsim", "x2"):
        with pytest.raises(ValueError, match="robots"):
            build_graph("peg_insertion", robots=bad)
    with pytest.raises(ConfigError, match="no robot named 'ur5'"):
        build_graph("peg_insertion", robots="sim,ur5")
    with pytest.raises(ValueError, match="'franka' is real hardware"):
        build_graph("peg_insertion", robots="franka", real_time_factor=2.0)


def test_an_algorithm_that_does_not_explore_gets_deterministic_actors() -> None:
    def deterministic(algo: str) -> set[bool]:
        specs = build_graph("pick_and_place", algo=algo)
        return {s.parameters["deterministic"] for s in specs if s.executable == "actor"}

    assert deterministic("hg_dagger") == {True}
    assert deterministic("rlpd") == deterministic("sac_flow") == {False}


def test_sides_split_the_graph() -> None:
    whole = build_graph("peg_insertion", robots=2)
    robot = build_graph("peg_insertion", robots=2, side="robot")
    learner = build_graph("peg_insertion", robots=2, side="learner")
    assert robot + learner == whole
    assert {s.side for s in robot} == {"robot"} and [s.executable for s in learner] == ["learner"]


@pytest.mark.parametrize("robot", ["franka", "arx"])
def test_hardware_has_no_sim_cell_and_no_sim_time(robot: str) -> None:
    specs = build_graph("peg_insertion", robot=robot, robots=2, algo="sac")
    assert _by_ns(specs)["robot_1"] == ["arm_bridge", "teleop", "actor", "episode_driver"]
    assert all("use_sim_time" not in s.parameters for s in specs)
    assert {s.parameters["robot"] for s in specs if "robot" in s.parameters} == {robot}
    with pytest.raises(ValueError, match="sim only"):
        build_graph("peg_insertion", robot=robot, real_time_factor=2.0)


def test_one_sim_robot_runs_in_lockstep_on_sim_time_unless_asked_not_to() -> None:
    specs = build_graph("peg_insertion")
    assert specs[0].parameters["lockstep"] is True and specs[0].parameters["publish_clock"] is True
    assert all(s.parameters.get("use_sim_time") is True for s in specs)
    free = build_graph("peg_insertion", lockstep=False)
    assert free[0].parameters["lockstep"] is False and free[0].parameters["publish_clock"] is False
    assert all("use_sim_time" not in s.parameters for s in free)
    real = build_graph("peg_insertion", robot="franka")
    assert all("use_sim_time" not in s.parameters for s in real)


def test_fast_sim_publishes_clock_and_every_node_uses_sim_time() -> None:
    specs = build_graph("peg_insertion", real_time_factor=4.0, use_rviz=True, obs="pixels")
    assert all(s.parameters.get("use_sim_time") is True for s in specs)
    sim = specs[0]
    assert sim.executable == "sim_cell" and sim.parameters["publish_clock"] is True
    assert sim.parameters["real_time_factor"] == 4.0 and sim.parameters["cameras"] is True
    (shared,) = [s for s in build_graph("peg_insertion", real_time_factor=4.0, robots=2) if s.executable == "sim_cell"]
    assert shared.parameters["real_time_factor"] == 4.0 and shared.parameters["cells"] == ["robot_0", "robot_1"]


def test_record_images_renders_the_cameras_and_puts_them_into_a_state_policys_transitions() -> None:
    def sim_and_actor(**options):
        specs = {s.executable: s for s in build_graph("peg_insertion", **options)}
        return specs["sim_cell"].parameters, specs["actor"].parameters

    sim, actor = sim_and_actor()
    assert sim["cameras"] is False and actor["record_images"] is False and actor["obs"] == "state"
    sim, actor = sim_and_actor(record_images=True)
    assert sim["cameras"] is True and actor["record_images"] is True and actor["obs"] == "state"


def test_rejections_are_clear() -> None:
    assert {"sac", "rlpd", "sac_flow"} <= set(option_choices(GRAPH_FIELDS["algo"]))
    assert build_graph("peg_insertion", algo="sac_flow")[-1].parameters["algo"] == "sac_flow"
    with pytest.raises(ValueError, match=r"algo must be one of .*sac_flow.*got 'ppo'"):
        build_graph("peg_insertion", algo="ppo")
    assert {"mlp", "cnn", "flow"} <= set(option_choices(GRAPH_FIELDS["policy"]))
    with pytest.raises(ValueError, match="policy must be one of"):
        build_graph("peg_insertion", policy="diffusion")
    with pytest.raises(ConfigError, match=r"tasks/nope\.yaml.*no task named 'nope'"):
        build_graph("nope")
    with pytest.raises(ConfigError, match="no robot named 'ur5'"):
        build_graph("peg_insertion", robot="ur5")
    with pytest.raises(ValueError, match="unknown graph option 'robts'"):
        build_graph("peg_insertion", robts=2)
    with pytest.raises(ValueError, match="robots must be >= 1"):
        build_graph("peg_insertion", robots=0)


def test_demos_and_ros_args_parse_back_to_typed_parameters() -> None:
    specs = build_graph("peg_insertion", demos=("a.mcap", "b,c.mcap"), real_time_factor=2.0, expert="off")
    sim, learner = specs[0], specs[-1]
    assert learner.parameters["demos"] == ["a.mcap", "b,c.mcap"]
    for spec in (sim, learner):
        args = to_ros_args(spec)
        assert args[:3] == ["--ros-args", "-r", f"__node:={spec.name}"]
        params = dict(args[i + 1].split(":=", 1) for i, a in enumerate(args) if a == "-p")
        for key, value in spec.parameters.items():
            parsed = yaml.safe_load(params[key])  # rcl's YAML reading of -p values
            assert parsed == value and type(parsed) is type(value), (key, params[key])
    assert "__ns:=/robot_0" in to_ros_args(sim) and "-p" in to_ros_args(sim)


def test_launch_argument_text_round_trips() -> None:
    defaults = {f.name: option_text(f.default) for f in GRAPH_OPTIONS}
    assert GraphOptions(**parse_options(defaults)) == GraphOptions()
    parsed = parse_options({"robots": "3", "resume": "true", "demos": "a.mcap, b.mcap", "real_time_factor": "2"})
    assert parsed == {"robots": "3", "resume": True, "demos": ("a.mcap", "b.mcap"), "real_time_factor": 2.0}
    with pytest.raises(ValueError, match="resume: expected true or false"):
        parse_options({"resume": "maybe"})


def test_rviz_points_at_the_robots_topics() -> None:
    (sim_rviz,) = [s for s in build_graph("peg_insertion", use_rviz=True) if s.executable == "rviz2"]
    assert sim_rviz.remappings == {} and sim_rviz.arguments[-2:] == ("-f", "base")
    (rviz,) = [s for s in build_graph("peg_insertion", robot="franka", use_rviz=True) if s.executable == "rviz2"]
    assert rviz.remappings["/robot_0/camera/wrist/color/image_raw"] == "/camera/wrist/color/image_raw"
    assert rviz.arguments[-2:] == ("-f", "fr3_link0")
    assert "-d" in rviz.arguments and Path(rviz.arguments[rviz.arguments.index("-d") + 1]).is_file()


# --- static checks of the launch files -----------------------------------------------------------


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _strings(tree: ast.AST) -> set[str]:
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def _functions(tree: ast.Module) -> set[str]:
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}


@pytest.mark.parametrize(("name", "task"), LAUNCH_TASKS.items())
def test_task_launch_file_includes_the_shared_graph(name: str, task: str) -> None:
    path = LAUNCH / f"{name}.launch.py"
    tree = _tree(path)
    assert "generate_launch_description" in _functions(tree)
    assigns = {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
               for t in n.targets if isinstance(t, ast.Name) and isinstance(n.value, ast.Constant)}
    assert assigns.get("TASK") == task
    included = [s for s in _strings(tree) if s.endswith(".launch.py")]
    assert included == ["user_graph.launch.py"] and (LAUNCH / included[0]).is_file()
    assert (config_dir() / "tasks" / f"{task}.yaml").is_file(), f"config/tasks/{task}.yaml is missing"
    assert task in config_names("tasks")


def test_shared_launch_declares_every_option_with_a_description() -> None:
    tree = _tree(LAUNCH / "user_graph.launch.py")
    assert "generate_launch_description" in _functions(tree)
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    declares = [n for n in calls if getattr(n.func, "id", "") == "DeclareLaunchArgument"]
    assert declares and all(any(k.arg == "description" for k in call.keywords) for call in declares)
    loops = [n for n in ast.walk(tree) if isinstance(n, ast.For) and getattr(n.iter, "id", "") == "GRAPH_OPTIONS"]
    assert loops, "user_graph.launch.py must declare one argument per GRAPH_OPTIONS field"
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module == "user_learner.graph"
                for a in n.names}
    import user_learner.graph as graph

    assert imported and all(hasattr(graph, name) for name in imported)
    assert "task" in _strings(tree)
    names = {f.name for f in GRAPH_OPTIONS}
    assert set(ISSUE_ARGUMENTS) <= names
    docs = (ROOT / "docs" / "ros_workflows.md").read_text()
    for field in GRAPH_OPTIONS:
        assert field.metadata["help"], f"{field.name} has no description"
        assert not option_choices(field) or field.default in option_choices(field)
        assert f"`{field.name}`" in docs, f"launch argument {field.name} is not documented in docs/ros_workflows.md"


def _node_file(package: str, executable: str) -> Path:
    return ROOT / "src" / package / package / "nodes" / f"{executable}.py"


def test_every_executable_and_package_exists() -> None:
    started: set[tuple[str, str]] = set()
    for robot, obs, rviz in itertools.product(config_names("robots"), ("state", "pixels"), (False, True)):
        specs = build_graph("peg_insertion", robot=robot, obs=obs, use_rviz=rviz)
        started |= {(s.package, s.executable) for s in specs}
    ours = started - EXTERNAL_EXECUTABLES
    assert {p for p, _ in ours} == {"user_robot", "user_policies", "user_learner"}
    for package, executable in sorted(ours):
        path = _node_file(package, executable)
        assert path.is_file(), f"{package} {executable}: {path.relative_to(ROOT)} is missing"
        assert "main" in _functions(_tree(path)), f"{path.relative_to(ROOT)} has no main()"
        assert (ROOT / "src" / package / "package.xml").is_file()
    bringup = (ROOT / "package.xml").read_text()
    for package in {p for p, _ in ours} | {"launch", "launch_ros"}:
        assert f"<exec_depend>{package}</exec_depend>" in bringup
    assert "install(DIRECTORY launch config" in (ROOT / "CMakeLists.txt").read_text()


def test_rviz_config_shows_the_documented_topics() -> None:
    text = (config_dir() / "rviz" / "user.rviz").read_text()
    rviz = yaml.safe_load(text)
    displays = rviz["Visualization Manager"]["Displays"]
    topics = {d["Topic"]["Value"]: d for d in displays if "Topic" in d}
    assert set(RVIZ_TOPICS.values()) <= set(topics)
    assert topics[RVIZ_TOPICS["current_pose"]]["Topic"]["Reliability Policy"] == "Best Effort"
    assert {"/robot_0/workspace_markers", "/robot_0/status_markers"} <= set(topics)
    classes = {d["Class"] for d in displays}
    assert {"rviz_default_plugins/Image", "rviz_default_plugins/Pose", "rviz_default_plugins/MarkerArray"} <= classes


# --- expansion with the real launch packages (on ROS 2 installs) ---------------------------------


def _expand(entities, context) -> list:
    from launch_ros.actions import Node

    nodes = []
    for entity in entities:
        if isinstance(entity, Node):
            nodes.append(entity)
            continue
        nodes += _expand(entity.visit(context) or [], context)
    return nodes


@pytest.mark.parametrize(("name", "task"), LAUNCH_TASKS.items())
def test_launch_descriptions_expand(name: str, task: str) -> None:
    pytest.importorskip("launch_ros")  # (first: the repository's launch/ folder shadows a missing `launch`)
    from launch import LaunchContext

    spec = importlib.util.spec_from_file_location(f"{name}_launch", LAUNCH / f"{name}.launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    context = LaunchContext()
    context.launch_configurations.update({"robots": "2", "side": "all", "robot": "sim"})
    nodes = _expand([module.generate_launch_description()], context)
    want = build_graph(task, robots=2)
    assert [(n.node_package, n.node_executable) for n in nodes] == [(s.package, s.executable) for s in want]

    context = LaunchContext()
    context.launch_configurations["algo"] = "ppo"
    with pytest.raises(ValueError, match="algo must be one of"):
        _expand([module.generate_launch_description()], context)



def test_a_data_parallel_learner_starts_under_torchrun() -> None:
    """``learner_ranks:=N``: the node runs under ``python -m torch.distributed.run`` (the CLI's command; launch's
    node prefix; test_data_parallel_node.py runs it); one rank is the plain node."""
    learner = next(s for s in build_graph("peg_insertion", learner_ranks=2) if s.executable == "learner")
    assert learner.torchrun() == ("-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2")
    assert next(s for s in build_graph("peg_insertion") if s.executable == "learner").torchrun() == ()
