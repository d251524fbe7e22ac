"""Typed, validated loading of the YAML files under ``config/`` (the one config source).

Every config section is a frozen dataclass. :func:`from_mapping` builds one from a YAML mapping
and raises :class:`ConfigError` naming the file and the dotted key on any unknown key, missing
key or wrong type, so a malformed config never starts a robot.

A config may start from another of its kind: ``extends: <name>`` (top level) reads ``<name>.yaml`` in
the same directory (which may extend another in turn) and lays this file's keys over it, mappings key
by key and anything else (lists too) replaced; every key but ``name``, which each file gives itself
(:func:`read_yaml`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")

CONFIG_DIR_ENV = "USER_CONFIG_DIR"
"""Environment variable that overrides where ``config/`` is looked up."""

EXTENDS = "extends"
"""Top-level key naming the config (same directory) a config starts from."""

NAME = "name"
"""Top-level key a config does not take from the one it extends."""


class UsageError(ValueError):
    """A user's mistake (a name, option, file or path): the CLI prints it as one line, never a traceback."""


class FieldError(ValueError):
    """A field's value out of its range, raised by a schema's ``__post_init__``: :func:`from_mapping` names the
    field's own key."""

    def __init__(self, field: str, problem: str) -> None:
        self.field, self.problem = field, problem
        super().__init__(f"{field} {problem}")


def check_ranges(config: Any, *, positive: tuple[str, ...] = (), non_negative: tuple[str, ...] = (),
                 finite: tuple[str, ...] = ()) -> None:
    """:class:`FieldError` for the first field of ``config`` (a number, or a tuple of numbers) in ``positive``
    that is not > 0, in ``non_negative`` that is not >= 0, or in ``finite`` that is NaN or infinite (which
    the first two refuse as well)."""
    for names, low in ((positive, "> 0"), (non_negative, ">= 0"), (finite, "")):
        for name in names:
            value = getattr(config, name)
            for v in value if isinstance(value, (tuple, list)) else (value,):
                if not math.isfinite(v) or (low and (v < 0 or (low == "> 0" and v == 0))):
                    raise FieldError(name, f"must be {low or 'a finite number'}, got {value!r}")


class ConfigError(UsageError):
    """A config file is missing, unreadable or does not match its schema."""

    def __init__(self, file: str | Path, key: str, problem: str) -> None:
        self.file = str(file)
        self.key = key
        self.problem = problem
        where = f"{self.file}: key '{key}'" if key else self.file
        super().__init__(f"{where}: {problem}")


def config_dir() -> Path:
    """Return the config directory: ``$USER_CONFIG_DIR``, the source checkout, or the installed share.

    A source checkout (``colcon build --symlink-install``) wins over the installed copy, so a config
    file added while developing is seen without rebuilding.
    """
    env = os.environ.get(CONFIG_DIR_ENV)
    if env:
        if not Path(env).is_dir():
            raise ConfigError(env, "", f"${CONFIG_DIR_ENV} is not a directory")
        return Path(env)
    for parent in Path(__file__).resolve().parents:
        if (parent / "config" / "tasks").is_dir() and (parent / "package.xml").is_file():
            return parent / "config"
    try:
        from ament_index_python.packages import get_package_share_directory

        share = Path(get_package_share_directory("user_bringup")) / "config"
        if share.is_dir():
            return share
    except (ImportError, LookupError, ValueError):
        pass
    raise ConfigError(CONFIG_DIR_ENV, "", "cannot find the config/ directory; set USER_CONFIG_DIR")


def config_names(kind: str) -> list[str]:
    """Names (file stems) of the configs of one kind, e.g. ``config_names("tasks")``."""
    return sorted(p.stem for p in (config_dir() / kind).glob("*.yaml"))


def write_config_copy(dest: str | Path, changes: dict[str, dict[str, Any]]) -> Path:
    """Copy the config directory to ``dest`` with some YAML files changed; returns ``dest``.

    ``changes`` maps a file (``"algorithms/sac"``) to the keys to set in it, nested or dotted
    (``{"sac": {"batch_size": 8}}`` or ``{"sac.batch_size": 8}``); a file not there yet is written from
    them; a file that ``extends`` another keeps doing so (the changes go over it). Point ``$USER_CONFIG_DIR``
    at the copy (every node and CLI command reads it).
    """
    import shutil

    dest = Path(dest)
    shutil.copytree(config_dir(), dest, dirs_exist_ok=True)
    for name, values in changes.items():
        path = dest / f"{name}.yaml"
        data = _read_mapping(path) if path.is_file() else {}
        _merge(data, values)
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    return dest


def _merge(data: dict[str, Any], values: dict[str, Any], dotted: bool = True) -> None:
    """Lay ``values`` over ``data`` in place, mappings key by key; with ``dotted``, ``"a.b"`` is key ``b`` of ``a``."""
    for key, value in values.items():
        *parents, leaf = str(key).split(".") if dotted else [key]
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        if isinstance(value, dict) and isinstance(node.get(leaf), dict):
            _merge(node[leaf], value, dotted)
        else:
            node[leaf] = value


def read_yaml(path: str | Path, rebase: Callable[[dict, dict], None] | None = None) -> dict[str, Any]:
    """Read a YAML mapping, with a :class:`ConfigError` naming the file on any failure; ``extends: <name>``
    resolved (see the module docstring). ``rebase(base, data)`` may adjust each base, in place, before this
    file's keys go over it (an algorithm config renames the base's algorithm section)."""
    return _read_extended(Path(path), rebase, ())


def _read_extended(path: Path, rebase: Callable[[dict, dict], None] | None, seen: tuple[Path, ...]) -> dict[str, Any]:
    data = _read_mapping(path)
    if EXTENDS not in data:
        return data
    name = data.pop(EXTENDS)
    if not isinstance(name, str) or not name or "/" in name:
        raise ConfigError(path, EXTENDS, f"expected the name of a config beside this one, got {name!r}")
    base_path = path.with_name(f"{name}.yaml")
    if base_path.resolve() in seen or base_path.resolve() == path.resolve():
        chain = " -> ".join(p.stem for p in (*seen, path.resolve(), base_path.resolve()))
        raise ConfigError(path, EXTENDS, f"configs extend each other in a circle: {chain}")
    if not base_path.is_file():
        known = ", ".join(sorted(p.stem for p in path.parent.glob("*.yaml") if p != path)) or "none"
        raise ConfigError(path, EXTENDS, f"no config named '{name}' beside this one (known: {known})")
    base = _read_extended(base_path, rebase, (*seen, path.resolve()))
    base.pop(NAME, None)  # (a task or robot is named by its own file)
    if rebase is not None:
        rebase(base, data)
    _merge(base, data, dotted=False)
    return base


def _read_mapping(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(path, "", "file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(path, "", f"invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(path, "", "top level must be a mapping")
    return data


def load(kind: str, name: str, schema: type[T]) -> T:
    """Load ``config/<kind>/<name>.yaml`` into the dataclass ``schema``."""
    path = config_dir() / kind / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(config_names(kind)) or "none"
        raise ConfigError(path, "", f"no {kind[:-1]} named '{name}' (known: {known})")
    return from_mapping(schema, read_yaml(path), file=path)


def from_mapping(schema: type[T], data: Any, file: str | Path = "<memory>", key: str = "") -> T:
    """Build dataclass ``schema`` from ``data``, validating every field recursively."""
    if not isinstance(data, dict):
        raise ConfigError(file, key, f"expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(schema)
    fields = {f.name: f for f in dataclasses.fields(schema)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(file, _join(key, unknown[0]), f"unknown key (allowed: {', '.join(fields)})")
    kwargs: dict[str, Any] = {}
    for name, field in fields.items():
        sub = _join(key, name)
        if name in data:
            kwargs[name] = _convert(hints[name], data[name], file, sub)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(file, sub, "required key is missing")
    try:
        return schema(**kwargs)
    except FieldError as exc:
        raise ConfigError(file, _join(key, exc.field), exc.problem) from exc
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(file, key, str(exc)) from exc


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _convert(hint: Any, value: Any, file: str | Path, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if dataclasses.is_dataclass(hint):
        return from_mapping(hint, value, file, key)  # type: ignore[arg-type]
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, file, key)
            except ConfigError as exc:
                errors.append(exc.problem)
        raise ConfigError(file, key, "; ".join(errors))
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(file, key, f"must be one of {list(args)}, got {value!r}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(file, key, f"expected a list, got {type(value).__name__}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(file, key, f"expected {len(args)} items, got {len(value)}")
            return tuple(_convert(a, v, file, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
        item = args[0] if args else Any
        items = [_convert(item, v, file, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(file, key, f"expected a mapping, got {type(value).__name__}")
        vt = args[1] if args else Any
        return {str(k): _convert(vt, v, file, f"{key}.{k}") for k, v in value.items()}
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(file, key, f"expected a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(file, key, f"expected an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(file, key, f"expected true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(file, key, f"expected a string, got {value!r}")
        return value
    raise ConfigError(file, key, f"unsupported schema type {hint!r}")
