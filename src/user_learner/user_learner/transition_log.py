"""The learner's write-ahead log: every transition message it receives, on disk before it is used.

A checkpoint holds the buffers as they were when it was taken; the log holds what arrived since,
so a learner that dies between checkpoints loses nothing: on resume it loads the checkpoint and
replays the log (the episode assembler drops any step it already has, by episode and step).

Layout: ``<dir>/<NNNNNNNNNN>.wal`` segments, each a run of records ``[u32 length][u32 crc32][bytes]``
(the serialized ``user_interfaces/Transition``, as it came off the wire). :meth:`TransitionLog.seal`
closes the open segment when a checkpoint snapshot is taken; :meth:`TransitionLog.drop_sealed`
deletes the sealed ones once that checkpoint is on disk. Each record goes to the OS in one write, so a
killed process loses nothing; :meth:`TransitionLog.sync` (fsync, once a second by the learner) bounds
what a power cut can take. A record cut short by a crash, or one whose checksum fails, ends the
replay of its segment with a warning (the records before it are kept).
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

HEADER = struct.Struct("<II")
SUFFIX = ".wal"
log = logging.getLogger(__name__)


class TransitionLog:
    """Append-only segments of raw transition messages under ``directory`` (see the module docstring)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = None
        self._open_path: Path | None = None
        self._sealed: list[Path] = []
        self.records = 0  # appended by this process

    def segments(self) -> list[Path]:
        """Every segment on disk, oldest first."""
        return sorted(self.directory.glob(f"*{SUFFIX}"))

    def _open(self) -> int:
        if self._fd is None:
            existing = self.segments()
            number = int(existing[-1].stem) + 1 if existing else 0
            path = self.directory / f"{number:010d}{SUFFIX}"
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            self._open_path = path
        return self._fd

    def append(self, raw: bytes) -> None:
        """Log one serialized message (a single write: a killed process never leaves half of it behind)."""
        os.write(self._open(), HEADER.pack(len(raw), zlib.crc32(raw)) + raw)
        self.records += 1

    def sync(self) -> None:
        """fsync the open segment (what a power cut could otherwise take)."""
        if self._fd is not None:
            os.fsync(self._fd)

    def seal(self) -> None:
        """Close the open segment: what follows goes to a new one (call as a checkpoint snapshot is taken)."""
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._sealed.append(self._open_path)
            self._fd = None

    def drop_sealed(self) -> None:
        """Delete the segments sealed so far (their records are in a checkpoint now)."""
        for path in self._sealed:
            path.unlink(missing_ok=True)
        self._sealed = []

    def adopt(self) -> list[Path]:
        """Every segment on disk, oldest first, now sealed: a resumed learner replays them (logging what it
        replays anew), and the next checkpoint drops them."""
        self.seal()
        self._sealed = self.segments()
        return list(self._sealed)

    def close(self) -> None:
        """Close the open segment (it stays on disk until a checkpoint covers it)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def read_segment(path: str | Path) -> Iterator[bytes]:
    """The records of one segment in order, up to the first truncated or corrupted one."""
    data = Path(path).read_bytes()
    offset = 0
    while offset < len(data):
        if offset + HEADER.size > len(data):
            log.warning("%s: record header cut short at byte %d (a crash mid-write): replay stops there", path, offset)
            return
        length, crc = HEADER.unpack_from(data, offset)
        start, end = offset + HEADER.size, offset + HEADER.size + length
        if end > len(data) or zlib.crc32(data[start:end]) != crc:
            log.warning("%s: record at byte %d is cut short or corrupted: replay stops there", path, offset)
            return
        yield data[start:end]
        offset = end
