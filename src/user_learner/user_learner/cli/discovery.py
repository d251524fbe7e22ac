"""``user-rl discovery-server``: a Fast DDS discovery server, for networks without multicast.

DDS finds peers by multicast; where the network drops it (Wi-Fi, routed subnets, cloud VPCs) run
this on one machine (the learner's, say) and start every side with ``--discovery-server
<that machine's address>:<port>``. The server's settings are ``config/dds/discovery_server.xml``
(UDPv4, port 11811); ``--address`` and ``--port`` override its locator. It runs until Ctrl-C.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
from pathlib import Path

from user_learner.cli.arg_types import count
from user_robot.config_loader import UsageError, config_dir

SERVER_TOOL = "fast-discovery-server"
SERVER_COMMAND = "42"  # the tool's "run a server" command (what ``fastdds discovery`` passes it)
DEFAULT_PORT = 11811
PR_SET_PDEATHSIG = 1  # prctl(2) option
STOP_TIMEOUT_S = 5.0  # the server's clean shutdown after SIGINT, before it is killed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``user-rl discovery-server`` flags."""
    parser.add_argument("--address", default="0.0.0.0", help="address to listen on (default: every interface)")
    parser.add_argument("--port", type=count(1, 65535), default=DEFAULT_PORT, help="UDP port to listen on")


def server_command(address: str, port: int) -> tuple[list[str], dict[str, str]]:
    """The server's command line and environment (the pip wheels keep Fast DDS's libraries beside the venv's
    ``lib`` and in ``ros_fastdds.libs``, where the tool's loader does not look by itself)."""
    tool = shutil.which(SERVER_TOOL) or str(Path(sys.executable).parent / SERVER_TOOL)
    if not Path(tool).is_file():
        raise UsageError(f"{SERVER_TOOL} not found (it comes with the ros-fastdds wheel; run ./setup.sh)")
    profile = config_dir() / "dds" / "discovery_server.xml"
    libs = [Path(sys.prefix) / "lib", Path(sysconfig.get_paths()["purelib"]) / "ros_fastdds.libs"]
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        [str(p) for p in libs if p.is_dir()] + [p for p in [env.get("LD_LIBRARY_PATH", "")] if p]
    )
    return [tool, SERVER_COMMAND, "-x", str(profile), "-l", address, "-p", str(port)], env


def _die_with_parent() -> None:
    """In the server's process before it starts: the kernel sends it SIGINT when this command dies, even by
    SIGKILL, so the server never outlives it (Linux's PR_SET_PDEATHSIG)."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGINT)


def run(args: argparse.Namespace) -> int:
    # stopped by a launcher or supervisor (SIGTERM) as by Ctrl-C
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    cmd, env = server_command(args.address, args.port)
    proc = subprocess.Popen(cmd, env=env, preexec_fn=_die_with_parent if sys.platform == "linux" else None)
    try:
        print(f"discovery server listening on {args.address}:{args.port}; start each side with "
              f"--discovery-server <this machine's address>:{args.port}", file=sys.stderr, flush=True)
        return proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        try:
            return proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:  # (a signal that came while it was still starting can go unseen)
            proc.kill()
            return proc.wait()
