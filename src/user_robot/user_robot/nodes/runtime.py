"""What every USER node does the same way: declare its parameters, start, spin and stop.

``declare(node, {...})`` declares read-only parameters with descriptions and returns their
values; :func:`run` is the body of every node's ``main()``: init, build the node, spin (with a
multi-threaded executor when the node has callback groups that must run in parallel) until
Ctrl-C or shutdown, and on the way out run the node's ``shutdown()`` hook if it has one (the
learner checkpoints there). A config or startup error (``ValueError``: ``ConfigError`` names the
file and the key) is logged as fatal and exits with code 1 instead of a traceback.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from typing import Any

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter


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
        """Stop the loop and destroy its node."""
        self.executor.shutdown()
        self.node.destroy_node()


def run(
    factory: Callable[[], Node],
    name: str,
    args: list[str] | None = None,
    threads: int = 1,
    fatal: tuple[type[BaseException], ...] = (),
) -> None:
    """Run the node ``factory()`` builds until interrupted (see the module docstring)."""
    rclpy.init(args=args)
    node = None
    try:
        node = factory()
        executor = MultiThreadedExecutor(num_threads=threads) if threads > 1 else SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        if getattr(getattr(node, "loop", None), "failed", False):
            raise SystemExit(1) from None
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
