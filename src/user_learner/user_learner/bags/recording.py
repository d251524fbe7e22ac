"""Read a rosbag2 recording, including one whose writer died before closing it.

A bag closed cleanly has ``metadata.yaml`` and an MCAP summary, and ``rosbags`` reads it through
that index. A writer killed mid-recording (``kill -9``, a crash, power loss) leaves neither, and a
copy cut short loses the MCAP's end; :func:`open_recording` then scans the MCAP data records in
file order with the ``mcap`` package's stream reader (which needs no summary) up to the first
incomplete record, and says so in :attr:`Recording.damage`; messages are then read with the
definitions the MCAP's schemas carry (an older recording's, not ours). Our writer closes an MCAP chunk at the
end of every episode (:class:`user_learner.bags.transition_bag.TransitionBagWriter`), so every
complete episode before the cut is still there.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from user_learner.bags.typestore import typestore
from user_robot.config_loader import UsageError


@dataclasses.dataclass(frozen=True)
class Topic:
    """One topic of a recording."""

    name: str
    msgtype: str
    count: int


@dataclasses.dataclass
class Recording:
    """A recording opened for reading: through the bag's index, or recovered by scanning (``damage`` says why)."""

    path: Path
    damage: str = ""  # why the index could not be used ("" = the bag is intact)
    definitions: dict[str, str] = dataclasses.field(default_factory=dict)  # msgtype -> ros2msg text (scanned)

    @property
    def mcap_files(self) -> list[Path]:
        """The MCAP files of the bag (the path itself when it is one)."""
        return [self.path] if self.path.is_file() else sorted(self.path.glob("*.mcap"))

    def topics(self) -> list[Topic]:
        """Topics with their message counts."""
        if not self.damage:
            with self._reader() as reader:
                return [Topic(c.topic, c.msgtype, c.msgcount) for c in reader.connections]
        counts: dict[tuple[str, str], int] = {}
        for topic, msgtype, _ in self._scan():
            counts[(topic, msgtype)] = counts.get((topic, msgtype), 0) + 1
        return [Topic(t, m, n) for (t, m), n in counts.items()]

    def messages(self, msgtypes: tuple[str, ...]) -> Iterator[tuple[str, Any]]:
        """``(topic, message)`` for every message of the given types (deserialized with our typestore)."""
        store = typestore()
        if not self.damage:
            with self._reader() as reader:
                conns = [c for c in reader.connections if c.msgtype in msgtypes]
                if not conns:  # (an empty list would mean every connection)
                    return
                for conn, _, raw in reader.messages(connections=conns):
                    yield conn.topic, reader.deserialize(raw, conn.msgtype)
            return
        scanned = None
        for topic, msgtype, data in self._scan():
            if msgtype in msgtypes:
                scanned = scanned or self._scanned_typestore(store)
                yield topic, scanned.deserialize_cdr(data, msgtype)

    def _scanned_typestore(self, fallback: Typestore) -> Typestore:
        """The message definitions of the schemas scanned so far (``fallback`` where the file has none)."""
        types: dict = {}
        for msgtype, text in self.definitions.items():
            types.update(get_types_from_msg(text, msgtype))
        if not types:
            return fallback
        store = get_typestore(Stores.EMPTY)
        store.register(types)
        return store

    def _reader(self):
        from rosbags.highlevel import AnyReader

        return AnyReader([self.path], default_typestore=typestore())

    def _scan(self) -> Iterator[tuple[str, str, bytes]]:
        """``(topic, msgtype, cdr bytes)`` in file order, up to the first incomplete record."""
        from mcap.records import Channel, Message, Schema
        from mcap.stream_reader import StreamReader

        for file in self.mcap_files:
            schemas: dict[int, str] = {}
            channels: dict[int, tuple[str, str]] = {}
            with file.open("rb") as stream:
                try:
                    for record in StreamReader(stream, validate_crcs=True).records:
                        if isinstance(record, Schema):
                            schemas[record.id] = record.name
                            if record.encoding == "ros2msg" and record.data:
                                self.definitions.setdefault(record.name, record.data.decode())
                        elif isinstance(record, Channel):
                            channels[record.id] = (record.topic, schemas.get(record.schema_id, ""))
                        elif isinstance(record, Message) and record.channel_id in channels:
                            yield (*channels[record.channel_id], record.data)
                except Exception:  # (how a cut file ends: EOF, a bad length or CRC)
                    pass

def open_recording(path: str | Path) -> Recording:
    """Open ``path`` (a rosbag2 directory, or an MCAP file); a :class:`UsageError` names it if nothing is readable."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path}: no such recording")
    recording = Recording(path)
    try:
        with recording._reader() as reader:
            reader.connections  # noqa: B018  (opening reads the index)
        return recording
    except Exception as exc:  # (rosbags raises several types for damaged bags)
        if not recording.mcap_files:
            raise UsageError(f"{path}: not a readable recording ({exc})") from exc
        recording.damage = f"{exc}".strip() or type(exc).__name__
    if not recording.topics():
        raise UsageError(f"{path}: not a readable recording ({recording.damage}; no complete message in it)")
    return recording
