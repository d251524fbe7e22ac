"""Where a stalled node waits: on ``STACKS_SIGNAL`` a process writes every thread's Python stack to stderr.

``kill -USR1 <pid>`` on a node (its log is its stderr) shows where each of its threads is, even one
blocked inside a DDS call; the process goes on. A timed-out ``user-rl`` run sends it to every node.
Pure (no ROS): the CLI arms it in a node's process before importing the node.
"""

from __future__ import annotations

import faulthandler
import signal

STACKS_SIGNAL = signal.SIGUSR1


def dump_stacks_on_request() -> None:
    """From now on, ``STACKS_SIGNAL`` writes every thread's Python stack to stderr; the process goes on."""
    faulthandler.register(STACKS_SIGNAL, all_threads=True)
