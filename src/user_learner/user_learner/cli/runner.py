"""Start a task graph (:mod:`user_learner.graph`) as child processes and watch its episodes.

The CLI commands (``sim``, ``collect``, ``train``) all run the same nodes that the launch files
start, one process per node, with the parameters from :func:`user_learner.graph.to_ros_args`.
Each node's output goes to ``<log_dir>/ros/<namespace>.<name>.log``. A :class:`GraphMonitor`
node in the CLI process follows episode results and learner status, and shows progress.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from user_learner.graph import NodeSpec, to_ros_args
from user_learner.progress import progress
from user_robot.config_loader import UsageError
from user_robot.contracts import TRANSITIONS_TOPIC, TRUTH_SOLVED, TRUTH_UNKNOWN, WEIGHTS_TOPIC
from user_robot.nodes.stacks import STACKS_SIGNAL
from user_robot.task_config import load_task


class NodeProcess:
    """One node of the graph as a child process."""

    def __init__(self, spec: NodeSpec, log_dir: Path) -> None:
        self.spec = spec
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{spec.namespace or 'global'}.{spec.name}.log"
        # (a log dir used again: earlier runs' lines stay in the file, this run's reports leave them out)
        self._run_starts_at = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.popen: subprocess.Popen | None = None
        self._interrupted = False
        self.restarts = 0

    @property
    def label(self) -> str:
        """``namespace/name``."""
        return f"{self.spec.namespace}/{self.spec.name}".lstrip("/")

    def start(self, extra_parameters: dict | None = None) -> None:
        """Start (or restart) the process."""
        spec = self.spec
        if extra_parameters:
            spec = dataclasses.replace(spec, parameters={**spec.parameters, **extra_parameters})
        module = f"{spec.package}.nodes.{spec.executable}"  # (torchrun takes a module, not code)
        # (stacks on request from the start: a node that hangs while importing shows where, too)
        stacks = "from user_robot.nodes.stacks import dump_stacks_on_request; dump_stacks_on_request()"
        program = ["-m", module] if spec.torchrun() else ["-c", f"{stacks}; from {module} import main; main()"]
        log = open(self.log_path, "a")  # noqa: SIM115  (kept open for the child's lifetime)
        self.popen = subprocess.Popen(
            [sys.executable, "-u", *spec.torchrun(), *program, *to_ros_args(spec)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=os.environ.copy(),
            start_new_session=True,
        )
        self._interrupted = False
        log.close()

    def alive(self) -> bool:
        """Whether the process is running."""
        return self.popen is not None and self.popen.poll() is None

    def interrupt(self) -> None:
        """SIGINT (as Ctrl-C: nodes flush and save), once."""
        if self.alive() and not self._interrupted:
            assert self.popen is not None
            self.popen.send_signal(signal.SIGINT)
            self._interrupted = True

    def stop(self, timeout: float = 10.0) -> None:
        """SIGINT (unless sent already: a second Ctrl-C cuts a node's shutdown short), then SIGKILL after
        ``timeout``."""
        if not self.alive():
            return
        assert self.popen is not None
        self.interrupt()
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()

    def tail(self, lines: int = 15) -> str:
        """The last lines this run wrote to the node's log (its restarts' included, earlier runs' not)."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(self._run_starts_at)
                return "\n".join(log.read().decode(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class GraphProcesses:
    """All node processes of one graph; stops them in reverse start order."""

    def __init__(self, specs: list[NodeSpec], log_dir: Path) -> None:
        self.nodes = [NodeProcess(spec, log_dir / "ros") for spec in specs]

    def start(self) -> None:
        """Start every node, in graph order."""
        for node in self.nodes:
            node.start()

    def find(self, name: str, namespace: str = "") -> NodeProcess:
        """The process of node ``name`` in ``namespace``."""
        for node in self.nodes:
            if node.spec.name == name and node.spec.namespace == namespace:
                return node
        raise KeyError(f"{namespace}/{name}")

    def stacks(self) -> dict[str, str]:
        """Ask every running node for its threads' stacks (``STACKS_SIGNAL``); after ``STACKS_WAIT_S``, what each
        wrote to its log since (by label). A node under torchrun is left out: its launcher is not armed (the
        signal would end it)."""
        sizes = {}
        for node in self.nodes:
            if node.alive() and not node.spec.torchrun():
                assert node.popen is not None
                sizes[node] = node.log_path.stat().st_size if node.log_path.exists() else 0
                node.popen.send_signal(STACKS_SIGNAL)
        time.sleep(STACKS_WAIT_S)
        written = {}
        for node, size in sizes.items():
            with open(node.log_path, "rb") as log:
                log.seek(size)
                written[node.label] = log.read().decode(errors="replace")
        return written

    def dead(self, ignore: Callable[[NodeProcess], bool] = lambda _n: False) -> list[NodeProcess]:
        """Nodes that exited (other than those ``ignore`` accepts, e.g. finished episode drivers)."""
        return [n for n in self.nodes if not n.alive() and not ignore(n)]

    def stop(self) -> None:
        """Stop every node, each killed if it is still running its spec's ``stop_s`` after the interrupt: the
        actors first, so that each drains its last transitions and episode results to the learner, recorder
        and episode driver while they still run; then the rest in reverse order (drivers and learner, then the
        sim)."""
        actors = [node for node in self.nodes if node.spec.executable == "actor"]
        rest = [node for node in reversed(self.nodes) if node not in actors]
        for group in (actors, rest):
            for node in group:
                node.interrupt()
            start = time.monotonic()
            for node in group:
                node.stop(timeout=max(0.1, start + node.spec.stop_s - time.monotonic()))


def _success_rate(results: list) -> float:
    """Share of ``results`` that succeeded (0 if none)."""
    return sum(r.success for r in results) / len(results) if results else 0.0


class EpisodeLog:
    """Episode results seen so far (thread-safe), for progress and the final summary."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.results: list = []
        self.versions: set[int] = set()
        self.steps = 0
        self.learner = None  # newest LearnerStatus
        self.learned_reward = False  # the task's reward is not the sim's: report the ground truth beside it

    def add(self, msg) -> None:
        """Record one ``EpisodeResult``."""
        with self._lock:
            self.results.append(msg)
            self.steps += msg.length
            self.versions.update(v for v in msg.policy_versions if v > 0)

    def success_rate(self, last: int = 20) -> float:
        """Success rate over the last ``last`` episodes (0 if none)."""
        with self._lock:
            recent = self.results[-last:]
        return _success_rate(recent)

    def ground_truth_success_rate(self, last: int = 20) -> float | None:
        """The sim cell's verdict over the last ``last`` episodes (None when a result lacks it: a real cell)."""
        with self._lock:
            recent = self.results[-last:]
        if not recent or any(getattr(r, "truth", TRUTH_UNKNOWN) == TRUTH_UNKNOWN for r in recent):
            return None
        return sum(r.truth == TRUTH_SOLVED for r in recent) / len(recent)

    def by_robot(self) -> dict[str, list]:
        """The results of each robot (by robot id, sorted), in arrival order."""
        with self._lock:
            by_robot: dict[str, list] = {}
            for r in self.results:
                by_robot.setdefault(r.robot_id, []).append(r)
        return dict(sorted(by_robot.items()))

    def robot_success_rates(self, last: int = 20) -> dict[str, tuple[int, float]]:
        """Per robot id: its episodes so far and its success rate over its own last ``last``."""
        return {robot_id: (len(results), _success_rate(results[-last:]))
                for robot_id, results in self.by_robot().items()}

    def robot_steps_to(self, target: float, last: int = 20) -> dict[str, int | None]:
        """Per robot id: its own environment steps when its own last ``last`` episodes first reached ``target``
        success (None: not yet)."""
        reached: dict[str, int | None] = {}
        for robot_id, results in self.by_robot().items():
            steps = 0
            reached[robot_id] = None
            for i, result in enumerate(results):
                steps += result.length
                if i + 1 >= last and _success_rate(results[i + 1 - last:i + 1]) >= target:
                    reached[robot_id] = steps
                    break
        return reached

    def robot_lines(self, last: int = 20) -> list[str]:
        """One line per robot (by robot id): its embodiment, task, episodes and success over its last ``last``."""
        return [f"robot={robot_id} embodiment={results[-1].embodiment} task={results[-1].task} "
                f"episodes={len(results)} steps={sum(r.length for r in results)} "
                f"success_rate={_success_rate(results[-last:]):.3f}"
                for robot_id, results in self.by_robot().items()]

    def summary(self) -> str:
        """One line: episodes, steps, success over the last 20, weight versions the actors used (and the sim's
        ground truth over the last 20 where the reward is not the sim's: ``ground_truth_success=``)."""
        with self._lock:
            n, steps, versions = len(self.results), self.steps, len(self.versions)
            interventions = sum(r.intervened_steps for r in self.results)
            returns = collections.deque((r.episode_return for r in self.results), maxlen=20)
        mean_return = sum(returns) / len(returns) if returns else 0.0
        truth = self.ground_truth_success_rate()
        truth_text = "" if truth is None or not self.learned_reward else f" ground_truth_success={truth:.3f}"
        return (
            f"episodes={n} steps={steps} success_rate={self.success_rate():.3f} "
            f"mean_return={mean_return:.3f} intervened_steps={interventions} weight_versions={versions}{truth_text}"
        )


class SideWatch:
    """What one half of a split deployment waits for, each said once (on stderr).

    The learner side (``--side learner``) waits for robots: it names each actor it sees publishing
    transitions. The robot side (``--side robot``) waits for the learner: it says when a weights
    publisher appears and when the actors first run learned weights. ``all`` says nothing.
    """

    def __init__(self, side: str, say: Callable[[str], None] | None = None) -> None:
        self.side = side
        self.say = say or (lambda text: print(text, file=sys.stderr, flush=True))
        self.seen: set[str] = set()
        self.started = False

    def check(self, transition_publishers: list[str], weight_publishers: list[str], versions: set[int]) -> None:
        """Say what is new: publishers are node names (``/robot_0/actor``), ``versions`` those the actors ran."""
        domain = os.environ.get("ROS_DOMAIN_ID", "0")
        if self.side == "learner":
            if not self.started:
                self.say(f"learner side: waiting for robots (actors publishing {TRANSITIONS_TOPIC}, "
                         f"ROS_DOMAIN_ID={domain})")
            for name in sorted(set(transition_publishers) - self.seen):
                self.say(f"learner side: sees robot {name}")
                self.seen.add(name)
        elif self.side == "robot":
            if not self.started:
                self.say(f"robot side: waiting for the learner's weights ({WEIGHTS_TOPIC}, ROS_DOMAIN_ID={domain}); "
                         "the actors act at random until they arrive")
            for name in sorted(set(weight_publishers) - self.seen):
                self.say(f"robot side: sees the learner {name}")
                self.seen.add(name)
            if versions and "versions" not in self.seen:
                self.say(f"robot side: the actors run learned weights (version {max(versions)})")
                self.seen.add("versions")
        self.started = True


def add_discovery_argument(parser) -> None:
    """``--discovery-server HOST:PORT`` (see :func:`use_discovery_server`)."""
    parser.add_argument("--discovery-server", default="", metavar="HOST:PORT",
                        help="find the other side through a Fast DDS discovery server (`user-rl discovery-server`) "
                        "instead of multicast; several: 'HOST:PORT;HOST:PORT'")


def use_discovery_server(servers: str) -> None:
    """Make this process and the nodes it starts clients of the discovery server(s) ``servers``; super
    clients, which learn the whole graph (what the side watch and ``ros2`` tools need), not only their
    own topics' peers."""
    for server in servers.split(";"):
        host, _, port = server.rpartition(":")
        if not host or not port.isdigit():
            raise UsageError(f"--discovery-server: expected HOST:PORT[;HOST:PORT], got {servers!r}")
    os.environ["ROS_DISCOVERY_SERVER"] = servers
    os.environ["ROS_SUPER_CLIENT"] = "TRUE"


def publisher_names(node, topic: str) -> list[str]:
    """Fully qualified names of the nodes publishing ``topic``, as the ROS graph knows them."""
    return [f"{i.node_namespace.rstrip('/')}/{i.node_name}" for i in node.get_publishers_info_by_topic(topic)]


RESTARTS = {"learner": 3}
"""Nodes that ``run_graph`` restarts when they die (with ``resume``), and how often at most."""

DRIVER_RESULTS_GRACE_S = 15.0
"""How long results may still arrive after every episode driver has finished."""

STACKS_WAIT_S = 1.0
"""How long a timed-out run waits for its nodes to write their stacks to their logs before stopping them."""


def print_tail(node: NodeProcess) -> None:
    """The node's last log lines on stderr, under its label and log path."""
    print(f"--- {node.label} ({node.log_path}):\n{node.tail()}", file=sys.stderr)


def make_monitor(robots: int, log: EpisodeLog):
    """An rclpy node that feeds ``log`` from ``robot_<i>/episode_result`` and ``/user/learner_status``."""
    from rclpy.node import Node

    from user_interfaces.msg import EpisodeResult, LearnerStatus
    from user_robot.nodes.qos import STATUS

    node = Node("user_rl_monitor")
    for i in range(robots):
        node.create_subscription(EpisodeResult, f"/robot_{i}/episode_result", log.add, STATUS)
    node.create_subscription(LearnerStatus, "/user/learner_status", lambda m: setattr(log, "learner", m), STATUS)
    return node


def run_graph(
    specs: list[NodeSpec],
    log_dir: Path,
    robots: int,
    done: Callable[[EpisodeLog], bool],
    total: int,
    unit: str,
    timeout_s: float = 0.0,
    setup_monitor: Callable[[Any], None] | None = None,
    side: str = "all",
) -> tuple[EpisodeLog, int]:
    """Start the graph, show progress until ``done(log)``, stop it; returns the log and an exit code.

    ``unit`` is what the progress counts: ``steps`` or ``episodes`` of the robots, or ``transitions``
    the learner received. ``setup_monitor(node)`` may add subscriptions to the monitor node (e.g. a
    recorder). ``side`` (``robot`` or ``learner``: one half of a training graph) says what the half
    waits for (:class:`SideWatch`).
    """
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    from user_robot.nodes.runtime import RCLError

    log = EpisodeLog()
    log.learned_reward = any(
        s.executable == "actor" and load_task(s.parameters["task"]).reward.source != "sim" for s in specs
    )
    procs = GraphProcesses(specs, log_dir)
    rclpy.init(args=[])
    monitor = make_monitor(robots, log)
    if setup_monitor is not None:
        setup_monitor(monitor)
    executor = SingleThreadedExecutor()
    executor.add_node(monitor)
    code = 0
    start = time.monotonic()
    drivers_done = 0.0  # when every episode driver had exited cleanly (0: not yet)
    procs.start()
    finished_driver = lambda n: n.spec.executable == "episode_driver" and n.popen.returncode == 0  # noqa: E731
    watch = SideWatch(side)
    watched = 0.0
    try:
        with progress(f"{side} side" if side != "all" else "graph", total, unit) as report:
            while not done(log):
                executor.spin_once(timeout_sec=0.2)
                learner = log.learner
                value = {"steps": log.steps, "episodes": len(log.results),
                         "transitions": learner.transitions_received if learner is not None else 0}[unit]
                if time.monotonic() - watched > 1.0:
                    watched = time.monotonic()
                    watch.check(publisher_names(monitor, TRANSITIONS_TOPIC), publisher_names(monitor, WEIGHTS_TOPIC),
                                set(log.versions))
                shown = {"steps": log.steps, "episodes": len(log.results)}
                shown.pop(unit, None)  # (the count itself is the bar's)
                status = " ".join(f"{k}={v}" for k, v in shown.items()) + f" success(20)={log.success_rate():.2f}"
                if learner is not None:
                    status += f" updates={learner.updates} v{learner.version}"
                report.update(value, status=status)
                dead = procs.dead(ignore=finished_driver)
                for node in [n for n in dead if n.spec.name in RESTARTS and n.restarts < RESTARTS[n.spec.name]]:
                    node.restarts += 1
                    print(f"node {node.label} exited ({node.popen.returncode}); restarting it from its newest "
                          f"checkpoint ({node.restarts}/{RESTARTS[node.spec.name]}); the robot side keeps running:",
                          file=sys.stderr)
                    print_tail(node)
                    node.start(extra_parameters={"resume": True})
                    dead.remove(node)
                if dead:
                    for node in dead:
                        print(f"node {node.label} exited ({node.popen.returncode}):", file=sys.stderr)
                        print_tail(node)
                    code = 1
                    break
                drivers = [n for n in procs.nodes if n.spec.executable == "episode_driver"]
                if drivers and all(finished_driver(n) for n in drivers):
                    drivers_done = drivers_done or time.monotonic()
                    if time.monotonic() - drivers_done > DRIVER_RESULTS_GRACE_S:
                        print(f"the episode drivers finished, but only {len(log.results)} results arrived",
                              file=sys.stderr)
                        code = 1
                        break
                if timeout_s and time.monotonic() - start > timeout_s:
                    print(f"timed out after {timeout_s:.0f} s; the nodes' last lines:", file=sys.stderr)
                    for node in procs.nodes:
                        print_tail(node)
                    procs.stacks()
                    print("(each node's threads' stacks, where it waited, are now at the end of its log)",
                          file=sys.stderr)
                    code = 1
                    break
    except (KeyboardInterrupt, ExternalShutdownException):  # Ctrl-C: rclpy's handler may shut the context first
        code = 130
    except RCLError:  # (the context shut by Ctrl-C between two waits)
        if rclpy.ok():
            raise
        code = 130
    finally:
        procs.stop()
        executor.shutdown()
        monitor.destroy_node()
        rclpy.try_shutdown()
    return log, code
