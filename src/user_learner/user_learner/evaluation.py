"""Evaluate a checkpoint: its policy as weights for the actors, and the success rate with a confidence interval.

``user-rl eval`` (:mod:`user_learner.cli.eval`) runs the robot side only (no learner), publishes the
checkpoint's policy on the weights topic from the CLI process and asks the actors for ``eval``
episodes: deterministic actions, no exploration, no transitions published.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from pathlib import Path

from user_learner.algorithms.base import ALGORITHMS, Algorithm
from user_learner.checkpoint import load_checkpoint, read_meta, resolve_checkpoint
from user_policies.observation import policy_sizes
from user_policies.policy_spec import SPEC_METADATA_KEY, PolicySpec
from user_policies.weights_codec import WeightsPacket, encode_weights
from user_robot.config_loader import UsageError, from_mapping
from user_robot.task_config import TaskConfig


def load_checkpoint_algorithm(path: str | Path, device: str = "cpu") -> Algorithm:
    """The algorithm saved in the checkpoint ``path`` names, with its networks restored (no buffers)."""
    try:
        checkpoint = resolve_checkpoint(path)
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from exc
    meta = read_meta(checkpoint)
    classes = [ALGORITHMS.get(name) for name in ALGORITHMS.names()]
    matching = [cls for cls in classes if cls.__name__ == meta["algorithm"]]
    if not matching:
        raise UsageError(f"{checkpoint}: algorithm {meta['algorithm']} is not registered here")
    cls = matching[0]
    params = from_mapping(cls.Config, meta["algorithm_config"], checkpoint / "meta.json", "algorithm_config")
    algorithm = cls(params, PolicySpec.from_dict(meta["spec"]), device)
    load_checkpoint(checkpoint, algorithm, buffers=False)
    return algorithm


def checkpoint_tasks(path: str | Path) -> tuple[str, ...]:
    """The tasks a multi-task checkpoint's policy tells apart (empty: a one-task policy)."""
    try:
        return tuple(read_meta(path)["metadata"].get("tasks", ()))
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from exc


def checkpoint_obs(path: str | Path) -> str:
    """What a checkpoint's policy observes: ``pixels`` when it has cameras, else ``state``."""
    try:
        return "pixels" if read_meta(path)["spec"].get("cameras") else "state"
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from exc


def check_policy_fits(path: str | Path, task: TaskConfig) -> None:
    """``UsageError`` unless the checkpoint's policy was trained for ``task`` (with its task identity, if
    multi-task): the task it names, where it names one, and the state and action sizes."""
    try:
        meta = read_meta(path)
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from exc
    trained_for = meta["metadata"].get("task", "")
    if trained_for and not meta["metadata"].get("tasks") and trained_for != task.name:
        raise UsageError(f"{path}: a policy of task {trained_for}, not of {task.name}")
    spec, want = meta["spec"], policy_sizes(task)
    if (spec["state_dim"], spec["action_dim"]) != want:
        raise UsageError(f"{path}: its policy takes state {spec['state_dim']} / action {spec['action_dim']}, task "
                         f"{task.name} has state {want[0]} / action {want[1]}: a checkpoint of another task?")


def checkpoint_weights(path: str | Path, embodiments: Sequence[str]) -> WeightsPacket:
    """The checkpoint's policy as a weights packet of its own learner identity (``eval-...``)."""
    algorithm = load_checkpoint_algorithm(path)
    return encode_weights(
        algorithm.publish_state(),
        policy_id=f"eval/{algorithm.spec.kind}",
        version=1,
        embodiments=embodiments,
        metadata={SPEC_METADATA_KEY: algorithm.spec.to_json(), "updates": algorithm.num_updates},
        learner_id=f"eval-{uuid.uuid4().hex[:12]}",
    )


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a success rate (95% for ``z = 1.96``); (0, 1) without trials."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def eval_line(successes: int, n: int) -> str:
    """``eval success=k/N (p%) 95% CI [lo%, hi%]``."""
    lo, hi = wilson_interval(successes, n)
    rate = 100 * successes / n if n else 0.0
    return f"eval success={successes}/{n} ({rate:.1f}%) 95% CI [{100 * lo:.1f}%, {100 * hi:.1f}%]"
