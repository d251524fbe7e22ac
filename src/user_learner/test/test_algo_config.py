"""Algorithm YAMLs: the algorithm by name, its own section, the policy; mistakes name the file, key and choices."""

from __future__ import annotations

import pytest

from user_learner.algo_config import load_algorithm_config, parse_algorithm_config
from user_learner.algorithms.base import algorithm_names
from user_learner.learner_core import load_algorithm
from user_robot.config_loader import ConfigError, config_names


@pytest.mark.parametrize("name", config_names("algorithms"))
def test_shipped_algorithm_configs_load(name: str) -> None:
    cfg = load_algorithm_config(name)
    assert cfg.algorithm in algorithm_names()
    assert cfg.params.demo_ratio == (0.0 if cfg.algorithm == "sac" else 0.5)
    if cfg.algorithm == "hg_dagger":  # imitation: no critics
        assert cfg.params.lr > 0 and cfg.min_buffer == 1
        return
    assert cfg.params.num_critics == 10 and cfg.params.num_target_critics == 2 and cfg.params.init_temperature == 0.01
    spec = cfg.policy.for_task(12, 6, ("wrist", "front") if name.endswith("_cnn") else ())
    assert len(spec.image_keys) == (2 if name.endswith("_cnn") else 0)


def test_every_registered_algorithm_has_a_recipe_and_pixels_pick_the_cnn_variant() -> None:
    builtin = {"sac", "rlpd", "sac_flow", "hg_dagger"}  # (other test modules may register more in this process)
    assert builtin <= set(algorithm_names()) and builtin <= set(config_names("algorithms"))
    assert load_algorithm("rlpd", "pixels").policy.kind == "cnn"
    sac = load_algorithm("sac", "pixels")  # sac_cnn.yaml: the pixel recipe, online data only
    assert sac.policy.kind == "cnn" and sac.params.cache_backbone and sac.params.demo_ratio == 0.0
    assert load_algorithm("hg_dagger", "pixels").policy.kind == "cnn"  # no hg_dagger_cnn.yaml: the Gaussian kind adapts
    assert load_algorithm("sac_flow", "pixels").policy.options["d_model"] == 256  # sac_flow_cnn.yaml
    flow = load_algorithm("rlpd", "state", policy="flow")
    assert flow.policy.kind == "flow" and flow.policy.options["flow_steps"] == 4  # the kind's defaults


def test_typo_and_bad_values_name_the_key_and_choices() -> None:
    with pytest.raises(ConfigError, match=r"x\.yaml: key 'sac\.gama': unknown key"):
        parse_algorithm_config({"algorithm": "sac", "sac": {"gama": 0.9}}, file="x.yaml")
    with pytest.raises(ConfigError, match=r"key 'algorithm': unknown algorithm 'ppo' \(registered: .*rlpd.*sac_flow"):
        parse_algorithm_config({"algorithm": "ppo"}, file="x.yaml")
    with pytest.raises(ConfigError, match=r"key 'sac': unknown key \(allowed: .*rlpd"):
        parse_algorithm_config({"algorithm": "rlpd", "sac": {}}, file="x.yaml")
    with pytest.raises(ConfigError, match="rlpd needs 0 < demo_ratio"):
        parse_algorithm_config({"algorithm": "rlpd", "rlpd": {"demo_ratio": 0.0}}, file="x.yaml")
    with pytest.raises(ConfigError, match="num_target_critics"):
        parse_algorithm_config({"algorithm": "sac", "sac": {"num_target_critics": 11}}, file="x.yaml")
    with pytest.raises(ConfigError, match=r"key 'policy\.kind': unknown policy kind 'rnn' \(registered: cnn, .*mlp"):
        parse_algorithm_config({"algorithm": "sac", "policy": {"kind": "rnn"}}, file="x.yaml")
    with pytest.raises(ConfigError, match=r"key 'policy\.options\.d_modle': unknown key"):
        parse_algorithm_config({"algorithm": "sac_flow", "policy": {"kind": "flow", "options": {"d_modle": 8}}})
    with pytest.raises(ConfigError, match=r"key 'policy\.options\.flow_steps': expected an integer"):
        parse_algorithm_config({"algorithm": "sac_flow", "policy": {"kind": "flow", "options": {"flow_steps": "4"}}})
    with pytest.raises(ConfigError, match=r"key 'policy\.state_dim': comes from the task"):
        parse_algorithm_config({"algorithm": "sac", "policy": {"state_dim": 3}})
