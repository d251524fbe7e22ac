"""What every USER node does the same way: declare its parameters, start, spin and stop.

``declare(node, {...})`` declares read-only parameters with descriptions and returns their
values; :func:`run` is the body of every node's ``main()``: init, build the node, spin (with a
multi-threaded executor when the node has callback groups that must run in parallel) until
Ctrl-C or shutdown, and on the way out run the node's ``shutdown()`` hook if it has one (the
learner checkpoints there). A config or startup error (``ValueError``: ``ConfigError`` names the
file and the key) is logged as fatal and exits with code 1 instead of a traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node


def declare(node: Node, described: dict[str, tuple[Any, str]]) -> dict[str, Any]:
    """Declare read-only parameters ``{name: (default, description)}``; returns their values."""
    for name, (default, description) in described.items():
        node.declare_parameter(name, default, ParameterDescriptor(description=description, read_only=True))
    return {name: node.get_parameter(name).value for name in described}


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
