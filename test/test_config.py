"""Every shipped config validates, and malformed ones fail naming the file and the key."""

from __future__ import annotations

import shutil

import pytest

from user_robot.config_loader import ConfigError, config_dir, config_names, from_mapping, read_yaml, write_config_copy
from user_robot.robot_config import load_robot
from user_robot.task_config import TaskConfig, load_task


@pytest.mark.parametrize("name", config_names("tasks"))
def test_task_configs_load(name: str) -> None:
    task = load_task(name)
    assert task.name == name
    assert task.episode_length > 0


@pytest.mark.parametrize("name", config_names("robots"))
def test_robot_configs_load(name: str) -> None:
    robot = load_robot(name)
    assert robot.name == name
    assert robot.safety.max_translation_step > 0


def _peg() -> dict:
    return read_yaml(config_dir() / "tasks" / "peg_insertion.yaml")


@pytest.mark.parametrize(
    ("edit", "key", "problem"),
    [
        (lambda d: d["action"].update(translaton_scale=0.1), "action.translaton_scale", "unknown key"),
        (lambda d: d["action"].update(dims=5), "action.dims", "must be one of"),
        (lambda d: d["target"].update(xyz=[0.1, 0.2]), "target.xyz", "expected 3 items"),
        (lambda d: d.pop("workspace"), "workspace", "required key is missing"),
        (lambda d: d.update(episode_length="long"), "episode_length", "expected an integer"),
        (lambda d: d["workspace"].update(xyz_low=[1, 1, 1]), "workspace", "xyz_low must be <= xyz_high"),
        (lambda d: d["observation"].update(position_scale=0), "observation.position_scale", "must be > 0, got 0.0"),
        (lambda d: d["reset"].update(duration_s=-1), "reset.duration_s", "must be >= 0, got -1.0"),
        (lambda d: d["action"].update(translation_scale=float("nan")), "action.translation_scale", "must be > 0"),
        (lambda d: d["observation"].update(image_size=[0, 128]), "observation.image_size", "must be > 0, got (0, 128)"),
        (lambda d: d["reward"].update(success_xyz_tolerance=0), "reward.success_xyz_tolerance", "must be > 0"),
        (lambda d: d["workspace"].update(xyz_high=[0.1, float("nan"), 0.1]), "workspace.xyz_high",
         "must be a finite number, got (0.1, nan, 0.1)"),
        (lambda d: d["target"].update(rpy=[3.14, 0, float("inf")]), "target.rpy", "must be a finite number"),
    ],
)
def test_malformed_task_names_file_and_key(tmp_path, edit, key: str, problem: str) -> None:
    data = _peg()
    edit(data)
    with pytest.raises(ConfigError) as info:
        from_mapping(TaskConfig, data, file=tmp_path / "bad.yaml")
    assert info.value.key == key
    assert problem in info.value.problem
    assert "bad.yaml" in str(info.value) and key in str(info.value)


@pytest.mark.parametrize(("section", "key", "value", "problem"), [
    ("safety", "max_translation_step", -0.01, "must be > 0, got -0.01"),  # (a limit that would let anything by)
    ("safety", "max_rotation_step", float("inf"), "must be > 0, got inf"),
    ("safety", "watchdog_s", 0, "must be > 0, got 0.0"),
    ("teleop", "deadband", 1.5, "must be < 1"),
    ("cameras.wrist", "rate_hz", 0, "must be > 0"),
    ("cameras.wrist", "crop", [0, 0, 0, 64], "width and height must be >= 1"),
])
def test_a_robot_limit_out_of_range_names_file_and_key(tmp_path, monkeypatch, section, key, value, problem) -> None:
    config = write_config_copy(tmp_path / "config", {"robots/sim": {f"{section}.{key}": value}})
    monkeypatch.setenv("USER_CONFIG_DIR", str(config))
    with pytest.raises(ConfigError) as info:
        load_robot("sim")
    assert info.value.key == f"{section}.{key}" and problem in info.value.problem, str(info.value)
    assert str(info.value).startswith(str(config / "robots" / "sim.yaml")), str(info.value)


def test_an_algorithm_value_out_of_range_names_file_and_key(tmp_path, monkeypatch) -> None:
    from user_learner.algo_config import load_algorithm_config

    cases = {("sac", "sac.lr_critic"): -1, ("sac", "sac.critic_hidden_dims"): [256, 0], ("sac", "min_buffer"): 0,
             ("hg_dagger", "hg_dagger.lr"): float("nan"), ("hg_dagger", "utd"): -1}
    configs = {(algo, key): write_config_copy(tmp_path / key, {f"algorithms/{algo}": {key: value}})
               for (algo, key), value in cases.items()}
    for (algo, key), config in configs.items():
        monkeypatch.setenv("USER_CONFIG_DIR", str(config))
        with pytest.raises(ConfigError) as info:
            load_algorithm_config(algo)
        assert info.value.key == key and "must be >" in info.value.problem, str(info.value)


def test_unknown_name_lists_known() -> None:
    with pytest.raises(ConfigError, match=r"known: .*peg_insertion"):
        load_task("peg_insertoin")


def test_invalid_yaml_names_file(tmp_path, monkeypatch) -> None:
    (tmp_path / "robots").mkdir()
    (tmp_path / "robots" / "broken.yaml").write_text("name: [unclosed\n")
    monkeypatch.setenv("USER_CONFIG_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match=r"broken\.yaml.*invalid YAML"):
        load_robot("broken")


def test_config_copy_sets_nested_and_dotted_keys_and_new_files(tmp_path) -> None:
    original = (config_dir() / "algorithms" / "sac.yaml").read_text()
    root = write_config_copy(tmp_path / "config", {
        "algorithms/sac": {"sac": {"batch_size": 8}, "policy.hidden_dims": [16], "utd": 0.5},
        "algorithms/mine": {"algorithm": "sac"},
    })
    sac = read_yaml(root / "algorithms" / "sac.yaml")
    assert sac["sac"]["batch_size"] == 8 and sac["sac"]["num_critics"] == 10  # merged, not replaced
    assert sac["policy"]["hidden_dims"] == [16] and sac["utd"] == 0.5
    assert read_yaml(root / "algorithms" / "mine.yaml") == {"algorithm": "sac"}
    assert (config_dir() / "algorithms" / "sac.yaml").read_text() == original


def test_extends_lays_a_config_over_another_and_names_its_mistakes(tmp_path, monkeypatch) -> None:
    robots = tmp_path / "robots"
    robots.mkdir()
    (robots / "base.yaml").write_text("name: base\na: 1\nnested: {x: 1, y: [1, 2]}\nkeep: base\n")
    (robots / "mid.yaml").write_text("extends: base\nname: mid\nnested: {y: [3]}\na: 2\n")
    (robots / "leaf.yaml").write_text("extends: mid\nnested: {z: 1}\nnew.dotted: 4\n")
    # a chain, mappings key by key, lists replaced, dotted keys as written (only write_config_copy splits
    # them), and no name from a base (each file names itself)
    assert read_yaml(robots / "leaf.yaml") == {"a": 2, "nested": {"x": 1, "y": [3], "z": 1}, "keep": "base",
                                               "new.dotted": 4}
    assert read_yaml(robots / "mid.yaml")["name"] == "mid"
    (robots / "typo.yaml").write_text("extends: bsae\n")
    with pytest.raises(ConfigError, match=r"typo\.yaml: key 'extends': no config named 'bsae' beside this one "
                                          r"\(known: base, leaf, mid\)"):
        read_yaml(robots / "typo.yaml")
    (robots / "one.yaml").write_text("extends: two\n")
    (robots / "two.yaml").write_text("extends: one\n")
    with pytest.raises(ConfigError, match=r"two\.yaml: key 'extends': configs extend each other in a circle: "
                                          r"one -> two -> one"):
        read_yaml(robots / "one.yaml")
    (robots / "odd.yaml").write_text("extends: [base]\n")
    with pytest.raises(ConfigError, match=r"odd\.yaml: key 'extends': expected the name of a config"):
        read_yaml(robots / "odd.yaml")
    # a schema mistake in an extending config names that file and the key
    (robots / "sim_typo.yaml").write_text("extends: sim\nname: sim_typo\nsafety: {max_translation_stepp: 0.01}\n")
    shutil.copy(config_dir() / "robots" / "sim.yaml", robots / "sim.yaml")
    monkeypatch.setenv("USER_CONFIG_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match=r"sim_typo\.yaml: key 'safety\.max_translation_stepp': unknown key"):
        load_robot("sim_typo")
    (robots / "sim_left.yaml").write_text("extends: sim\nname: sim_left\ncameras: {wrist: {topic: /left/image_raw}}\n")
    left, sim = load_robot("sim_left"), load_robot("sim")
    assert left.name == "sim_left" and left.cameras["wrist"].topic == "/left/image_raw"
    assert left.cameras["front"] == sim.cameras["front"] and left.safety == sim.safety


def test_a_config_copy_keeps_extends_so_a_changed_base_reaches_its_children(tmp_path, monkeypatch) -> None:
    root = write_config_copy(tmp_path / "config", {"algorithms/rlpd_cnn": {"rlpd.batch_size": 8},
                                                   "algorithms/sac_cnn": {"sac.gamma": 0.5}})
    monkeypatch.setenv("USER_CONFIG_DIR", str(root))
    from user_learner.algo_config import load_algorithm_config

    sac_cnn = load_algorithm_config("sac_cnn")  # extends rlpd_cnn: its rlpd section is sac_cnn's sac section
    assert sac_cnn.algorithm == "sac" and sac_cnn.params.batch_size == 8 and sac_cnn.params.gamma == 0.5
    assert sac_cnn.params.demo_ratio == 0.0 and sac_cnn.params.cache_backbone and sac_cnn.policy.kind == "cnn"
    assert load_algorithm_config("rlpd_cnn").params.gamma == 0.97  # the child's change stays in the child
