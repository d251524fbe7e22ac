"""Learner checkpoints: one directory per save, written atomically, resumed exactly; buffers incrementally.

Layout of ``<root>/step_<NNNNNNNNN>/``: ``agent.safetensors`` (the algorithm's ``state_dict``: networks,
optimiser states, RNG, update count), ``buffer.<name>.rows.safetensors`` per replay buffer (everything
but its observations), ``meta.json`` (step, algorithm and its config, spec, numpy RNG state, the
observation files each buffer needs, your metadata). A save is written to a hidden temporary
directory and renamed into place, then ``<root>/latest`` (a text file naming the directory) is
replaced atomically; a crash mid-save leaves the previous checkpoint intact.

Observations, which are nearly all of a pixel buffer (gigabytes at the recipe's capacity), are
written once: each save adds one file under ``<root>/buffers/<name>/`` holding the observations
written since the previous save of that buffer, and a checkpoint lists the files that together hold
its buffer's current rows. Files no kept checkpoint lists are deleted.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from user_learner.algorithms.base import Algorithm
from user_learner.replay_buffer import ReplayBuffer
from user_policies.policy_spec import PolicySpec

LATEST = "latest"
BUFFERS = "buffers"
FORMAT_VERSION = 3


def save_checkpoint(
    root: str | Path,
    agent: Algorithm,
    buffers: Mapping[str, ReplayBuffer] | None = None,
    *,
    rng: np.random.Generator | None = None,
    metadata: Mapping[str, Any] | None = None,
    keep: int = 3,
) -> Path:
    """Save ``agent`` and ``buffers`` under ``root`` as ``step_<agent.num_updates>``; keep the newest ``keep``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{agent.num_updates:09d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=root))
    try:
        save_file({k: v.cpu() for k, v in agent.state_dict().items()}, str(tmp / "agent.safetensors"))
        saved = {name: _save_buffer(root, tmp, name, buffer) for name, buffer in (buffers or {}).items()}
        meta = {
            "format": FORMAT_VERSION,
            "step": agent.num_updates,
            "spec": agent.spec.to_dict(),
            "algorithm": type(agent).__name__,
            "algorithm_config": dataclasses.asdict(agent.cfg),
            "buffers": saved,
            "numpy_rng": rng.bit_generator.state if rng is not None else None,
            "metadata": dict(metadata or {}),
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    pointer = root / f".{LATEST}.tmp"
    pointer.write_text(final.name)
    os.replace(pointer, root / LATEST)
    for name, buffer in (buffers or {}).items():
        buffer.persisted = {"root": str(root.resolve()), **saved[name]}
    for old in sorted(root.glob("step_*"))[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    _drop_unlisted_observations(root)
    return final


def _save_buffer(root: Path, checkpoint: Path, name: str, buffer: ReplayBuffer) -> dict[str, Any]:
    """Write ``buffer``'s rows into ``checkpoint`` and its new observations under ``root``; its meta record."""
    buffer.save_rows(checkpoint / f"buffer.{name}.rows.safetensors")
    persisted = buffer.persisted if buffer.persisted and buffer.persisted["root"] == str(root.resolve()) else None
    token = persisted["token"] if persisted else uuid.uuid4().hex[:12]
    files = list(persisted["files"]) if persisted else []
    first = max(persisted["rows_written"] if persisted else 0, buffer.rows_written - buffer.capacity)
    if buffer.rows_written > first:
        directory = root / BUFFERS / name
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"obs_{token}_{first:012d}_{buffer.rows_written:012d}.safetensors"
        partial = directory / f".{path.name}.tmp"
        buffer.save_observations(partial, first)
        os.replace(partial, path)
        files.append([first, buffer.rows_written, path.name])
    oldest = buffer.rows_written - buffer.capacity
    files = [f for f in files if f[1] > oldest]  # files whose every row has been overwritten since are not needed
    return {"token": token, "rows_written": buffer.rows_written, "files": files}


def _drop_unlisted_observations(root: Path) -> None:
    """Delete observation files (and leftovers of interrupted saves) that no kept checkpoint lists."""
    listed = {
        (name, f[2])
        for meta_path in root.glob("step_*/meta.json")
        for name, record in json.loads(meta_path.read_text())["buffers"].items()
        for f in record["files"]
    }
    for path in root.glob(f"{BUFFERS}/*/*"):
        if (path.parent.name, path.name) not in listed:
            path.unlink(missing_ok=True)


def latest_checkpoint(root: str | Path) -> Path | None:
    """The directory ``<root>/latest`` names, or None when there is no checkpoint yet."""
    pointer = Path(root) / LATEST
    if not pointer.is_file():
        return None
    path = Path(root) / pointer.read_text().strip()
    return path if (path / "meta.json").is_file() else None


def resolve_checkpoint(path: str | Path) -> Path:
    """The checkpoint directory ``path`` names: itself, the ``latest`` under it, or under its ``checkpoints/``."""
    path = Path(path)
    if (path / "meta.json").is_file():
        return path
    for root in (path, path / "checkpoints"):
        resolved = latest_checkpoint(root)
        if resolved is not None:
            return resolved
    raise FileNotFoundError(f"no checkpoint in {path} (a checkpoint, a checkpoints/ root or a learner log dir)")


def read_meta(path: str | Path) -> dict[str, Any]:
    """``meta.json`` of the checkpoint ``path`` names (see :func:`resolve_checkpoint`)."""
    return json.loads((resolve_checkpoint(path) / "meta.json").read_text())


def load_checkpoint(
    path: str | Path,
    agent: Algorithm,
    *,
    rng: np.random.Generator | None = None,
    buffers: bool = True,
    image_device: str | torch.device | None = None,
) -> tuple[dict[str, ReplayBuffer], dict[str, Any]]:
    """Restore ``agent`` (and ``rng``'s state) from a checkpoint directory or a root holding ``latest``.

    Returns the saved buffers by name (none with ``buffers=False``; their images on ``image_device``,
    None: host memory) and the ``metadata`` given to :func:`save_checkpoint`.
    """
    path = resolve_checkpoint(path)
    meta = json.loads((path / "meta.json").read_text())
    if PolicySpec.from_dict(meta["spec"]) != agent.spec:  # (a field added since then takes its default)
        raise ValueError(f"checkpoint {path.name} is for another policy spec: {meta['spec']}")
    agent.load_state_dict(load_file(str(path / "agent.safetensors"), device=str(agent.device)))
    if rng is not None and meta["numpy_rng"] is not None:
        rng.bit_generator.state = meta["numpy_rng"]
    if not buffers:
        return {}, meta["metadata"]
    if meta.get("format") != FORMAT_VERSION:
        raise ValueError(f"checkpoint {path} holds buffers in format {meta.get('format')} (this USER reads "
                         f"{FORMAT_VERSION}): load it without buffers, or start a new run")
    loaded = {}
    for name, record in meta["buffers"].items():
        files = [path.parent / BUFFERS / name / f[2] for f in record["files"]]
        loaded[name] = ReplayBuffer.load(path / f"buffer.{name}.rows.safetensors", files, image_device)
        loaded[name].persisted = {"root": str(path.parent.resolve()), **record}
    return loaded, meta["metadata"]
