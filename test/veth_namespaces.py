"""Two network namespaces joined by a veth pair: a robot PC and a GPU server on one machine.

Used by the split-deployment test and ``bench/bench_pipeline.py --split netns``. Needs root and
iproute2 (as CI runs); :class:`NamespacesUnavailableError` says why not elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator

LEARNER_ADDRESS = "10.251.0.1"
ROBOT_ADDRESS = "10.251.0.2"


class NamespacesUnavailableError(RuntimeError):
    """This machine cannot make network namespaces (not root, no iproute2, no permission)."""


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


@contextlib.contextmanager
def veth_namespaces(multicast: bool = True) -> Iterator[tuple[str, str]]:
    """Yields (learner namespace, robot namespace) at :data:`LEARNER_ADDRESS` / :data:`ROBOT_ADDRESS`, with a
    route for DDS's discovery multicast over the link when ``multicast``. (Without the route Fast DDS still
    finds peers over the link: it sends on the interface it picks. To emulate a network that drops
    multicast, keep automatic discovery to each host: ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``.)"""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        raise NamespacesUnavailableError("needs root and iproute2 to make network namespaces")
    tag = str(os.getpid() % 100000)
    learner, robot, a, b = f"user_l{tag}", f"user_r{tag}", f"uv{tag}a", f"uv{tag}b"
    try:
        ip("netns", "add", learner)
    except subprocess.CalledProcessError as exc:
        raise NamespacesUnavailableError(f"cannot make a network namespace here: {exc.stderr.strip()}") from exc
    try:
        ip("netns", "add", robot)
        ip("link", "add", a, "type", "veth", "peer", "name", b)
        for ns, dev, addr in ((learner, a, LEARNER_ADDRESS), (robot, b, ROBOT_ADDRESS)):
            ip("link", "set", dev, "netns", ns)
            ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            ip("-n", ns, "link", "set", dev, "up")
            ip("-n", ns, "link", "set", "lo", "up")
            if multicast:
                ip("-n", ns, "route", "add", "224.0.0.0/4", "dev", dev)
        yield learner, robot
    finally:
        for ns in (learner, robot):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
