"""A ``rosbags`` typestore: ROS 2 Kilted's standard messages plus our ``user_interfaces`` messages.

The ``.msg`` files are read from the installed ``user_interfaces`` share directory (ament index),
falling back to the source tree, so bags are read and written with the exact definitions the
nodes use.
"""

from __future__ import annotations

import functools
from pathlib import Path

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

INTERFACES = "user_interfaces"
STORE = Stores.ROS2_KILTED


def interface_msg_dir() -> Path:
    """Directory of ``user_interfaces``' ``.msg`` files: the installed share, else the source tree."""
    try:
        from ament_index_python.packages import get_package_share_directory

        share = Path(get_package_share_directory(INTERFACES)) / "msg"
        if share.is_dir():
            return share
    except (ImportError, LookupError, ValueError):
        pass
    for parent in Path(__file__).resolve().parents:
        src = parent / INTERFACES / "msg"
        if src.is_dir():
            return src
    raise FileNotFoundError(f"cannot find the {INTERFACES} .msg files (source the overlay: source env.sh)")


@functools.cache
def typestore() -> Typestore:
    """The shared typestore (Kilted + ``user_interfaces/msg/*``); built once per process."""
    store = get_typestore(STORE)
    types: dict = {}
    for path in sorted(interface_msg_dir().glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"{INTERFACES}/msg/{path.stem}"))
    store.register(types)
    return store
