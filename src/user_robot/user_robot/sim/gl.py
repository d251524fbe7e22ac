"""Choose MuJoCo's offscreen OpenGL backend: EGL with a GPU, OSMesa on CPU, or a clear error.

MuJoCo reads ``MUJOCO_GL`` once, when ``mujoco`` is imported, so :func:`choose_gl` runs when
``user_robot.sim`` is imported. A value already set by the user is kept.
"""

from __future__ import annotations

import ctypes.util
import os
from pathlib import Path

GL_ENV = "MUJOCO_GL"


def _has_gpu() -> bool:
    return Path("/dev/nvidia0").exists() or Path("/dev/dri/renderD128").exists()


def _has_lib(name: str) -> bool:
    return ctypes.util.find_library(name) is not None


def choose_gl() -> str:
    """Set ``MUJOCO_GL`` (and PyOpenGL's platform) if unset: ``egl`` with a GPU, else ``osmesa``.

    Returns the backend in use; ``"none"`` when neither library is found (rendering then raises
    :class:`RenderingUnavailableError` from :func:`make_renderer`, state-only simulation still works).
    """
    chosen = os.environ.get(GL_ENV, "").strip().lower()
    if not chosen:
        if _has_gpu() and _has_lib("EGL"):
            chosen = "egl"
        elif _has_lib("OSMesa"):
            chosen = "osmesa"
        else:
            return "none"
        os.environ[GL_ENV] = chosen
    if chosen in ("egl", "osmesa"):
        os.environ.setdefault("PYOPENGL_PLATFORM", chosen)
    return chosen


class RenderingUnavailableError(RuntimeError):
    """No offscreen OpenGL backend works on this machine."""


def make_renderer(model: object, height: int, width: int) -> object:
    """A ``mujoco.Renderer``, or :class:`RenderingUnavailableError` saying how to fix the machine."""
    import mujoco

    backend = os.environ.get(GL_ENV, "none")
    try:
        return mujoco.Renderer(model, height, width)
    except Exception as exc:  # mujoco raises several types (ImportError, RuntimeError, GLError) here
        raise RenderingUnavailableError(
            f"MuJoCo offscreen rendering failed with MUJOCO_GL={backend}: {exc}. On a CPU-only machine install "
            "OSMesa (apt-get install libosmesa6) and set MUJOCO_GL=osmesa; with an NVIDIA GPU use MUJOCO_GL=egl "
            "(libEGL). Or run state-only (cameras disabled)."
        ) from exc
