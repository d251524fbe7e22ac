"""The learner's transition log: records survive a kill -9 mid-stream, torn or corrupted tails are cut
cleanly, segments are sealed at a checkpoint and dropped once it is on disk, adopted on resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from user_learner.transition_log import TransitionLog, read_segment

WRITER = """
import sys, time
from user_learner.transition_log import TransitionLog
log = TransitionLog(sys.argv[1])
i = 0
while True:
    log.append(i.to_bytes(4, "little") * 2500)  # 10 kB records, numbered
    i += 1
    if i == 50:
        print("written", flush=True)
"""


def records(directory: Path) -> list[bytes]:
    return [r for segment in TransitionLog(directory).segments() for r in read_segment(segment)]


def test_kill_9_mid_stream_loses_no_record_it_wrote(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "written"
    time.sleep(0.3)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    got = records(tmp_path)
    assert len(got) >= 50
    assert [int.from_bytes(r[:4], "little") for r in got] == list(range(len(got)))  # in order, none torn
    assert all(r == r[:4] * 2500 for r in got)


def test_a_torn_or_corrupted_tail_ends_the_replay_there(tmp_path: Path, caplog) -> None:
    log = TransitionLog(tmp_path)
    for i in range(5):
        log.append(bytes([i]) * 100)
    log.close()
    (segment,) = log.segments()
    data = segment.read_bytes()
    segment.write_bytes(data[:-30])  # the last record cut short
    assert [r[0] for r in read_segment(segment)] == [0, 1, 2, 3]
    corrupted = bytearray(data)
    corrupted[2 * 108 + 8 + 5] ^= 0xFF  # a byte inside the third record's payload
    segment.write_bytes(bytes(corrupted))
    assert [r[0] for r in read_segment(segment)] == [0, 1]
    assert "corrupted" in caplog.text


def test_seal_drop_and_adopt(tmp_path: Path) -> None:
    log = TransitionLog(tmp_path)
    log.append(b"a")
    log.seal()  # a checkpoint snapshot: "a" is in it
    log.append(b"b")  # arrives while the checkpoint is written
    assert records(tmp_path) == [b"a", b"b"]
    log.drop_sealed()  # the checkpoint is on disk
    assert records(tmp_path) == [b"b"]
    log.sync()
    log.close()

    resumed = TransitionLog(tmp_path)  # after a crash: replay what is there, logging it anew
    adopted = resumed.adopt()
    assert [r for p in adopted for r in read_segment(p)] == [b"b"]
    resumed.append(b"b")
    resumed.append(b"c")
    assert records(tmp_path) == [b"b", b"b", b"c"]  # (the assembler drops the repeat by its identity)
    resumed.seal()
    resumed.drop_sealed()
    assert records(tmp_path) == [] and resumed.segments() == []
