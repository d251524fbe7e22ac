"""Algorithm YAMLs load through the config loader; mistakes name the file and key."""

from __future__ import annotations

import pytest

from user_learner.algo_config import AlgorithmConfig
from user_robot.config_loader import ConfigError, config_names, from_mapping, load


@pytest.mark.parametrize("name", ["sac", "rlpd", "rlpd_cnn"])
def test_shipped_algorithm_configs_load(name: str) -> None:
    cfg = load("algorithms", name, AlgorithmConfig)
    assert cfg.sac.num_critics == 10 and cfg.sac.num_target_critics == 2 and cfg.sac.init_temperature == 0.01
    assert cfg.demo_ratio == (0.5 if cfg.algorithm == "rlpd" else 0.0)
    spec = cfg.policy.make_spec(state_dim=12, action_dim=6, cameras=("wrist", "front"))
    assert spec.kind == cfg.policy.kind and len(spec.image_keys) == (2 if spec.kind == "cnn" else 0)


def test_every_algorithm_yaml_is_covered() -> None:
    assert {"sac", "rlpd", "rlpd_cnn"} <= set(config_names("algorithms"))


def test_typo_and_bad_values_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"key 'sac\.gama': unknown key"):
        from_mapping(AlgorithmConfig, {"algorithm": "sac", "sac": {"gama": 0.9}}, file="x.yaml")
    with pytest.raises(ConfigError, match=r"key 'algorithm': must be one of"):
        from_mapping(AlgorithmConfig, {"algorithm": "ppo"}, file="x.yaml")
    with pytest.raises(ConfigError, match="rlpd needs 0 < demo_ratio"):
        from_mapping(AlgorithmConfig, {"algorithm": "rlpd"}, file="x.yaml")
    with pytest.raises(ConfigError, match="num_target_critics"):
        from_mapping(AlgorithmConfig, {"algorithm": "sac", "sac": {"num_target_critics": 11}}, file="x.yaml")
