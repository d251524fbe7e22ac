"""Train and measure success classifiers from labelled frames of our recordings (pure; no ROS).

A frame is one Transition's observation (its camera images). Its label is, in order: the
``success_labels.json`` a person wrote with ``user-rl reward label`` for that episode, else the sim
cell's ground truth where the recording has it (``truth``), else the recording's own verdict on it
(``solved``: the pose region, a label given with the ``label`` service, SpaceMouse buttons or keys, a
classifier). So the recordings of a run rewarded by a classifier are training data for the next
classifier: in sim its false positives are negatives by themselves; on a real cell a person corrects
them with ``reward label``, which proposes the recorded verdicts. Whole episodes are held out; the threshold is the
lowest whose held-out precision reaches the target (so recall is as high as that precision allows).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from user_learner.bags.transition_bag import Episode
from user_policies.success_classifier import ClassifierSpec, SuccessClassifier

LABELS_FILE = "success_labels.json"
"""Per-recording labels (``{episode_id: [success step indices]}``), kept inside the bag directory."""


def labels_path(bag: str | Path) -> Path:
    """Where the labels of recording ``bag`` live (beside its files, or beside an MCAP file)."""
    bag = Path(bag)
    return bag / LABELS_FILE if bag.is_dir() else bag.with_name(f"{bag.stem}.{LABELS_FILE}")


def read_labels(bag: str | Path) -> dict[str, set[int]]:
    """The labels written for ``bag`` ({} when none); a :class:`ValueError` names a malformed file."""
    path = labels_path(bag)
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
        return {str(k): {int(s) for s in v} for k, v in data.items()}
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: expected {{episode_id: [step, ...]}} ({exc})") from exc


def write_labels(bag: str | Path, labels: Mapping[str, set[int]]) -> Path:
    """Write ``labels`` for ``bag`` (sorted, human-readable); returns the file."""
    path = labels_path(bag)
    path.write_text(json.dumps({k: sorted(v) for k, v in sorted(labels.items())}, indent=1) + "\n")
    return path


def success_steps(episode: Episode, labels: Mapping[str, set[int]] | None = None) -> set[int]:
    """Step indices of ``episode`` whose observation is a success frame (a person's labels win)."""
    if labels and episode.episode_id in labels:
        return set(labels[episode.episode_id])
    return {s.step for s in episode.steps if s.labelled_success}


@dataclasses.dataclass
class FrameSet:
    """Labelled frames: per camera ``(N, H, W, 3)`` uint8, labels ``(N,)`` and the episode of each."""

    images: dict[str, np.ndarray]
    labels: np.ndarray
    episodes: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, mask: np.ndarray) -> FrameSet:
        """The frames where ``mask`` holds."""
        return FrameSet({k: v[mask] for k, v in self.images.items()}, self.labels[mask], self.episodes[mask])

    @property
    def positives(self) -> int:
        """Number of success frames."""
        return int(self.labels.sum())


def labelled_frames(
    episodes: Sequence[Episode], cameras: Sequence[str], labels: Mapping[str, set[int]] | None = None
) -> FrameSet:
    """Every observation of ``episodes`` with its success label; a :class:`ValueError` names a camera missing
    from the recording."""
    images: dict[str, list[np.ndarray]] = {c: [] for c in cameras}
    ys: list[bool] = []
    which: list[int] = []
    for index, episode in enumerate(episodes):
        success = success_steps(episode, labels)
        for step in episode.steps:
            missing = [c for c in cameras if c not in step.images]
            if missing:
                have = ", ".join(step.images) or "none"
                raise ValueError(
                    f"episode {episode.episode_id} has no {', '.join(missing)} image (recorded cameras: {have}); "
                    f"record with images (user-rl collect --obs pixels, or the actor's record_images)"
                )
            for c in cameras:
                images[c].append(step.images[c])
            ys.append(step.step in success)
            which.append(index)
    if not ys:
        raise ValueError("no frames: the recordings hold no complete episode")
    return FrameSet({c: np.stack(v) for c, v in images.items()}, np.asarray(ys), np.asarray(which))


@dataclasses.dataclass(frozen=True)
class Confusion:
    """Frame counts at one threshold."""

    tp: int
    fp: int
    tn: int
    fn: int

    @classmethod
    def of(cls, probs: np.ndarray, labels: np.ndarray, threshold: float) -> Confusion:
        """Counts of ``probs >= threshold`` against ``labels``."""
        pred = np.asarray(probs) >= threshold
        labels = np.asarray(labels, dtype=bool)
        return cls(int((pred & labels).sum()), int((pred & ~labels).sum()), int((~pred & ~labels).sum()),
                   int((~pred & labels).sum()))

    @property
    def precision(self) -> float:
        """TP / (TP + FP); 1 when nothing is predicted positive."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        """TP / (TP + FN); 1 when there is no positive."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    def measured(self) -> dict[str, float | None]:
        """Precision and recall where they are defined, else None (nothing predicted success; no success frame)."""
        return {"precision": self.precision if self.tp + self.fp else None,
                "recall": self.recall if self.tp + self.fn else None}

    def line(self) -> str:
        """``precision=... recall=... tp=... fp=... tn=... fn=...``; ``-`` for a figure without frames to count
        (and a note when there is no success frame at all)."""
        shown = {k: "-" if v is None else f"{v:.3f}" for k, v in self.measured().items()}
        note = "" if self.tp + self.fn else " (no success frame)"
        return (f"precision={shown['precision']} recall={shown['recall']} "
                f"tp={self.tp} fp={self.fp} tn={self.tn} fn={self.fn}{note}")


def choose_threshold(probs: np.ndarray, labels: np.ndarray, target_precision: float) -> float:
    """The lowest threshold whose precision reaches ``target_precision`` (most recall at that precision);
    when none does, the one of best precision, ties broken by recall."""
    probs = np.asarray(probs, dtype=np.float64)
    best, best_key = 0.5, (-1.0, -1.0)
    for t in np.unique(probs):  # ascending: the first that reaches the target has the most recall
        c = Confusion.of(probs, labels, float(t))
        if c.tp and c.precision >= target_precision:
            return float(t)
        key = (c.precision if c.tp else 0.0, c.recall)
        if key > best_key:
            best, best_key = float(t), key
    return best


def augment(images: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """DrQ-style random shift (±``pad`` px, edge padded) and ±10 % brightness on a uint8 ``(B, H, W, 3)`` batch."""
    b, h, w, _ = images.shape
    x = images.permute(0, 3, 1, 2).float()
    x = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    rows = (dy[:, None] + torch.arange(h)[None]).clamp(max=h + 2 * pad - 1)
    cols = (dx[:, None] + torch.arange(w)[None]).clamp(max=w + 2 * pad - 1)
    x = x[torch.arange(b)[:, None, None, None], torch.arange(3)[None, :, None, None],
          rows[:, None, :, None], cols[:, None, None, :]]
    x = x * (0.9 + 0.2 * torch.rand(b, 1, 1, 1, generator=generator))
    return x.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1)


def predict(model: SuccessClassifier, frames: FrameSet, batch: int = 256) -> np.ndarray:
    """P(success) of every frame."""
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(frames), batch):
            images = {c: torch.from_numpy(frames.images[c][i:i + batch]) for c in model.spec.cameras}
            out.append(torch.sigmoid(model(images)).numpy())
    return np.concatenate(out) if out else np.zeros(0)


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """The trained model and its held-out figures."""

    model: SuccessClassifier
    threshold: float
    held_out: Confusion | None  # at the chosen threshold (None without held-out episodes)
    train_loss: float


def train_classifier(
    spec: ClassifierSpec,
    train: FrameSet,
    val: FrameSet | None,
    *,
    epochs: int = 20,
    batch: int = 64,
    lr: float = 3e-4,
    target_precision: float = 0.97,
    seed: int = 0,
    advance: Callable[[], None] = lambda: None,
) -> TrainResult:
    """Class-balanced binary cross-entropy with augmentation; keeps the epoch of lowest held-out loss and
    picks the threshold on the held-out frames (on the training frames when there are none)."""
    if not train.positives or train.positives == len(train):
        raise ValueError(f"training frames need both classes ({train.positives} success of {len(train)})")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = SuccessClassifier(spec)
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=1e-4)
    pos_weight = torch.tensor((len(train) - train.positives) / train.positives)
    labels = torch.from_numpy(train.labels.astype(np.float32))
    best_state, best_loss, loss_value = None, float("inf"), float("nan")
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(train), generator=gen)
        losses = []
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            images = {c: augment(torch.from_numpy(train.images[c][idx.numpy()]), gen) for c in spec.cameras}
            loss = F.binary_cross_entropy_with_logits(model(images), labels[idx], pos_weight=pos_weight)
            optim.zero_grad()
            loss.backward()
            optim.step()
            losses.append(loss.item())
        loss_value = float(np.mean(losses))
        held = val if val is not None and len(val) else None
        score = _balanced_loss(model, held) if held is not None else loss_value
        if score < best_loss:
            best_loss, best_state = score, {k: v.clone() for k, v in model.state_dict().items()}
        advance()
    model.load_state_dict(best_state)
    pick = val if val is not None and len(val) and val.positives else train
    probs = predict(model, pick)
    threshold = choose_threshold(probs, pick.labels, target_precision)
    held_out = Confusion.of(predict(model, val), val.labels, threshold) if val is not None and len(val) else None
    model.spec = dataclasses.replace(spec, threshold=threshold)
    return TrainResult(model, threshold, held_out, loss_value)


def _balanced_loss(model: SuccessClassifier, frames: FrameSet) -> float:
    """Mean of the per-class cross-entropies (a class that is absent counts 0)."""
    probs = torch.from_numpy(predict(model, frames)).clamp(1e-6, 1 - 1e-6)
    y = torch.from_numpy(frames.labels)
    parts = [(-torch.log(probs[y])).mean(), (-torch.log(1 - probs[~y])).mean()]
    return float(sum(p for p in parts if not torch.isnan(p)))
