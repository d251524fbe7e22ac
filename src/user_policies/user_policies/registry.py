"""Plug-in registries: classes registered by name (algorithms) or kind (policies).

A :class:`Registry` knows the classes that modules register with its :meth:`Registry.register`
decorator. It fills itself lazily, on the first lookup, by importing

* every module of its built-in package (``user_learner.algorithms``, ``user_policies.policies``),
* the modules named in ``$USER_PLUGINS`` (comma-separated importable module names), and
* the modules of the Python entry points in group ``user_rl.<name>`` of installed packages,

so a new algorithm or policy kind is one module (plus its YAML), with no list to edit anywhere.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import pkgutil
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from user_robot.config_loader import UsageError

PLUGINS_ENV = "USER_PLUGINS"
"""Environment variable naming extra plug-in modules to import (comma-separated)."""

T = TypeVar("T")


class UnknownPluginError(UsageError):
    """A name that no class is registered under; the message lists the registered ones."""


class Registry(Generic[T]):
    """Name → class for one kind of plug-in (see the module docstring)."""

    def __init__(self, name: str, builtin_package: str, item: str) -> None:
        self.name = name
        self.item = item
        self.builtin_package = builtin_package
        self._classes: dict[str, type[T]] = {}
        self._loaded = False
        self._loading = threading.RLock()

    def register(self, key: str) -> Callable[[type[T]], type[T]]:
        """Class decorator: register the class under ``key`` (a second class for one key is an error)."""

        def decorate(cls: type[T]) -> type[T]:
            known = self._classes.get(key)
            if known is None:
                self._classes[key] = cls
            elif known.__qualname__ != cls.__qualname__:  # (the same module imported twice keeps its first class)
                raise ValueError(f"{self.item} {key!r} is registered twice: {known.__module__}, {cls.__module__}")
            return cls

        return decorate

    def _load(self) -> None:
        with self._loading:
            if self._loaded:
                return
            self._loaded = True
            package = importlib.import_module(self.builtin_package)
            for info in pkgutil.iter_modules(package.__path__):
                importlib.import_module(f"{self.builtin_package}.{info.name}")
            for module in filter(None, (m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(","))):
                importlib.import_module(module)
            for entry in importlib.metadata.entry_points(group=f"user_rl.{self.name}"):
                entry.load()

    def names(self) -> tuple[str, ...]:
        """Registered names, sorted."""
        self._load()
        return tuple(sorted(self._classes))

    def get(self, key: str) -> type[T]:
        """The class registered as ``key``; :class:`UnknownPluginError` lists the choices otherwise."""
        self._load()
        if key not in self._classes:
            raise UnknownPluginError(f"unknown {self.item} {key!r} (registered: {', '.join(self.names())})")
        return self._classes[key]
