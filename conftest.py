"""Test-session setup shared by every test: isolate DDS and pick the rendering backend."""

from __future__ import annotations

import os
import random
import sys

# A unique ROS domain per test session and localhost-only discovery, so parallel runs and other
# ROS graphs on the machine never cross-talk. Set before rclpy is imported anywhere.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 100)))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
os.environ.setdefault("PYTHONUNBUFFERED", "1")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "test"))  # test helpers


import select
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest


class Proc:
    """A child Python process whose stdout lines can be awaited (for real multi-process ROS tests)."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            bufsize=0,  # unbuffered bytes: select() then sees every byte that has arrived
            env={**os.environ, **(env or {})},
        )
        self.lines: list[str] = []
        self._partial = b""

    def _read_available(self, timeout: float) -> bool:
        """Append complete lines that arrive within ``timeout``; False once the output has ended."""
        ready, _, _ = select.select([self.popen.stdout], [], [], timeout)
        if not ready:
            return True
        chunk = os.read(self.popen.stdout.fileno(), 65536)
        if not chunk:
            return False
        *complete, self._partial = (self._partial + chunk).split(b"\n")
        self.lines += [line.decode(errors="replace") for line in complete]
        return True

    def output(self, timeout: float = 30.0) -> list[str]:
        """Every line the process printed, once it has closed its output (or ``timeout`` passed)."""
        deadline = time.monotonic() + timeout
        while self._read_available(0.2) and time.monotonic() < deadline:
            pass
        return self.lines + ([self._partial.decode(errors="replace")] if self._partial else [])

    def wait_for(self, prefix: str, timeout: float = 30.0) -> str:
        """Return the first stdout line starting with ``prefix`` (fail on exit or timeout)."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for line in self.lines[seen:]:
                if line.startswith(prefix):
                    return line
            seen = len(self.lines)
            if time.monotonic() > deadline or not self._read_available(0.2):
                break
        raise AssertionError(f"no line starting {prefix!r}; output so far:\n" + "\n".join(self.lines[-40:]))

    def stop(self, timeout: float = 10.0) -> int:
        """Interrupt (SIGINT, as Ctrl-C), then kill if needed; returns the exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(2)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode


@pytest.fixture
def spawn() -> Iterator:
    """Start child processes (``spawn(["-m", "pkg.mod", ...])``); all are stopped at teardown."""
    procs: list[Proc] = []

    def _spawn(args: list[str], env: dict[str, str] | None = None) -> Proc:
        proc = Proc(args, env)
        procs.append(proc)
        return proc

    yield _spawn
    for proc in procs:
        proc.stop()
