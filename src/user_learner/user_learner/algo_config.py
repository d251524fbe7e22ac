"""Schema of ``config/algorithms/<name>.yaml``: the algorithm by name, its own section, the policy.

```yaml
algorithm: rlpd            # a registered algorithm (user-rl info lists them)
rlpd: {batch_size: 256}    # that algorithm's section: the fields of its Config dataclass
policy: {kind: mlp}        # a PolicySpec without the task's fields; `options:` per policy kind
utd: 1.0                   # ...the learner settings below
```

A recipe may start from another (``extends: rlpd_cnn``, see :mod:`user_robot.config_loader`); when its
``algorithm`` differs, the base's algorithm section is the start of its own (``sac_cnn.yaml``: SAC on
``rlpd_cnn.yaml``'s pixel settings, its ``sac:`` section only what differs).

:func:`load_algorithm_config` checks every key against these schemas and raises
:class:`~user_robot.config_loader.ConfigError` naming the file, the dotted key and the choices.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

from user_learner.algorithms.base import ALGORITHMS
from user_policies.policies.base import POLICIES
from user_policies.policy_spec import TASK_FIELDS, PolicySpec
from user_policies.registry import UnknownPluginError
from user_robot.config_loader import (
    ConfigError,
    FieldError,
    check_ranges,
    config_dir,
    config_names,
    from_mapping,
    read_yaml,
)


@dataclasses.dataclass(frozen=True)
class AlgorithmConfig:
    """A learner recipe: the algorithm and its section (``params``), the policy, buffers, publishing.

    ``utd`` is the target number of algorithm updates per received transition (the learner
    throttles to it; 0 means update as fast as possible). ``max_policy_lag`` keeps a policy
    transition out of the online buffer when the weights that produced it are more than this many
    versions older than the newest (0 keeps all; a human's steps are always kept).
    """

    algorithm: str
    params: Any = None
    policy: PolicySpec = dataclasses.field(default_factory=PolicySpec)
    utd: float = 1.0
    min_buffer: int = 100
    buffer_capacity: int = 200_000
    demo_capacity: int = 50_000
    publish_every: int = 25
    publish_dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    publish_part_mb: float = 8.0  # a weights payload larger than this goes out in parts (qos.WEIGHTS_PARTS)
    checkpoint_every: int = 1000
    checkpoint_every_s: float = 60.0  # also checkpoint when this long has passed since the last one (0 = never)
    max_policy_lag: int = 0
    prefetch: bool = False  # draw each batch while the update before it runs (user_learner.prefetch)
    replay_images: Literal["auto", "host", "device"] = "auto"  # auto: on the learner's GPU when they fit

    def __post_init__(self) -> None:
        check_ranges(self, positive=("min_buffer", "publish_every", "checkpoint_every", "publish_part_mb"),
                     non_negative=("utd", "checkpoint_every_s", "max_policy_lag"))
        for name in ("buffer_capacity", "demo_capacity"):
            if getattr(self, name) < 2:
                raise FieldError(name, f"must be at least 2, got {getattr(self, name)}")


def parse_algorithm_config(data: dict[str, Any], file: str | Path = "<memory>") -> AlgorithmConfig:
    """Validate a parsed algorithm YAML (see the module docstring)."""
    name = data.get("algorithm")
    if not isinstance(name, str):
        raise ConfigError(file, "algorithm", f"required: one of {', '.join(ALGORITHMS.names())}")
    try:
        algorithm = ALGORITHMS.get(name)
    except UnknownPluginError as exc:
        raise ConfigError(file, "algorithm", str(exc)) from exc
    allowed = [f.name for f in dataclasses.fields(AlgorithmConfig) if f.name != "params"] + [name]
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ConfigError(file, unknown[0], f"unknown key (allowed: {', '.join(allowed)})")
    params = from_mapping(algorithm.Config, data.get(name) or {}, file, name)
    policy = data.get("policy") or {}
    if isinstance(policy, dict):
        for key in TASK_FIELDS:
            if key in policy:
                raise ConfigError(file, f"policy.{key}", "comes from the task config, not the algorithm")
    spec = from_mapping(PolicySpec, policy, file, "policy")
    try:
        options_schema = POLICIES.get(spec.kind).Options
    except UnknownPluginError as exc:
        raise ConfigError(file, "policy.kind", str(exc)) from exc
    options = from_mapping(options_schema, spec.options, file, "policy.options")
    spec = dataclasses.replace(spec, options=dataclasses.asdict(options))
    rest = {k: v for k, v in data.items() if k not in (name, "policy")}
    return dataclasses.replace(from_mapping(AlgorithmConfig, rest, file), params=params, policy=spec)


def load_algorithm_config(name: str) -> AlgorithmConfig:
    """``config/algorithms/<name>.yaml``, validated."""
    path = config_dir() / "algorithms" / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(config_names("algorithms")) or "none"
        raise ConfigError(path, "", f"no algorithm config named '{name}' (known: {known})")
    return parse_algorithm_config(read_yaml(path, rebase=_rename_algorithm_section), path)


def _rename_algorithm_section(base: dict[str, Any], data: dict[str, Any]) -> None:
    """``extends`` across algorithms: the base's algorithm section becomes the one ``data`` names."""
    old, new = base.get("algorithm"), data.get("algorithm")
    if isinstance(old, str) and isinstance(new, str) and old != new and old in base:
        base[new] = base.pop(old)
