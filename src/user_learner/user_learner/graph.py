"""The one description of a task's ROS graph, read by ``launch/*.launch.py`` and the ``user-rl`` CLI.

:class:`GraphOptions` lists the options (launch arguments and CLI flags alike, with help and
choices); :func:`build_graph` turns a task and options into :class:`NodeSpec` s, validated against
``config/``. Parameters are names and overrides only: every node loads the task, robot and
algorithm YAMLs itself, so config lives in one place. Pure: no rclpy, no launch.

Per robot ``i`` (namespace ``robot_<i>``, each with its own robot config: ``robots:=sim,sim_arx``):
the sim cell (sim backends only), arm bridge, teleop, actor and episode driver, all on side
``"robot"``; several sim cells on sim time are one process stepping them all under one ``/clock``
(namespace ``""``); once: the learner, on side ``"learner"``, so a robot PC and a GPU server can each
start their half (``side:=robot`` / ``side:=learner``); the robot side itself splits into ``arm`` (the
robot PC: drivers, bridge, teleop, episode driver) and ``actor`` (e.g. a GPU server running the policy).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal

import yaml

from user_robot.config_loader import ConfigError, UsageError, config_dir, config_names
from user_robot.robot_config import RobotConfig, load_robot
from user_robot.task_config import TaskConfig, load_task

Side = Literal["robot", "learner"]

EXTERNAL_EXECUTABLES = {("rviz2", "rviz2")}
"""(package, executable) pairs started by the graph that are not ours."""
SIM_STATE_RATE_HZ = 100.0
"""Driver-state rate of the sim cell in wall time (the real franka_robot_state_broadcaster: 1 kHz)."""
RVIZ_CONFIG = ("rviz", "user.rviz")
"""rviz2 display config, under ``config/``."""
RVIZ_TOPICS = {
    "current_pose": "/robot_0/franka_robot_state_broadcaster/current_pose",
    "equilibrium_pose": "/robot_0/cartesian_impedance_example_controller/equilibrium_pose",
    "external_wrench": "/robot_0/franka_robot_state_broadcaster/external_wrench_in_base_frame",
    "camera:wrist": "/robot_0/camera/wrist/color/image_raw",
    "camera:front": "/robot_0/camera/front/color/image_raw",
}
"""Driver topics as ``config/rviz/user.rviz`` names them (the sim cell's, robot_0); other robots remap."""


def algorithm_choices() -> tuple[str, ...]:
    """Registered algorithms that have a ``config/algorithms/<name>.yaml`` recipe."""
    from user_learner.algorithms.base import algorithm_names

    recipes = set(config_names("algorithms"))
    return tuple(name for name in algorithm_names() if name in recipes)


def policy_choices() -> tuple[str, ...]:
    """``""`` (the recipe's policy) and every registered policy kind."""
    from user_policies.policies.base import policy_kinds

    return ("", *policy_kinds())


def _opt(default: Any, help_text: str, choices: tuple[str, ...] | Callable[[], tuple[str, ...]] = ()) -> Any:
    return dataclasses.field(default=default, metadata={"help": help_text, "choices": choices})


def option_choices(field: dataclasses.Field) -> tuple[str, ...]:
    """The allowed values of an option (empty: any); registry-backed choices are looked up now."""
    choices = field.metadata["choices"]
    return tuple(choices() if callable(choices) else choices)


@dataclasses.dataclass(frozen=True)
class GraphOptions:
    """Every option of a task graph: ``ros2 launch`` arguments and ``user-rl`` flags alike."""

    robot: str = _opt("sim", "robot cell: a config/robots/<robot>.yaml (sim, franka, arx, ...)")
    algo: str = _opt("rlpd", "learning algorithm: a registered algorithm with a config/algorithms/<algo>.yaml",
                     algorithm_choices)
    policy: str = _opt("", "policy kind replacing the algorithm recipe's (empty: the recipe's)", policy_choices)
    robots: str = _opt("1", "the robots, namespaces robot_0 ..: a count of --robot (2), a count of a robot config "
                            "(2xsim), or robot configs comma-separated (sim,sim_arx; parts may be counted: 2xsim,arx)")
    tasks: str = _opt("", "one policy for several tasks, comma-separated (peg_insertion,charger_plugging): robot i "
                          "does the i-th (one per robot), or one robot does the task among them; the policy's state "
                          "gains the key 'task', a one-hot over them (empty: one task)")
    pipeline: str = _opt("async", "async: actors never wait for the learner; sync: they wait for new weights",
                         ("async", "sync"))
    side: str = _opt("all", "which part to start here: robot (drivers, bridge, teleop, actor, episode driver) or "
                            "learner; or the robot side in two: arm (all of it but the actor: the robot PC) and actor "
                            "(the actors alone: a GPU server)", ("all", "robot", "learner", "arm", "actor"))
    actor_device: str = _opt("cpu", "where the actors run the policy (cpu, cuda, cuda:<i>)")
    chunk_inference: str = _opt("inline", "inline: a tick infers the next action chunk when the last is used up; "
                                          "background: it is inferred while the current one plays",
                                ("inline", "background"))
    obs: str = _opt("state", "observation: state vector only, or camera pixels too", ("state", "pixels"))
    log_dir: str = _opt("logs", "directory for TensorBoard logs, checkpoints and recordings")
    resume: bool = _opt(False, "resume the learner from the newest checkpoint in log_dir")
    init: str = _opt("", "start the learner's policy from this checkpoint (or log dir), e.g. `user-rl pretrain`'s")
    learner_ranks: int = _opt(1, "learner processes, data-parallel under torchrun (one per GPU; gloo on CPU): "
                                 "each samples batch/N rows of every batch")
    reward_classifier: str = _opt("", "success classifier directory for a task whose reward.source is classifier "
                                      "(empty: the task's reward.classifier)")
    record_images: bool = _opt(False, "put the cameras' images into every transition even for a state policy "
                                      "(recordings to train a success classifier on)")
    expert: str = _opt("off", "sim cell's scripted expert on its virtual SpaceMouse: off, always, partial takeovers, "
                              "or human (a simulated human taking over when the policy drifts or stalls)",
                       ("off", "always", "partial", "human"))
    seed: int = _opt(0, "random seed (robot i's sim cell uses seed + i)")
    real_time_factor: float = _opt(1.0, "sim speed (!= 1 publishes /clock and sets use_sim_time; several sim robots "
                                        "share it); with lockstep, the top speed")
    lockstep: bool = _opt(True, "sim: /clock advances one step at a time, only once every robot's actor and arm "
                                "bridge have consumed the last (false: free-running, for timing measurements)")
    lockstep_lead_ticks: int = _opt(1, "lockstep: control ticks physics may run ahead of the actor (1: as a real arm "
                                       "moves on while the actor computes; 0: strict, each command and observation "
                                       "at its tick, about half the speed)")
    demos: tuple[str, ...] = _opt((), "demo recordings (bags) for the learner's demo buffer, comma-separated")
    mode: str = _opt("train", "episode mode of the actors", ("train", "eval", "demo"))
    episodes: int = _opt(0, "episodes per robot before the episode driver stops (0 = until stopped)")
    use_rviz: bool = _opt(False, "start rviz2 with config/rviz/user.rviz")


GRAPH_OPTIONS: tuple[dataclasses.Field, ...] = dataclasses.fields(GraphOptions)


LEARNER_STOP_S = 120.0
"""How long a stopping learner may take before it is killed: one update of a large policy on a loaded CPU (a
VLA with images: seconds) and a checkpoint of its buffers. Killed sooner, a run loses what it learned since
its last periodic checkpoint."""


@dataclasses.dataclass(frozen=True)
class NodeSpec:
    """One node process of the graph."""

    package: str
    executable: str
    name: str
    namespace: str = ""
    parameters: dict[str, Any] = dataclasses.field(default_factory=dict)
    side: Side = "robot"
    remappings: dict[str, str] = dataclasses.field(default_factory=dict)
    arguments: tuple[str, ...] = ()  # command-line arguments before --ros-args
    respawn: bool = False  # launch restarts it when it dies (the learner: it then resumes, see its RUNNING_MARKER)
    ranks: int = 1  # processes of this node under torchrun (data-parallel; see user_learner.data_parallel)
    stop_s: float = 15.0  # from the interrupt to a kill: the learner finishes its update and checkpoints in it

    def torchrun(self) -> tuple[str, ...]:
        """The torchrun command line (``python -m torch.distributed.run ...``, without the program) that starts
        :attr:`ranks` processes of this node; empty for one."""
        if self.ranks <= 1:
            return ()
        return ("-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(self.ranks))


def add_option_arguments(parser: Any, exclude: tuple[str, ...] = (), defaults: Mapping[str, Any] | None = None) -> None:
    """Declare ``--<option>`` flags on an ``argparse`` parser for every :class:`GraphOptions` field.

    Help, types and choices come from the field; ``defaults`` replaces a field's default for this
    command. Tuple options take several values (``--demos a.mcap b.mcap`` or ``--demos a.mcap,b.mcap``).
    """
    import argparse

    class Values(argparse.Action):
        """Several values, space- or comma-separated (as launch's ``demos:=a.mcap,b.mcap``)."""

        def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Any = None) -> None:
            setattr(namespace, self.dest, tuple(part for value in values for part in value.split(",") if part))

    for field in GRAPH_OPTIONS:
        if field.name in exclude:
            continue
        default = (defaults or {}).get(field.name, field.default)
        flag = "--" + field.name.replace("_", "-")
        kwargs: dict[str, Any] = {"default": default, "help": field.metadata["help"]}
        if field.type in ("bool", bool):
            kwargs["action"] = argparse.BooleanOptionalAction
        elif field.type in ("int", int, "float", float):
            kwargs["type"] = int if field.type in ("int", int) else float
        elif isinstance(field.default, tuple):
            kwargs.update(nargs="*", type=str, action=Values)
        else:
            kwargs["choices"] = option_choices(field) or None
        parser.add_argument(flag, **kwargs)


def option_values(args: Any, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """The :class:`GraphOptions` keywords from parsed :func:`add_option_arguments` flags."""
    out = {f.name: getattr(args, f.name) for f in GRAPH_OPTIONS if f.name not in exclude and hasattr(args, f.name)}
    if "demos" in out:
        out["demos"] = tuple(out["demos"] or ())
    return out


def option_text(value: Any) -> str:
    """An option value as launch-argument text (what :func:`parse_options` reads back)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)


def parse_options(values: Mapping[str, str]) -> dict[str, Any]:
    """Convert string values (launch arguments) to typed :class:`GraphOptions` keywords."""
    out: dict[str, Any] = {}
    for field in GRAPH_OPTIONS:
        if field.name not in values:
            continue
        text = str(values[field.name]).strip()
        if field.type in ("bool", bool):
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError(f"{field.name}: expected true or false, got {text!r}")
            out[field.name] = text.lower() in ("true", "1")
        elif field.type in ("int", int):
            out[field.name] = int(text)
        elif field.type in ("float", float):
            out[field.name] = float(text)
        elif field.name == "demos":
            out[field.name] = tuple(p.strip() for p in text.split(",") if p.strip())
        else:
            out[field.name] = text
    return out


def options(**overrides: Any) -> GraphOptions:
    """Validated :class:`GraphOptions`; unknown names, bad choices and unbuilt algorithms raise ``ValueError``."""
    known = {f.name for f in GRAPH_OPTIONS}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise UsageError(f"unknown graph option {unknown[0]!r} (known: {', '.join(sorted(known))})")
    if "robots" in overrides:  # (a count is also given as a number)
        overrides = {**overrides, "robots": str(overrides["robots"]).strip()}
    opts = GraphOptions(**overrides)
    for field in GRAPH_OPTIONS:
        choices = option_choices(field)
        value = getattr(opts, field.name)
        if choices and value not in choices:
            raise UsageError(f"{field.name} must be one of {', '.join(choices)}, got {value!r}")
    robot_names(opts)  # (raises for a malformed list)
    if opts.real_time_factor <= 0:
        raise UsageError(f"real_time_factor must be > 0, got {opts.real_time_factor}")
    if opts.episodes < 0:
        raise UsageError(f"episodes must be >= 0, got {opts.episodes}")
    return opts


MAX_ROBOTS = 64
"""Robots one graph (and one learner) takes at most."""


def robot_names(opts: GraphOptions) -> tuple[str, ...]:
    """The robot config of each robot ``robot_<i>``, from ``opts.robots``: a count of ``opts.robot`` (``2``),
    a count of a config (``2xsim``), or configs comma-separated (``sim,sim_arx``; parts may be counted)."""
    names: list[str] = []
    for part in opts.robots.split(","):
        part = part.strip()
        counted = re.fullmatch(r"(\d+)(?:x(\S+))?", part)
        count, name = (int(counted.group(1)), counted.group(2) or opts.robot) if counted else (1, part)
        if count < 1:
            raise UsageError(f"robots must be >= 1 of each, got {part!r} in {opts.robots!r}")
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
            raise UsageError(f"robots: expected a count (2), NxROBOT (2xsim) or robot configs comma-separated "
                             f"(sim,sim_arx), got {opts.robots!r}")
        names += [name] * count
    if len(names) > MAX_ROBOTS:
        raise UsageError(f"robots must be <= {MAX_ROBOTS}, got {len(names)} ({opts.robots!r})")
    return tuple(names)


def run_tasks(opts: GraphOptions) -> tuple[str, ...]:
    """The tasks one multi-task policy tells apart (``opts.tasks`` in order; empty for a one-task run)."""
    tasks = tuple(dict.fromkeys(t.strip() for t in opts.tasks.split(",") if t.strip()))
    return tasks if len(tasks) > 1 else ()


def robot_tasks(task: str, opts: GraphOptions) -> tuple[str, ...]:
    """The task of each robot: ``task`` for every one, or with ``opts.tasks`` the i-th for robot i (one robot: the
    task among them)."""
    names = robot_names(opts)
    listed = [t.strip() for t in opts.tasks.split(",") if t.strip()]
    if not listed:
        return (task,) * len(names)
    if len(listed) == len(names):
        return tuple(listed)
    if len(names) == 1 and task in listed:
        return (task,)
    raise UsageError(f"tasks: {len(listed)} tasks ({opts.tasks}) for {len(names)} robots ({opts.robots}): give one "
                     f"task per robot, or run one robot with --task among them")


def _require_config(kind: str, name: str) -> None:
    if name not in config_names(kind):
        path = config_dir() / kind / f"{name}.yaml"
        known = ", ".join(config_names(kind)) or "none"
        raise ConfigError(path, "", f"no {kind[:-1]} named '{name}' (known: {known})")


def check_reward_classifier(task: TaskConfig, given: str) -> None:
    """``UsageError`` unless the success classifier of ``task`` (``given``, else its ``reward.classifier``) loads
    and fits its cameras."""
    from user_policies.success_classifier import check_classifier, load_classifier

    path = given or task.reward.classifier
    if not path:
        raise UsageError(f"task {task.name}: reward.source is classifier but no model is given "
                         f"(reward.classifier in the task, or --reward-classifier)")
    try:
        model = load_classifier(path)
        check_classifier(model.spec, task.name, task.observation.cameras, task.observation.image_size)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def check_configs(task: str, opts: GraphOptions, robots: list[RobotConfig]) -> None:
    """Load every config file the graph's nodes will read (``robots``: the robots' configs, loaded), so that a
    mistake fails before any node starts."""
    from user_policies.observation import check_shared_interface, check_state_keys, with_task_identity

    identity = run_tasks(opts)
    try:
        per_robot = [with_task_identity(load_task(t), identity) for t in robot_tasks(task, opts)]
        for task_cfg, robot in zip(per_robot, robots, strict=True):
            check_state_keys(task_cfg, robot)
        if identity:
            check_shared_interface([with_task_identity(load_task(t), identity) for t in identity])
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    distinct = list(dict((cfg.name, cfg) for cfg in per_robot).values())
    for task_cfg in distinct:
        if task_cfg.reward.source == "classifier" and opts.side not in ("learner", "arm"):  # (the actor's)
            check_reward_classifier(task_cfg, opts.reward_classifier)
    if opts.side in ("all", "learner"):
        from user_learner.learner_core import check_policy_runs

        check_policy_runs(opts.algo, opts.obs, opts.policy, distinct)


def build_graph(task: str, **overrides: Any) -> list[NodeSpec]:
    """The nodes of ``task`` for the given :class:`GraphOptions` overrides, in start order.

    Raises :class:`UsageError` (``ConfigError`` for config files) naming what is wrong, before any node starts.
    """
    opts = options(**overrides)
    tasks = robot_tasks(task, opts)
    for name in dict.fromkeys((task, *tasks)):
        _require_config("tasks", name)
    _require_config("algorithms", opts.algo)
    names = robot_names(opts)
    told_apart = run_tasks(opts)
    identity = {"tasks": list(told_apart)} if told_apart else {}
    for name in sorted(set(names)):
        _require_config("robots", name)
    robot_cfgs = [load_robot(name) for name in names]
    check_configs(task, opts, robot_cfgs)
    sim = all(cfg.backend == "sim" for cfg in robot_cfgs)
    learned_reward = any(load_task(t).reward.source == "classifier" for t in tasks)
    hardware = [name for name, cfg in zip(names, robot_cfgs, strict=True) if cfg.backend != "sim"]
    if opts.real_time_factor != 1.0 and hardware:
        raise UsageError(f"real_time_factor applies to the sim only; robot '{hardware[0]}' is real hardware")
    lockstep = sim and opts.lockstep
    publish_clock = sim and (opts.real_time_factor != 1.0 or lockstep)
    common = {"use_sim_time": True} if publish_clock else {}

    nodes: list[NodeSpec] = []
    arm_side, actor_side = opts.side in ("all", "robot", "arm"), opts.side in ("all", "robot", "actor")
    if arm_side or actor_side:
        from user_learner.algorithms.base import ALGORITHMS

        def sim_params(robot: str, robot_task: str, seed: int) -> dict[str, Any]:
            return {
                "task": robot_task,
                "robot": robot,
                "seed": seed,
                "real_time_factor": opts.real_time_factor,
                "publish_clock": publish_clock,
                "lockstep": lockstep,
                "lockstep_lead_ticks": opts.lockstep_lead_ticks,
                # ~100 Hz of driver state in wall time: a faster sim must not multiply every node's load
                "state_rate_hz": max(SIM_STATE_RATE_HZ / max(opts.real_time_factor, 1.0), 25.0),
                "expert": opts.expert,
                "cameras": opts.obs == "pixels" or learned_reward or opts.record_images,
                **common,
            }

        one_clock = publish_clock and len(names) > 1  # one process steps every cell under the one /clock
        if one_clock and arm_side:
            cells = {"cells": [f"robot_{i}" for i in range(len(names))], "cell_robots": list(names),
                     "cell_tasks": list(tasks)}
            nodes.append(NodeSpec("user_robot", "sim_cell", "sim_cell", "",
                                  {**sim_params(names[0], tasks[0], opts.seed), **cells}))
        deterministic = ALGORITHMS.get(opts.algo).rollout_deterministic
        for i, (name, robot_cfg, robot_task) in enumerate(zip(names, robot_cfgs, tasks, strict=True)):
            ns = f"robot_{i}"
            cell = {"task": robot_task, "robot": name, "robot_id": ns, **common}
            if robot_cfg.backend == "sim" and not one_clock and arm_side:
                nodes.append(NodeSpec("user_robot", "sim_cell", "sim_cell", ns,
                                      sim_params(name, robot_task, opts.seed + i)))
            if arm_side:
                nodes.append(NodeSpec("user_robot", "arm_bridge", "arm_bridge", ns, dict(cell)))
                nodes.append(NodeSpec("user_robot", "teleop", "teleop", ns, dict(cell)))
            if actor_side:
                actor = {**cell, "obs": opts.obs, "seed": opts.seed + i, "record_images": opts.record_images,
                         "deterministic": deterministic, "device": opts.actor_device,
                         "chunk_inference": opts.chunk_inference, **identity}
                if opts.reward_classifier:
                    actor["reward_classifier"] = opts.reward_classifier
                nodes.append(NodeSpec("user_policies", "actor", "actor", ns, actor))
            if arm_side:
                driver = {"robot_id": ns, "episodes": opts.episodes, "mode": opts.mode,
                          "sync": opts.pipeline == "sync", **common}
                nodes.append(NodeSpec("user_policies", "episode_driver", "episode_driver", ns, driver))
        if opts.use_rviz and arm_side:
            rviz = str(config_dir().joinpath(*RVIZ_CONFIG))
            args = ("-d", rviz, "-f", robot_cfgs[0].base_frame)
            remaps = rviz_remappings(robot_cfgs[0])
            nodes.append(NodeSpec("rviz2", "rviz2", "rviz2", "", dict(common), "robot", remaps, args))
    if opts.side in ("all", "learner"):
        learner = {
            "task": task,
            **identity,
            "robots": list(names),
            "algo": opts.algo,
            "policy": opts.policy,
            "obs": opts.obs,
            "pipeline": opts.pipeline,
            "log_dir": opts.log_dir,
            "resume": opts.resume,
            "init": opts.init,
            "seed": opts.seed,
            **({"demos": list(opts.demos)} if opts.demos else {}),
            **common,
        }
        nodes.append(NodeSpec("user_learner", "learner", "learner", "", learner, side="learner", respawn=True,
                              ranks=opts.learner_ranks, stop_s=LEARNER_STOP_S))
    return nodes


def resolve_topic(topic: str, namespace: str) -> str:
    """An absolute topic name: a relative ``topic`` resolves under ``namespace`` as ROS resolves it."""
    if topic.startswith("/"):
        return topic
    ns = namespace.strip("/")
    return f"/{ns}/{topic}" if ns else f"/{topic}"


def rviz_remappings(robot: RobotConfig) -> dict[str, str]:
    """Remappings that point ``user.rviz``'s displays at robot_0's actual driver topics."""
    actual = {key: getattr(robot.driver, key) for key in ("current_pose", "equilibrium_pose", "external_wrench")}
    actual.update({f"camera:{name}": cam.topic for name, cam in robot.cameras.items()})
    remaps = {}
    for key, shown in RVIZ_TOPICS.items():
        if actual.get(key) and resolve_topic(actual[key], "robot_0") != shown:
            remaps[shown] = resolve_topic(actual[key], "robot_0")
    return remaps


def ros_value(value: Any) -> str:
    """A parameter value as ``-p name:=<value>`` text that ROS parses back to the same type."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # always has a '.' or 'e': stays a double
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value if value and yaml.safe_load(value) == value and "," not in value else json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(ros_value(v) for v in value) + "]"
    raise TypeError(f"unsupported parameter type {type(value).__name__}")


def to_ros_args(spec: NodeSpec) -> list[str]:
    """Command-line arguments for ``spec``'s executable: its arguments, then ``--ros-args ...``."""
    args = [*spec.arguments, "--ros-args", "-r", f"__node:={spec.name}"]
    if spec.namespace:
        args += ["-r", f"__ns:=/{spec.namespace.strip('/')}"]
    for src, dst in spec.remappings.items():
        args += ["-r", f"{src}:={dst}"]
    for key, value in spec.parameters.items():
        args += ["-p", f"{key}:={ros_value(value)}"]
    return args
