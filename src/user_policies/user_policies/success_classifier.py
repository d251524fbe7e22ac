"""A learned reward: a binary success classifier on the cameras (as HIL-SERL, LeRobot and RLinf use).

Each camera goes through its own image encoder (a small trained conv net, or the ResNet-10
trunk, frozen or trained); the features are concatenated and a small head gives one logit. A
model is a directory with ``classifier.safetensors`` (the weights) and ``classifier.json`` (a
:class:`ClassifierSpec`: task, cameras, image size, encoder, the threshold chosen on held-out
episodes and the held-out metrics). :func:`check_classifier` refuses a model made for another task,
other cameras or another image size, naming what differs.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from user_policies.models.resnet10 import ResNet10

WEIGHTS_FILE = "classifier.safetensors"
SPEC_FILE = "classifier.json"
Encoder = Literal["conv", "resnet10"]


@dataclasses.dataclass(frozen=True)
class ClassifierSpec:
    """What a classifier was trained on and how to threshold it."""

    task: str
    cameras: tuple[str, ...]
    image_size: tuple[int, int]  # height, width of the camera crops it reads
    encoder: Encoder = "conv"
    freeze_encoder: bool = False  # resnet10 only: train the head on fixed trunk features
    width: int = 32  # conv channels of the first layer
    threshold: float = 0.5  # probability at or above which a frame counts as success
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)  # held-out figures, for the record

    def to_json(self) -> str:
        """The JSON written beside the weights."""
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str) -> ClassifierSpec:
        """Parse ``classifier.json``; a :class:`ValueError` names ``where`` and the bad key."""
        data = json.loads(text)
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}")
        for key in ("task", "cameras", "image_size"):
            if key not in data:
                raise ValueError(f"{where}: required key {key!r} is missing")
        data["cameras"] = tuple(data["cameras"])
        data["image_size"] = tuple(int(v) for v in data["image_size"])
        if data.get("encoder", "conv") not in ("conv", "resnet10"):
            raise ValueError(f"{where}: encoder must be conv or resnet10, got {data['encoder']!r}")
        return cls(**data)


def _conv_encoder(width: int) -> nn.Module:
    layers: list[nn.Module] = []
    channels = 3
    for out in (width, 2 * width, 2 * width, 4 * width):
        layers += [nn.Conv2d(channels, out, 3, stride=2, padding=1), nn.GroupNorm(4, out), nn.ReLU()]
        channels = out
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d((4, 4)), nn.Flatten())


class SuccessClassifier(nn.Module):
    """Per-camera encoders, concatenated features, an MLP head → one success logit per sample."""

    def __init__(self, spec: ClassifierSpec) -> None:
        super().__init__()
        self.spec = spec
        encoders = {}
        for name in spec.cameras:
            if spec.encoder == "resnet10":
                encoders[name] = nn.Sequential(ResNet10(), nn.AdaptiveAvgPool2d((2, 2)), nn.Flatten())
            else:
                encoders[name] = _conv_encoder(spec.width)
        self.encoders = nn.ModuleDict(encoders)
        if spec.freeze_encoder:
            self.encoders.requires_grad_(False)
        h, w = spec.image_size
        with torch.no_grad():
            probe = {n: torch.zeros(1, h, w, 3, dtype=torch.uint8) for n in spec.cameras}
            features = self.features(probe).shape[-1]
        self.head = nn.Sequential(nn.Linear(features, 256), nn.ReLU(), nn.Dropout(0.1), nn.Linear(256, 1))

    def features(self, images: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Concatenated per-camera features of uint8 ``(B, H, W, 3)`` images."""
        out = []
        for name, encoder in self.encoders.items():
            x = images[name].permute(0, 3, 1, 2).float() / 255.0 - 0.5
            out.append(encoder(x))
        return torch.cat(out, dim=-1)

    def forward(self, images: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Success logits ``(B,)``."""
        return self.head(self.features(images)).squeeze(-1)

    @torch.no_grad()
    def probability(self, images: Mapping[str, np.ndarray]) -> float:
        """P(success) of one frame set (camera name → uint8 HxWx3)."""
        self.eval()
        batch = {n: torch.from_numpy(np.ascontiguousarray(images[n]))[None] for n in self.spec.cameras}
        return float(torch.sigmoid(self(batch))[0])


def save_classifier(model: SuccessClassifier, out: str | Path) -> Path:
    """Write ``classifier.safetensors`` + ``classifier.json`` into ``out``; returns it."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / WEIGHTS_FILE))
    (out / SPEC_FILE).write_text(model.spec.to_json() + "\n")
    return out


def load_classifier(path: str | Path) -> SuccessClassifier:
    """Load a classifier directory (or its JSON file); a :class:`ValueError` names what is wrong."""
    path = Path(path).expanduser()
    root = path.parent if path.is_file() else path
    spec_file, weights_file = root / SPEC_FILE, root / WEIGHTS_FILE
    for file in (spec_file, weights_file):
        if not file.is_file():
            raise ValueError(f"{file}: no such file (a classifier is a directory written by `user-rl reward train`)")
    spec = ClassifierSpec.from_json(spec_file.read_text(), str(spec_file))
    model = SuccessClassifier(spec)
    try:
        model.load_state_dict(load_file(str(weights_file)))
    except (RuntimeError, OSError) as exc:
        raise ValueError(f"{weights_file}: does not match {spec_file} ({exc})") from exc
    model.eval()
    return model


def check_classifier(spec: ClassifierSpec, task: str, cameras: Sequence[str], image_size: Sequence[int]) -> None:
    """Refuse a model made for another task, cameras this cell does not observe, or another image size."""
    problems = []
    if spec.task != task:
        problems.append(f"it was trained for task {spec.task!r}, this is {task!r}")
    missing = [c for c in spec.cameras if c not in cameras]
    if missing:
        observed = ", ".join(cameras)
        problems.append(f"it reads camera(s) {', '.join(missing)}, which the task does not observe ({observed})")
    if tuple(spec.image_size) != tuple(image_size):
        problems.append(
            f"it reads {spec.image_size[0]}x{spec.image_size[1]} images, the task gives "
            f"{image_size[0]}x{image_size[1]} (observation.image_size)"
        )
    if problems:
        raise ValueError("success classifier refused: " + "; ".join(problems))
