"""``user-rl discovery-server`` never leaves its Fast DDS server behind, however it is stopped."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def _wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def _as_from_a_terminal() -> None:
    """In the command's process before it starts: SIGINT at its default and not blocked, as a terminal starts
    it (a suite run in the background, as CI may be, passes SIGINT on ignored, and a command inheriting that
    rightly ignores Ctrl-C)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


def _signals(pid: int) -> str:
    return " ".join(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("Sig"))


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_the_server_stops_with_the_command(how: signal.Signals, tmp_path) -> None:
    with open(tmp_path / "stderr", "w+") as stderr:
        cli = subprocess.Popen([sys.executable, "-m", "user_learner.cli.main", "discovery-server",
                                "--address", "127.0.0.1", "--port", "11897"],
                               stdout=subprocess.DEVNULL, stderr=stderr, preexec_fn=_as_from_a_terminal)
        try:
            assert _wait_for(lambda: bool(_children(cli.pid)), 30), "the server never started"
            server = _children(cli.pid)[0]
            time.sleep(0.5)  # (the server's own start-up)
            state = _signals(cli.pid)
            cli.send_signal(how)
            try:
                cli.wait(timeout=20)
            except subprocess.TimeoutExpired:
                stderr.seek(0)
                pytest.fail(f"the command ignored {how.name} ({state}); its stderr: {stderr.read()[-2000:]}")
            assert _wait_for(lambda: not _running(server), 10), f"the server outlived the command stopped by {how.name}"
        finally:
            if cli.poll() is None:
                cli.kill()
