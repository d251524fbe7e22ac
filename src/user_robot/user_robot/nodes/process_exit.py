"""A process's way out once it has shut down: without the interpreter's teardown.

On the sim graph a node process spent 1–5 s after its own shutdown in CPython's teardown: the final
garbage collection (torch's, rclpy's and the node's objects) and the C++ static destructors (torch
deregistering its operators the longest), and a graph stop waits for its slowest node. :func:`leave`
runs the ``atexit`` handlers and flushes stdout and stderr, then ends the process at once. Call it last,
once everything written is closed: files are closed by their owners (a node's ``shutdown``, a ``with``),
never left to the teardown. ``USER_FULL_TEARDOWN=1`` in the environment keeps the whole teardown (for a
leak checker, or to measure what leaving saves: ``bench/bench_graph_stop.py``).
"""

from __future__ import annotations

import atexit
import os
import sys
from typing import NoReturn

FULL_TEARDOWN_ENV = "USER_FULL_TEARDOWN"


def leave(code: int = 0) -> NoReturn:
    """Run the ``atexit`` handlers, flush stdout and stderr, and exit with ``code`` without the teardown."""
    if os.environ.get(FULL_TEARDOWN_ENV) == "1":
        raise SystemExit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    os._exit(code)
