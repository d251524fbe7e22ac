"""ROS stamps as integer nanoseconds and back: exact, so a sim clock never lands a nanosecond short of a tick."""

from __future__ import annotations

from builtin_interfaces.msg import Time

from user_robot.bridge_core import NS_PER_S

__all__ = ["NS_PER_S", "stamp_from_ns", "stamp_ns"]


def stamp_ns(stamp: Time) -> int:
    """A stamp in integer nanoseconds."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def stamp_from_ns(ns: int) -> Time:
    """The stamp of ``ns`` nanoseconds."""
    sec, nanosec = divmod(int(ns), NS_PER_S)
    return Time(sec=sec, nanosec=nanosec)
