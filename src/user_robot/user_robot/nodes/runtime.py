"""What every USER node does the same way: declare its parameters, start, spin and stop.

``declare(node, {...})`` declares read-only parameters with descriptions and returns their
values; :func:`run` is the body of every node's ``main()``: init, build the node, spin (with a
multi-threaded executor when the node has callback groups that must run in parallel) until
Ctrl-C, SIGTERM or shutdown, and on the way out (callbacks stopped) run the node's ``drain()`` hook
while the node can still talk (the actor waits there until the learner has acknowledged its last transitions), then
its ``shutdown()`` hook (the learner checkpoints there), then ends the process without the interpreter's
teardown (:mod:`user_robot.nodes.process_exit`). A config or startup error (``ValueError``:
``ConfigError`` names the file and the key) is logged as fatal and exits with code 1 instead of a traceback.
Every node writes the stacks of all its threads to stderr (its log) on ``SIGUSR1`` (:mod:`user_robot.nodes.stacks`).
"""

from __future__ import annotations

import signal
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any, NoReturn

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions

from user_robot.nodes.process_exit import leave
from user_robot.nodes.stacks import dump_stacks_on_request
from user_robot.ros_domain import domain_id_problem

RCLError: type[Exception] = _rclpy.RCLError
"""What rcl calls raise, e.g. on a context shut down under a waiting call. rclpy exports it nowhere public;
its own modules reach it through the implementation singleton, as here (one place to change if it moves)."""
InvalidHandle: type[Exception] = _rclpy.InvalidHandle
"""What a call on a destroyed entity raises (same origin as :data:`RCLError`)."""


def declare(node: Node, described: dict[str, tuple[Any, str]]) -> dict[str, Any]:
    """Declare read-only parameters ``{name: (default, description)}``; returns their values."""
    for name, (default, description) in described.items():
        node.declare_parameter(name, default, ParameterDescriptor(description=description, read_only=True))
    return {name: node.get_parameter(name).value for name in described}


class ControlLoop:
    """A node's fixed-rate control loop on a companion node (``<name>_loop``) and executor thread of its own.

    rclpy's multi-threaded executor wakes a timer late when ROS time comes from ``/clock``: it goes back
    to waiting on a wait set built before a worker thread ran the clock callback. Measured with a
    lockstep sim, a tick answered 2.4 times per second instead of 133 with a single-threaded executor.
    A single-threaded executor with nothing but the timer (and the clock) ticks as soon as time comes.
    Use :attr:`clock` for stamps in the loop: it is the first to know the time. The loop runs from
    :meth:`start` on (call it last in the owner's constructor: the first tick may come at once).
    """

    def __init__(self, owner: Node, period_s: float, callback: Callable[[], None]) -> None:
        use_sim_time = Parameter("use_sim_time", value=owner.get_parameter("use_sim_time").value)
        self.node = Node(f"{owner.get_name()}_loop", namespace=owner.get_namespace(),
                         parameter_overrides=[use_sim_time], start_parameter_services=False, enable_rosout=False)
        self.clock = self.node.get_clock()
        self.node.create_timer(period_s, callback)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name=f"{owner.get_name()}_loop", daemon=True)
        self.failed = False  # the loop died of an exception (the process then exits with 1)
        self._closed = False

    def start(self) -> None:
        """Start ticking."""
        self._thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except ExternalShutdownException:
            pass
        except Exception:  # a dead loop must not leave a live-looking node: stop the whole process
            self.node.get_logger().fatal(f"control loop failed, shutting down:\n{traceback.format_exc()}")
            self.failed = True
            rclpy.try_shutdown()

    def close(self) -> None:
        """Stop the loop and destroy its node (once)."""
        if self._closed:
            return
        self._closed = True
        self.executor.shutdown()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)  # (a spin thread still inside rcl when the process exits aborts it)
        self.node.destroy_node()


def init(name: str, args: list[str] | None = None, **options: Any) -> None:
    """``rclpy.init`` for node ``name``, once ``ROS_DOMAIN_ID`` is known to work: else a FATAL line and exit
    code 1 (rclpy would only say, in Fast DDS's words, that a port number is too high)."""
    problem = domain_id_problem()
    if problem:
        print(f"[FATAL] {name}: {problem}", file=sys.stderr, flush=True)
        leave(1)
    rclpy.init(args=args, **options)


def run(
    factory: Callable[[], Node],
    name: str,
    args: list[str] | None = None,
    threads: int = 1,
    fatal: tuple[type[BaseException], ...] = (),
) -> NoReturn:
    """Run the node ``factory()`` builds until interrupted, then end the process (see the module docstring).

    rclpy's own signal handler would shut the context down at the first Ctrl-C, before the node could
    flush anything; here the signal only ends the spin (the executor runs on a thread of its own, so the
    main thread is free to take it); a second Ctrl-C cuts the drain short (``shutdown()`` still runs).
    """
    dump_stacks_on_request()
    init(name, args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: Any) -> None:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    node = None
    failure: list[BaseException] = []
    try:
        node = factory()
        executor = MultiThreadedExecutor(num_threads=threads) if threads > 1 else SingleThreadedExecutor()
        executor.add_node(node)
        spinner = threading.Thread(target=_spin, args=(executor, failure), name=f"{name}_spin", daemon=True)
        spinner.start()
        while spinner.is_alive() and not stop.wait(0.5):
            pass
        if failure:
            raise failure[0]
        if getattr(node, "failed", False) or getattr(getattr(node, "loop", None), "failed", False):
            raise SystemExit(1)  # (the node, or its control loop, failed and stopped it)
        executor.shutdown(timeout_sec=5.0)
        spinner.join(timeout=5.0)  # (a spin thread still inside rcl when the process exits aborts it)
        drain = getattr(node, "drain", None)
        if stop.is_set() and callable(drain) and rclpy.ok():
            drain()
    except KeyboardInterrupt:
        pass
    except (ValueError, *fatal) as exc:
        rclpy.logging.get_logger(name).fatal(str(exc))
        raise SystemExit(1) from exc
    finally:
        if node is not None:
            shutdown = getattr(node, "shutdown", None)
            if callable(shutdown):
                shutdown()
            node.destroy_node()
        rclpy.try_shutdown()
    leave()


def _spin(executor: SingleThreadedExecutor | MultiThreadedExecutor, failure: list[BaseException]) -> None:
    """Spin until the executor or the context shuts down; an exception of a callback goes to ``failure``."""
    try:
        executor.spin()
    except ExternalShutdownException:
        pass
    except BaseException as exc:  # re-raised on the main thread
        failure.append(exc)
