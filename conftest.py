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
# Fast DDS without synchronous delivery between the participants of one process: a test process holds
# several over a session, and that path can deadlock the DDS library at teardown (the file says how).
os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE",
                      os.path.join(os.path.dirname(os.path.abspath(__file__)), "test", "fastdds_tests.xml"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "test"))  # test helpers
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "examples"))  # the example plug-ins


import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Stop at once, saying why, when ``ROS_DOMAIN_ID`` cannot work: every ROS test would fail, and a test whose
    process joins the domain (``rclpy.init``) would end the session without a word."""
    from user_robot.ros_domain import domain_id_problem

    problem = domain_id_problem()
    if problem:
        pytest.exit(problem, returncode=4)


class Proc:
    """A child Python process whose output lines can be awaited (for real multi-process ROS tests).

    A reader thread drains the child's stdout+stderr continuously, so a chatty node never blocks
    on a full pipe, and lines that arrive together are all seen.
    """

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env={**os.environ, **(env or {})},
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._closed = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.popen.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def output(self, timeout: float = 30.0) -> list[str]:
        """Every line the process printed, once it has closed its output (or ``timeout`` passed)."""
        with self._changed:
            self._changed.wait_for(lambda: self._closed, timeout)
            return list(self.lines)

    def wait_for(self, prefix: str, timeout: float = 30.0) -> str:
        """Return the first output line starting with ``prefix`` (fail on exit or timeout)."""

        def found() -> str | None:
            return next((line for line in self.lines if line.startswith(prefix)), None)

        with self._changed:
            self._changed.wait_for(lambda: found() is not None or self._closed, timeout)
            line = found()
            if line is not None:
                return line
            tail = "\n".join(self.lines[-40:])
        raise AssertionError(f"no line starting {prefix!r}; output so far:\n{tail}")

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
